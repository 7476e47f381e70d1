"""`guardphone settings`, `credentials` and `tunnel`: the commands that manage the device.

Kept apart from agent/cli.py, which runs the phone; both share its exit codes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import hmac
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import platformdirs

from agent import config as config_mod
from agent import credentials, keystore, managed, settings
from agent.config import AgentConfig
from agent.events import SEVERITIES, EventLog
from agent.fraud import FraudGuard, policy_from
from agent.siem import Forwarder, Target

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def effective_config(args: argparse.Namespace) -> settings.Effective:
    """The user's file (--config) under the organisation's managed configuration."""
    return settings.load(args.config, managed.open_source())


def cmd_tunnel(args: argparse.Namespace) -> int:
    """Bring the office tunnel up or down with wg-quick, if the organisation allows it."""
    from tunnel.wireguard import WireGuard, WireGuardError

    cfg = effective_config(args).config
    wg = cfg.wireguard
    if wg is None or not wg.agent_may_connect or not wg.profile:
        print(
            "guardphone: your organisation does not let guardphone connect the office tunnel; "
            "use your VPN client.",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    try:
        WireGuard().quick(args.action, wg.profile)
    except WireGuardError as exc:
        print(f"guardphone: tunnel {args.action} failed: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"office tunnel {wg.interface}: {args.action}")
    return EXIT_OK


def cmd_settings(args: argparse.Namespace) -> int:
    """Show every setting with its value and where it comes from, or change one."""
    effective = effective_config(args)
    if args.action == "set":
        return _set_setting(args, effective)
    rows = [
        {
            "key": s.key,
            "value": settings.shown(s.key, effective.values.get(s.key)),
            "source": effective.sources.get(s.key, settings.DEFAULT),
            "locked": effective.is_locked(s.key),
            "security": s.security,
            "help": s.help,
        }
        for s in settings.TABLE
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "managed_by": effective.managed_by,
                    "locked": effective.locked,
                    "overruled": list(effective.overruled),
                    "settings": rows,
                }
            )
        )
        return EXIT_OK
    for row in rows:
        note = "set by your organisation" if row["locked"] else row["source"]
        print(f"{row['key']:32} {json.dumps(row['value']):40} {note}")
    for key in effective.overruled:
        print(f"note: your value for {key} is not used: set by your organisation")
    return EXIT_OK


def _set_setting(args: argparse.Namespace, effective: settings.Effective) -> int:
    key = args.key
    if key not in settings.BY_KEY:
        print(f"guardphone: {key}: no such setting (see `guardphone settings`)", file=sys.stderr)
        return EXIT_USAGE
    if effective.is_locked(key) or (effective.locked and key in effective.overruled):
        print(
            f"guardphone: {key} is set by your organisation and cannot be changed here.",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    try:
        value = json.loads(args.value)
    except json.JSONDecodeError:
        value = args.value  # a bare word is a string
    doc = config_mod.read_document(args.config)
    node = doc
    *sections, leaf = key.split(".")
    for section in sections:
        node = node.setdefault(section, {})
    node[leaf] = value
    source = managed.open_source()
    mdoc = source.read()
    settings.resolve(doc, str(args.config), mdoc, source.location if mdoc is not None else None)
    args.config.write_text(json.dumps(doc, indent=2) + "\n")  # only once it validates
    print(f"{key} = {json.dumps(value)}")
    return EXIT_OK


def cmd_credentials_show(args: argparse.Namespace) -> int:
    """What the keychain holds for this account: the certificate's facts, never the key."""
    cfg = effective_config(args).config
    try:
        store = keystore.OsKeychain()
        cert_pem = store.get(
            cfg.keychain_service, keystore.entry_name(cfg.account_id, keystore.DEVICE_CERT)
        )
        has_key = bool(
            store.get(
                cfg.keychain_service, keystore.entry_name(cfg.account_id, keystore.DEVICE_KEY)
            )
        )
        has_password = bool(
            store.get(
                cfg.keychain_service, keystore.entry_name(cfg.account_id, keystore.SIP_PASSWORD)
            )
        )
    except keystore.KeychainError as exc:
        print(f"guardphone: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if not cert_pem:
        print(
            f"guardphone: {keystore.MissingCredential(cfg.account_id, keystore.DEVICE_CERT)}",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    summary = credentials.summarize(cert_pem)
    days = (summary.not_after - dt.datetime.now(dt.UTC)).total_seconds() / 86400
    shown = {
        "account": cfg.account_id,
        "keychain": store.backend_name,
        "subject": summary.subject_cn,
        "issuer": summary.issuer_cn,
        "serial": summary.serial,
        "not_before": summary.not_before.isoformat(),
        "not_after": summary.not_after.isoformat(),
        "days_left": round(days, 1),
        "sha256_fingerprint": credentials.fingerprint(cert_pem),
        "device_key": "in the keychain" if has_key else "missing",
        "sip_password": "in the keychain" if has_password else "missing",
    }
    if args.json:
        print(json.dumps(shown))
    else:
        for key, value in shown.items():
            print(f"{key.replace('_', ' ')}: {value}")
    return EXIT_OK


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
        given = _SecretReader().read("Admin code: ").strip()
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


def cmd_enroll(args: argparse.Namespace) -> int:
    """Enroll this device with a one-time token (from the keychain, a prompt or stdin)."""
    import socket

    from agent.enroll import EnrollError, enroll, staged_token

    cfg = effective_config(args).config
    try:
        store = keystore.OsKeychain()
        token = staged_token(cfg, store) or _SecretReader().read("Enrollment token: ").strip()
        if not token:
            print("guardphone: no enrollment token given.", file=sys.stderr)
            return EXIT_USAGE
        done = enroll(cfg, store, token, socket.gethostname())
    except (EnrollError, keystore.KeychainError) as exc:
        print(f"guardphone: not enrolled: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(
        f"Enrolled {cfg.account_id} (device {done.device_id}); certificate valid until "
        f"{done.summary.not_after:%Y-%m-%d}. Key, certificate and SIP password are in "
        f"{store.backend_name}."
    )
    return EXIT_OK


def cmd_credentials_import(args: argparse.Namespace) -> int:
    cfg = effective_config(args).config
    secrets_in = _SecretReader()
    try:
        if args.p12:
            bundle_password = secrets_in.read("PKCS#12 bundle password: ")
            sip_password = secrets_in.read(f"SIP password for {cfg.account_id}: ")
            creds = credentials.from_pkcs12(args.p12, bundle_password.encode(), sip_password)
        else:
            sip_password = secrets_in.read(f"SIP password for {cfg.account_id}: ")
            creds = credentials.from_pem_files(args.key, args.cert, sip_password)
        if not creds.sip_password:
            raise credentials.CredentialError("the SIP password is empty")
        summary = credentials.check_device(creds, cfg.account.user)
        store = keystore.OsKeychain()
        keystore.save_credentials(store, cfg.keychain_service, cfg.account_id, creds)
    except (credentials.CredentialError, keystore.KeychainError) as exc:
        print(f"guardphone: credentials not imported: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(
        f"Imported the device certificate for {summary.subject_cn} (expires "
        f"{summary.not_after:%Y-%m-%d}) and the SIP password into {store.backend_name}. "
        "The files you imported from are not needed by guardphone: store or delete them "
        "as your IT policy says."
    )
    return EXIT_OK


class _SecretReader:
    """Secrets come from a prompt or, for scripts, one per line on stdin; never from argv."""

    def __init__(self) -> None:
        self._interactive = sys.stdin.isatty()

    def read(self, prompt: str) -> str:
        if self._interactive:
            return getpass.getpass(prompt)
        return sys.stdin.readline().rstrip("\r\n")


def add_admin_commands(sub: Any, needs_config: Callable[..., None]) -> None:
    p = sub.add_parser("settings", help="show the settings and where each comes from; set one")
    ssub = p.add_subparsers(dest="action", metavar="ACTION")
    shw = ssub.add_parser("show", help="every setting, its value and source (the default)")
    shw.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="one JSON object"
    )
    st = ssub.add_parser("set", help="change one of your settings (not the organisation's)")
    st.add_argument("key")
    st.add_argument("value", help="a JSON value, or a bare word for a string")
    p.add_argument("--json", action="store_true", help="one JSON object")
    needs_config(p, json_flag=False)
    p.set_defaults(func=cmd_settings, action="show")

    _add_events_command(sub, needs_config)

    p = sub.add_parser("enroll", help="enroll this device with a one-time token from IT")
    needs_config(p, json_flag=False)
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("tunnel", help="bring the office tunnel up or down (if IT allows it)")
    p.add_argument("action", choices=("up", "down"))
    needs_config(p, json_flag=False)
    p.set_defaults(func=cmd_tunnel)

    p = sub.add_parser("credentials", help="manage credentials in the keychain")
    csub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = csub.add_parser(
        "import",
        help="import the device key, certificate and SIP password into the keychain",
        description="Passwords are asked for at a prompt, or read one per line from stdin "
        "(bundle password first, then the SIP password).",
    )
    src = imp.add_mutually_exclusive_group(required=True)
    src.add_argument("--p12", type=Path, metavar="FILE", help="PKCS#12 bundle")
    src.add_argument("--key", type=Path, metavar="FILE", help="PEM private key (with --cert)")
    imp.add_argument("--cert", type=Path, metavar="FILE", help="PEM certificate chain")
    needs_config(imp, json_flag=False)
    imp.set_defaults(func=cmd_credentials_import)
    show = csub.add_parser("show", help="the device certificate's facts (never the key)")
    needs_config(show)
    show.set_defaults(func=cmd_credentials_show)


def _add_events_command(sub: Any, needs_config: Callable[..., None]) -> None:
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
