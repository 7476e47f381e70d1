"""`guardphone settings`, `credentials` and `tunnel`: the commands that manage the device.

Kept apart from agent/cli.py, which runs the phone; both share its exit codes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import credentials, keystore, managed, settings

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


def cmd_doctor(args: argparse.Namespace) -> int:
    from agent import doctor

    found = doctor.examine(args.config)
    report = doctor.as_json(found)
    print(json.dumps(report) if args.json else doctor.as_text(found))
    return EXIT_OK if report["ok"] else EXIT_REFUSED


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
    try:
        value = json.loads(args.value)
    except json.JSONDecodeError:
        value = args.value  # a bare word is a string
    try:
        settings.change(args.config, managed.open_source(), args.key, value)
    except settings.SettingRefused as exc:
        print(f"guardphone: {exc}", file=sys.stderr)
        return EXIT_REFUSED if exc.locked else EXIT_USAGE
    print(f"{args.key} = {json.dumps(value)}")
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


def cmd_enroll(args: argparse.Namespace) -> int:
    """Enroll this device with a one-time token (from the keychain, a prompt or stdin)."""
    import socket

    from agent.enroll import EnrollError, enroll, staged_token

    cfg = effective_config(args).config
    try:
        store = keystore.OsKeychain()
        token = staged_token(cfg, store) or SecretReader().read("Enrollment token: ").strip()
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
    secrets_in = SecretReader()
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


class SecretReader:
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

    p = sub.add_parser(
        "doctor", help="check everything guardphone depends on, each with a fix (exit 1: blocked)"
    )
    needs_config(p)
    p.set_defaults(func=cmd_doctor)

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
