"""`guardphone`: the headless command line that scripts, tests and benchmarks drive.

Exit codes: 0 done, 1 refused or failed (the reason is printed), 2 bad usage or config.
With --json, stdout carries one JSON object per line and nothing else.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import signal
import sys
import time
import wave
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from agent import config as config_mod
from agent import credentials, keystore
from agent.certwatch import CertWatch
from agent.cli_admin import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    add_admin_commands,
    effective_config,
)
from agent.cli_records import (
    add_records_commands,
    open_forwarder,
    open_log,
)
from agent.reasons import Refused
from agent.service import Softphone
from agent.session import Session
from agent.sip import AudioCheck


def human(state: dict[str, Any]) -> str:
    """One line for a person reading the terminal."""
    name = state["state"]
    if len(state.get("reasons", ())) > 1:
        return f"{name}:\n" + "\n".join(f"  - {r['reason']}" for r in state["reasons"])
    if "reason" in state:
        return f"{name}: {state['reason']}"
    if name == "registered":
        sig = state.get("signaling") or {}
        return (
            f"registered as {state['account']} via {state['sbc']} "
            f"({sig.get('tls_version')} {sig.get('cipher')})"
        )
    if name == "call_established":
        sec = state["security"]
        sig, med = sec["signaling"] or {}, sec["media"] or {}
        relay = " via the SBC's media relay" if med.get("via_sbc") else ""
        return (
            f"call established with {state['uri']}: signaling {sig.get('tls_version')} "
            f"({sig.get('cipher')}) · media SRTP {med.get('crypto_suite')} "
            f"({med.get('scope')}) to {med.get('sent_to')}{relay} · path {sec['path']}"
        )
    if name == "call_ended":
        q = state.get("quality") or {}

        def fig(key: str, unit: str) -> str:
            return "n/a" if q.get(key) is None else f"{q[key]} {unit}"

        return (
            f"call ended after {state['duration_s']} s (loss {fig('loss_percent', '%')}, "
            f"jitter {fig('jitter_ms', 'ms')}, round trip {fig('rtt_ms', 'ms')}, "
            f"estimated MOS {fig('mos', 'of 4.5')})"
        )
    if name == "media_silent":
        return f"no audio in call with {state['uri']}: {state['reason']}"
    if name == "media_restored":
        way = "from them" if state["direction"] == "in" else "to them"
        return f"audio {way} is back in call with {state['uri']} after {state['silent_s']} s"
    rest = " ".join(f"{k}={v}" for k, v in state.items() if k not in ("state", "time", "seq"))
    return f"{name} {rest}".strip()


class _Stop(Exception):
    """SIGTERM or SIGINT: leave the loop and shut down cleanly."""


def _shower(as_json: bool) -> Callable[[dict[str, Any]], None]:
    def show(line: dict[str, Any]) -> None:
        print(json.dumps(line) if as_json else human(line), flush=True)

    return show


def _run(
    args: argparse.Namespace,
    body: Callable[[Softphone], int],
    wait_for_path: bool = False,
    emergency: bool = False,
) -> int:
    audio = AudioCheck(getattr(args, "play", None), getattr(args, "record", None))
    session = Session(args.config, _shower(args.json), audio_check=audio)
    phone: Softphone | None = None
    try:
        phone = session.phone
        phone.emergency_dial = emergency
        phone.start(wait_for_path=wait_for_path)
        return body(phone)
    except Refused as exc:
        if not exc.reported:
            session.emit({"state": "refused", **exc.reason.as_dict()})
        return EXIT_REFUSED
    except keystore.KeychainError as exc:
        session.emit({"state": "refused", "code": "keychain_unavailable", "reason": str(exc)})
        return EXIT_REFUSED
    except _Stop:
        return EXIT_OK
    finally:
        if phone is not None:
            phone.stop()
        session.close()


def cmd_register(args: argparse.Namespace) -> int:
    def body(phone: Softphone) -> int:
        while not args.once:
            phone.pump()
            if not phone.registered and phone.failure is not None:
                return EXIT_REFUSED
        return EXIT_OK

    return _run(args, body, wait_for_path=not args.once)


def cmd_call(args: argparse.Namespace) -> int:
    def body(phone: Softphone) -> int:
        record = phone.call(args.uri)
        hung_up = False
        while not record.ended:
            phone.pump(0.2 if args.hangup_after is not None else 1.0)
            if (
                args.hangup_after is not None
                and record.established_at is not None
                and not hung_up
                and time.monotonic() - record.established_at >= args.hangup_after
            ):
                phone.hangup(record.call_id)
                hung_up = True
        return EXIT_OK if record.established_at is not None else EXIT_REFUSED

    return _run(args, body, emergency=_is_emergency(args))


def _is_emergency(args: argparse.Namespace) -> bool:
    from agent.numbers import classify, is_phone_number

    if not is_phone_number(args.uri):
        return False
    return classify(args.uri, effective_config(args).config.fraud.region).emergency


def cmd_answer(args: argparse.Namespace) -> int:
    def body(phone: Softphone) -> int:
        phone.auto_answer()
        while args.count is None or len(phone.finished_calls) < args.count:
            phone.pump()
        established = [c for c in phone.finished_calls if c.established_at is not None]
        return EXIT_OK if len(established) == len(phone.finished_calls) else EXIT_REFUSED

    return _run(args, body, wait_for_path=True)


def cmd_status(args: argparse.Namespace) -> int:
    """What the agent would do, checked locally (nothing is sent)."""
    cfg = effective_config(args).config
    report: dict[str, Any] = {
        "account": cfg.account_id,
        "sbc": f"{cfg.sbc.host}:{cfg.sbc.port}",
        "paths": list(cfg.paths),
        "srtp": "mandatory",
    }
    try:
        store = keystore.OsKeychain()
        report["keychain"] = store.backend_name
        phone = Softphone(cfg, store, _NoEngine(), lambda _s: None)
        material = phone.prepare()
        summary = credentials.summarize(material.cert_pem)
        report["device_certificate"] = {
            "subject": summary.subject_cn,
            "issuer": summary.issuer_cn,
            "expires": summary.not_after.isoformat(),
            "serial": summary.serial,
        }
        warning = CertWatch(material.cert_pem).warning()
        if warning:  # within 30 days of the end: say so in the status too
            report["device_certificate"].update(
                {"warning": warning["level"], "days_left": warning["days_left"]}
            )
        report["state"] = "ready"
    except Refused as exc:
        report.update({"state": "refused", **exc.reason.as_dict()})
    except keystore.KeychainError as exc:
        report.update({"state": "refused", "code": "keychain_unavailable", "reason": str(exc)})
    if cfg.portal is not None and "keychain" in report:  # the link to the portal
        from agent.cli_records import default_log_path
        from agent.fleet import FleetLink
        from agent.fleet import summary as link_summary

        link = FleetLink(cfg, keystore.OsKeychain(), cfg.event_log or default_log_path())
        report["portal"] = link_summary(link)
        link.stop()
    if cfg.siem:  # where the event log goes: per destination state, lag, last error
        log = open_log(cfg)
        forwarder = open_forwarder(cfg, log)
        assert forwarder is not None
        report["siem"] = forwarder.status()
        forwarder.close()
        log.close()
    if args.json:
        print(json.dumps(report), flush=True)
    else:
        for key, value in report.items():
            shown = (
                ", ".join(f"{k} {v}" for k, v in value.items())
                if isinstance(value, dict)
                else value
            )
            print(f"{key.replace('_', ' ')}: {shown}")
    return EXIT_OK if report["state"] == "ready" else EXIT_REFUSED


class _NoEngine:
    """status never starts the engine; this stands in so Softphone can run its checks."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"status does not use the SIP engine ({name})")


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("guardphone")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def _wav_to_play(value: str) -> Path:
    """A WAV file pjsip can play: 16-bit PCM."""
    path = Path(value)
    try:
        with wave.open(str(path), "rb") as wav:
            width = wav.getsampwidth()
    except (OSError, EOFError, wave.Error) as exc:
        raise argparse.ArgumentTypeError(f"{path}: not a readable WAV file ({exc})") from None
    if width != 2:
        raise argparse.ArgumentTypeError(f"{path}: {8 * width}-bit samples; 16-bit PCM is needed")
    return path


def _wav_to_record(value: str) -> Path:
    path = Path(value)
    if path.suffix.lower() != ".wav":
        raise argparse.ArgumentTypeError(f"{path}: the recording is a WAV file, name it *.wav")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: the folder {path.parent} does not exist")
    return path


def _audio_check_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--play",
        type=_wav_to_play,
        metavar="WAV",
        help="audio check: the other side hears this file (looped) instead of the microphone",
    )
    p.add_argument(
        "--record",
        type=_wav_to_record,
        metavar="WAV",
        help="audio check: write what the other side sends to this file",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guardphone",
        description="A softphone that registers only over a protected path, with mandatory SRTP.",
    )
    parser.add_argument("--config", type=Path, help="agent configuration file (JSON)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    parser.add_argument("--version", action="version", version=f"guardphone {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def needs_config(p: argparse.ArgumentParser, json_flag: bool = True) -> None:
        p.set_defaults(needs_config=True)
        if json_flag:
            p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = sub.add_parser("register", help="register and stay registered")
    p.add_argument("--once", action="store_true", help="exit 0 after registering and unregistering")
    needs_config(p)
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("call", help="call a SIP URI or a phone number")
    p.add_argument(
        "uri",
        metavar="SIP_URI_OR_NUMBER",
        help="a SIP URI, or a phone number (judged by the toll-fraud guard)",
    )
    p.add_argument(
        "--hangup-after",
        type=float,
        metavar="SECONDS",
        help="hang up this long after the call is established",
    )
    _audio_check_options(p)
    needs_config(p)
    p.set_defaults(func=cmd_call)

    p = sub.add_parser("answer", help="answer incoming calls automatically (lab peers)")
    p.add_argument("--count", type=int, metavar="N", help="exit after N calls")
    _audio_check_options(p)
    needs_config(p)
    p.set_defaults(func=cmd_answer)

    p = sub.add_parser("status", help="check config, keychain and certificate (sends nothing)")
    needs_config(p)
    p.set_defaults(func=cmd_status)

    add_admin_commands(sub, needs_config)
    add_records_commands(sub, needs_config)

    if importlib.util.find_spec("lab") is not None:  # the lab ships only with the sources
        from lab.cli import add_lab_commands

        add_lab_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "needs_config", False) and args.config is None:
        parser.error(f"{args.command} needs --config FILE")
    if args.command == "credentials" and getattr(args, "key", None) and not args.cert:
        parser.error("--key needs --cert")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        result: int = args.func(args)
    except config_mod.ConfigError as exc:
        print(f"guardphone: configuration error: {exc}", file=sys.stderr)
        if getattr(args, "json", False):
            print(json.dumps({"state": "refused", "code": "config_invalid", "reason": str(exc)}))
        return EXIT_USAGE
    except _Stop:
        return EXIT_OK
    return result


if __name__ == "__main__":
    sys.exit(main())
