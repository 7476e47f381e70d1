"""`guardphone events`, `siem` and `fraud`: the device's records — its security log, where
the log is forwarded, and the toll-fraud guard's suspension."""

from __future__ import annotations

import argparse
import datetime as dt
import hmac
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import platformdirs

from agent import credentials, keystore
from agent.cli_admin import EXIT_OK, EXIT_REFUSED, SecretReader, effective_config
from agent.config import AgentConfig
from agent.events import SEVERITIES, EventLog
from agent.fraud import FraudGuard, policy_from
from agent.siem import Forwarder, Target


def open_log(config: AgentConfig) -> EventLog:
    return EventLog(config.event_log or default_log_path())


def default_log_path() -> Path:
    return Path(platformdirs.user_data_dir("guardphone")) / "events.db"


def open_fraud_guard(config: AgentConfig) -> FraudGuard:
    path = config.fraud.state_file or Path(platformdirs.user_data_dir("guardphone")) / "fraud.db"
    return FraudGuard(policy_from(config), path)


def siem_targets(config: AgentConfig) -> tuple[Target, ...]:
    return tuple(
        Target(
            t.name,
            t.transport,
            t.host,
            t.port,
            t.format,
            t.ca_file.read_text() if t.ca_file else None,
            t.path,
        )
        for t in config.siem
    )


def open_forwarder(config: AgentConfig, log: EventLog) -> Forwarder | None:
    return Forwarder(log.path, siem_targets(config)) if config.siem else None


def cmd_siem(args: argparse.Namespace) -> int:
    """Where the event log is forwarded: per destination state, lag, last error; or flush."""
    cfg = effective_config(args).config
    log = open_log(cfg)
    forwarder = open_forwarder(cfg, log)
    try:
        if forwarder is None:
            print("no SIEM destination is configured")
            return EXIT_OK
        if args.action == "flush":
            print(f"forwarded {forwarder.flush(batch=100_000)} event(s)")
        rows = forwarder.status()
        if args.json:
            print(json.dumps(rows))
        else:
            for row in rows:
                print(
                    f"{row['target']:16} {row['transport']:4} {row['format']:8} "
                    f"{row['state']:9} lag {row['lag']:>6}  {row['last_error'] or ''}"
                )
        return EXIT_OK if all(row["lag"] == 0 for row in rows) else EXIT_REFUSED
    finally:
        if forwarder is not None:
            forwarder.close()
        log.close()


FRAUD_ADMIN_CODE = "fraud-admin-code"  # keychain entry IT may provision for local resumes


def cmd_fraud(args: argparse.Namespace) -> int:
    """Whether calls are suspended for suspected fraud; resume with the local admin code."""
    cfg = effective_config(args).config
    guard = open_fraud_guard(cfg)
    try:
        if args.action == "status":
            reason = guard.suspended
            print(
                json.dumps({"suspended": reason is not None, "reason": reason})
                if args.json
                else (f"suspended: {reason}" if reason else "not suspended")
            )
            return EXIT_OK
        store = keystore.OsKeychain()
        expected = store.get(
            cfg.keychain_service, keystore.entry_name(cfg.account_id, FRAUD_ADMIN_CODE)
        )
        if not expected:
            print(
                "guardphone: no local admin code is set up on this device: the helpdesk "
                "resumes the account from the portal.",
                file=sys.stderr,
            )
            return EXIT_REFUSED
        given = SecretReader().read("Admin code: ").strip()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            print("guardphone: wrong admin code; the account stays suspended.", file=sys.stderr)
            return EXIT_REFUSED
        log = open_log(cfg)
        try:
            log.append("fraud.resumed", "notice", {"by": "local admin code"})
        finally:
            log.close()
        guard.resume("local admin code")
        print("Calls resumed.")
        return EXIT_OK
    except keystore.KeychainError as exc:
        print(f"guardphone: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        guard.close()


def cmd_events(args: argparse.Namespace) -> int:
    """Query the security event log, verify its hash chain, or prune it (signed checkpoint)."""
    cfg = effective_config(args).config
    log = open_log(cfg)
    try:
        if args.action == "verify":
            return _verify_events(log, _device_credentials(cfg), args.json)
        if args.action == "prune":
            creds = _device_credentials(cfg)
            if creds is None:
                print(
                    "guardphone: pruning needs the device key (keychain) to sign the "
                    "checkpoint; nothing was dropped.",
                    file=sys.stderr,
                )
                return EXIT_REFUSED
            key_pem = creds.key_pem
            before = None
            if args.older_than_days is not None:
                cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=args.older_than_days)
                before = cutoff.isoformat(timespec="microseconds")
            dropped = log.prune(
                lambda data: credentials.sign(key_pem, data),
                keep=None if before else args.keep,
                before=before,
            )
            print(f"dropped {dropped} record(s); a signed checkpoint keeps the chain verifiable")
            return EXIT_OK
        found = log.query(
            args.since, args.until, tuple(args.type or ()), args.severity, args.text, args.limit
        )
        for event in found:
            if args.json:
                print(json.dumps(event.as_dict()))
            else:
                print(
                    f"{event.seq:>7} {event.time} {event.severity:8} {event.type:22} "
                    f"{json.dumps(event.fields)[:120]}"
                )
        return EXIT_OK
    finally:
        log.close()


def _device_credentials(cfg: AgentConfig) -> keystore.Credentials | None:
    try:
        return keystore.load_credentials(
            keystore.OsKeychain(), cfg.keychain_service, cfg.account_id
        )
    except keystore.KeychainError:
        return None


def _verify_events(log: EventLog, creds: keystore.Credentials | None, as_json: bool) -> int:
    checker = None
    if creds is not None:
        cert = creds.cert_pem
        checker = lambda data, sig: credentials.signed_by(cert, data, sig)  # noqa: E731
    result = log.verify(checker)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": result.ok,
                    "records": result.count,
                    "first_broken": result.first_broken,
                    "problem": result.problem,
                    "checkpoint_signature_checked": checker is not None,
                }
            )
        )
    elif result.ok:
        print(f"event log {log.path}: {result.count} records, chain intact")
    else:
        print(
            f"event log {log.path}: record {result.first_broken} {result.problem}; "
            f"the {result.count} records before it are intact"
        )
    return EXIT_OK if result.ok else EXIT_REFUSED


def add_records_commands(sub: Any, needs_config: Callable[..., None]) -> None:
    p = sub.add_parser("events", help="query the security event log, verify or prune it")
    p.add_argument("action", nargs="?", choices=("query", "verify", "prune"), default="query")
    p.add_argument("--keep", type=int, default=100_000, help="prune: records to keep")
    p.add_argument("--older-than-days", type=float, help="prune: drop records older than this")
    p.add_argument("--since", help="ISO time (UTC), inclusive")
    p.add_argument("--until", help="ISO time (UTC), exclusive")
    p.add_argument("--type", action="append", help="event type (repeatable)")
    p.add_argument("--severity", choices=SEVERITIES, help="at least this severe")
    p.add_argument("--text", help="text to look for in the type or fields")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    needs_config(p, json_flag=False)
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("siem", help="forwarding of the event log: status, flush")
    p.add_argument("action", nargs="?", choices=("status", "flush"), default="status")
    p.add_argument("--json", action="store_true")
    needs_config(p, json_flag=False)
    p.set_defaults(func=cmd_siem)

    p = sub.add_parser("fraud", help="suspension for suspected fraud: status, resume")
    p.add_argument("action", nargs="?", choices=("status", "resume"), default="status")
    p.add_argument("--json", action="store_true")
    needs_config(p, json_flag=False)
    p.set_defaults(func=cmd_fraud)
