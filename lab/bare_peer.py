"""A bare pjsua2 peer for tests and benchmarks: the SIP stack without guardphone around it.

Not part of the agent. With `--srtp mandatory` it is the benchmark's peer (same TLS and SRTP
settings as guardphone, none of its checks); with `--srtp disabled` it stands for an old desk
phone or trunk with no SRTP at all. Prints one JSON line per milestone ({"t", "event", ...}).

With `--floor`, CONFIG is a peer file written by the benchmark (JSON: user, domain, sbc_host,
sbc_port and the PEMs and password, as baresip gets them in its config directory) and nothing
of guardphone is imported: the Python + pjsua2 floor of "process start -> registered".

With `--codec`, only that codec is offered and accepted (an id's start, e.g. G722); without
it, pjsua2's own order, which is what the agent uses (speex/16000 first).

Usage: python -m lab.bare_peer CONFIG (register | call URI | answer [SECONDS]) [--srtp MODE]
       [--hold SECONDS] [--floor] [--codec ID]
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pjsua2 as pj

BIND = "127.0.0.1"


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"t": time.monotonic(), "event": event, **fields}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("mode", choices=("register", "call", "answer"))
    parser.add_argument("arg", nargs="?")
    parser.add_argument("--srtp", choices=("mandatory", "disabled"), default="mandatory")
    parser.add_argument(
        "--hold", type=float, default=0.0, help="call: stay connected this long (seconds)"
    )
    parser.add_argument(
        "--floor", action="store_true", help="CONFIG is a peer file; import nothing of ours"
    )
    parser.add_argument("--codec", help="offer and accept only this codec (e.g. G722)")
    args = parser.parse_args()
    cfg, material = _floor_peer(args.config) if args.floor else _agent_peer(args.config)

    ep, tid = _endpoint(material, args.codec)
    state: dict[str, Any] = {"registered": False, "done": False}
    calls: list[Any] = []

    class Call(pj.Call):  # type: ignore[misc]
        def onCallState(self, prm: Any) -> None:
            info = self.getInfo()
            if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
                say("confirmed")
                if args.mode == "call" and not args.hold:
                    self.hangup(pj.CallOpParam())
                elif args.mode == "call":
                    state["hangup_at"] = time.monotonic() + args.hold
            elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                say("call_ended", code=info.lastStatusCode)
                state["done"] = args.mode == "call"

        def onCallMediaState(self, prm: Any) -> None:
            # Audio both ways through the null device, as the agent does: media really flows.
            info = self.getInfo()  # owns info.media (see agent.pjcall)
            adm = ep.audDevManager()
            for i in range(len(info.media)):
                m = info.media[i]
                if m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                    aud = self.getAudioMedia(i)
                    aud.startTransmit(adm.getPlaybackDevMedia())
                    adm.getCaptureDevMedia().startTransmit(aud)

    class Account(pj.Account):  # type: ignore[misc]
        def onRegState(self, prm: Any) -> None:
            say("registration", code=prm.code)
            if prm.code == 200 and not state["registered"]:
                state["registered"] = True
                say("registered")

        def onIncomingCall(self, prm: Any) -> None:
            call = Call(self, prm.callId)
            calls.append(call)
            op = pj.CallOpParam()
            op.statusCode = 200
            call.answer(op)

    acc = Account()
    acc.create(_account_config(cfg, material, tid, args.srtp))

    def pump_until(deadline: float, stop: Any) -> None:
        while time.monotonic() < deadline and not stop():
            ep.libHandleEvents(10)

    pump_until(time.monotonic() + 20, lambda: state["registered"])
    if args.mode == "call":
        call = Call(acc)
        calls.append(call)
        say("calling")
        call.makeCall(args.arg, pj.CallOpParam(True))
        pump_until(time.monotonic() + 20, lambda: "hangup_at" in state or state["done"])
        if not state["done"] and "hangup_at" in state:
            pump_until(state["hangup_at"], lambda: state["done"])
            if not state["done"] and args.hold:
                stat = call.getStreamStat(0)  # owns .rtcp (see agent.pjcall)
                info = call.getStreamInfo(0)
                codec = f"{info.codecName}/{info.codecClockRate}"
                say(
                    "media", rx=int(stat.rtcp.rxStat.pkt), tx=int(stat.rtcp.txStat.pkt), codec=codec
                )
            call.hangup(pj.CallOpParam())
            pump_until(time.monotonic() + 5, lambda: state["done"])
        del call  # pjsua2 objects must go before libDestroy (their destructor calls into it)
    elif args.mode == "answer":
        say("ready")
        pump_until(time.monotonic() + float(args.arg or 20), lambda: False)
    ep.hangupAllCalls()
    pump_until(time.monotonic() + 0.2, lambda: False)  # let hang-ups finish before destroy
    calls.clear()
    gc.collect()
    acc.shutdown()
    ep.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG)
    return 0


def _agent_peer(path: Path) -> tuple[Any, Any]:
    """The account from a guardphone config, the material from the keychain."""
    from agent import config, keystore
    from agent.material import load as load_material

    cfg = config.load(path)
    return cfg, load_material(cfg, keystore.OsKeychain())


def _floor_peer(path: Path) -> tuple[Any, Any]:
    """The same account and material from one JSON file (the benchmark's floor peer)."""
    peer = json.loads(path.read_text())
    cfg = SimpleNamespace(
        account=SimpleNamespace(user=peer["user"], domain=peer["domain"]),
        sbc=SimpleNamespace(host=peer["sbc_host"], port=peer["sbc_port"]),
    )
    material = SimpleNamespace(
        **{k: peer[k] for k in ("cert_pem", "key_pem", "ca_pem", "sip_password")}
    )
    return cfg, material


def _endpoint(material: Any, codec: str | None) -> tuple[Any, int]:
    ep = pj.Endpoint()
    ep.libCreate()
    epc = pj.EpConfig()
    epc.uaConfig.threadCnt = 0
    epc.medConfig.threadCnt = 0
    epc.medConfig.hasIoqueue = False
    # Silence from the null device is not suppressed: a packet every 20 ms each way, as
    # with a person speaking (what a media benchmark must push through).
    epc.medConfig.noVad = True
    epc.logConfig.consoleLevel = 0
    ep.libInit(epc)
    tc = pj.TransportConfig()
    tc.boundAddress = BIND
    tls = tc.tlsConfig
    tls.CaBuf, tls.certBuf, tls.privKeyBuf = material.ca_pem, material.cert_pem, material.key_pem
    tls.method = pj.PJSIP_TLSV1_2_METHOD
    tls.verifyServer = True
    nodelay = pj.SockOpt()
    nodelay.level, nodelay.optName = 6, 1
    nodelay.setOptValInt(1)
    tls.sockOptParams.sockOpts.append(nodelay)
    tid = ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tc)
    ep.libStart()
    ep.audDevManager().setNullDev()
    if codec:
        ids = [c.codecId for c in ep.codecEnum2()]
        if not any(i.startswith(codec) for i in ids):
            raise SystemExit(f"bare peer: no codec {codec!r} in this pjsua2 (it has {ids})")
        for i in ids:  # priority 0 disables a codec
            ep.codecSetPriority(i, 255 if i.startswith(codec) else 0)
    return ep, int(tid)


def _account_config(cfg: Any, material: Any, tid: int, srtp: str) -> Any:
    ac = pj.AccountConfig()
    ac.idUri = f"sip:{cfg.account.user}@{cfg.account.domain}"
    ac.regConfig.registrarUri = f"sip:{cfg.account.domain};transport=tls"
    ac.sipConfig.proxies.append(f"sip:{cfg.sbc.host}:{cfg.sbc.port};transport=tls;lr")
    ac.sipConfig.transportId = tid
    ac.sipConfig.authCreds.append(
        pj.AuthCredInfo("digest", cfg.account.domain, cfg.account.user, 0, material.sip_password)
    )
    if srtp == "mandatory":
        ac.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_MANDATORY
    else:
        ac.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_DISABLED
        ac.mediaConfig.srtpSecureSignaling = 0
    ac.mediaConfig.transportConfig.boundAddress = BIND
    return ac


if __name__ == "__main__":
    raise SystemExit(main())
