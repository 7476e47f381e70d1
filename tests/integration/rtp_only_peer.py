"""A lab peer that has no SRTP at all: plain pjsua2 with srtpUse disabled, over TLS.

Not guardphone code: a stand-in for an old desk phone or a misconfigured trunk, so tests can
show that guardphone refuses RTP-only media in both directions. Prints one JSON line per
outcome. Usage: rtp_only_peer.py CONFIG (call URI | answer)
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import pjsua2 as pj

from agent import config, keystore
from agent.service import Softphone


def main() -> int:
    cfg = config.load(Path(sys.argv[1]))
    mode = sys.argv[2]
    material = Softphone(cfg, keystore.OsKeychain(), None, print).prepare()  # type: ignore[arg-type]
    ep = pj.Endpoint()
    ep.libCreate()
    epc = pj.EpConfig()
    epc.uaConfig.threadCnt = 0
    epc.logConfig.consoleLevel = 0
    ep.libInit(epc)
    tc = pj.TransportConfig()
    tc.boundAddress = "127.0.0.1"
    tc.tlsConfig.CaBuf = material.ca_pem
    tc.tlsConfig.certBuf = material.cert_pem
    tc.tlsConfig.privKeyBuf = material.key_pem
    tc.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
    tc.tlsConfig.verifyServer = True
    tid = ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tc)
    ep.libStart()
    ep.audDevManager().setNullDev()
    out: list[dict[str, Any]] = []
    calls: list[Any] = []

    class Call(pj.Call):
        def onCallState(self, prm: Any) -> None:
            info = self.getInfo()
            if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                out.append({"event": "call_ended", "code": info.lastStatusCode})
            elif info.state == pj.PJSIP_INV_STATE_CONFIRMED:
                out.append({"event": "call_confirmed"})

    class Account(pj.Account):
        def onRegState(self, prm: Any) -> None:
            out.append({"event": "registration", "code": prm.code})

        def onIncomingCall(self, prm: Any) -> None:
            call = Call(self, prm.callId)
            calls.append(call)
            op = pj.CallOpParam()
            op.statusCode = 200
            call.answer(op)

    ac = pj.AccountConfig()
    ac.idUri = f"sip:{cfg.account.user}@{cfg.account.domain}"
    ac.regConfig.registrarUri = f"sip:{cfg.account.domain};transport=tls"
    ac.sipConfig.proxies.append(f"sip:{cfg.sbc.host}:{cfg.sbc.port};transport=tls;lr")
    ac.sipConfig.transportId = tid
    ac.sipConfig.authCreds.append(
        pj.AuthCredInfo("digest", cfg.account.domain, cfg.account.user, 0, material.sip_password)
    )
    ac.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_DISABLED
    ac.mediaConfig.srtpSecureSignaling = 0
    ac.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acc = Account()
    acc.create(ac)

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ep.libHandleEvents(20)
            while out:
                print(json.dumps(out.pop(0)), flush=True)

    pump(1.0)
    if mode == "call":
        call = Call(acc)
        calls.append(call)
        call.makeCall(sys.argv[3], pj.CallOpParam(True))
        pump(3.0)
    else:
        print(json.dumps({"event": "ready"}), flush=True)
        pump(float(sys.argv[3]) if len(sys.argv) > 3 else 6.0)
    calls.clear()
    gc.collect()
    acc.shutdown()
    ep.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG)
    return 0


if __name__ == "__main__":
    sys.exit(main())
