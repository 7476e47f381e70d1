"""The peer for bench/register_call.py: bare pjsua2 with guardphone's TLS + SRTP settings and
none of guardphone's checks, supervisor or CLI. Prints one JSON line per milestone.

Usage: bare_pjsua2.py CONFIG register | call URI | answer
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


def say(**fields: Any) -> None:
    print(json.dumps({"t": time.monotonic(), **fields}), flush=True)


def main() -> int:
    cfg = config.load(Path(sys.argv[1]))
    mode = sys.argv[2]
    material = Softphone(cfg, keystore.OsKeychain(), None, print).prepare()  # type: ignore[arg-type]
    ep = pj.Endpoint()
    ep.libCreate()
    epc = pj.EpConfig()
    epc.uaConfig.threadCnt = 0
    epc.medConfig.threadCnt = 0
    epc.medConfig.hasIoqueue = False
    epc.logConfig.consoleLevel = 0
    ep.libInit(epc)
    tc = pj.TransportConfig()
    tc.boundAddress = "127.0.0.1"
    tls = tc.tlsConfig
    tls.CaBuf, tls.certBuf, tls.privKeyBuf = material.ca_pem, material.cert_pem, material.key_pem
    tls.method = pj.PJSIP_TLSV1_2_METHOD
    tls.verifyServer = True
    opt = pj.SockOpt()
    opt.level, opt.optName = 6, 1
    opt.setOptValInt(1)
    tls.sockOptParams.sockOpts.append(opt)
    tid = ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tc)
    ep.libStart()
    ep.audDevManager().setNullDev()
    state: dict[str, Any] = {"registered": False, "done": False}
    calls: list[Any] = []

    class Call(pj.Call):
        def onCallState(self, prm: Any) -> None:
            info = self.getInfo()
            if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
                say(event="confirmed")
                if mode == "call":
                    self.hangup(pj.CallOpParam())
            elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                state["done"] = True

    class Account(pj.Account):
        def onRegState(self, prm: Any) -> None:
            if prm.code == 200 and not state["registered"]:
                state["registered"] = True
                say(event="registered")

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
    ac.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_MANDATORY
    ac.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acc = Account()
    acc.create(ac)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not state["registered"]:
        ep.libHandleEvents(10)
    if mode == "call":
        call = Call(acc)
        calls.append(call)
        say(event="calling")
        call.makeCall(sys.argv[3], pj.CallOpParam(True))
    if mode != "register":
        while time.monotonic() < deadline and not state["done"]:
            ep.libHandleEvents(10)
    ep.hangupAllCalls()
    calls.clear()
    gc.collect()
    acc.shutdown()
    ep.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG)
    return 0


if __name__ == "__main__":
    sys.exit(main())
