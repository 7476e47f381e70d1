"""`guardphone lab up|down`: present only where the lab package is installed (sources, CI)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from agent import keystore

# The lab itself (PKI, Kamailio, namespaces) is imported by its commands only: every
# `guardphone` run in the source tree builds this parser, and the agent's start is measured.
DEFAULT_PORT = 5061
KEYCHAIN_SERVICE = "guardphone"


def default_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "guardphone-lab"


def add_lab_commands(sub: Any) -> None:
    p = sub.add_parser("lab", help="start or stop the local lab (Kamailio SBC + test PKI)")
    lsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = lsub.add_parser("up", help="start the lab and enroll its users in the keychain")
    up.add_argument("--dir", type=Path, default=None, help="lab directory")
    up.add_argument("--port", type=int, default=DEFAULT_PORT, help="SBC TLS port")
    up.add_argument("--json", action="store_true", help="print the lab as one JSON object")
    up.add_argument(
        "--keychain-service",
        default=KEYCHAIN_SERVICE,
        help="keychain service the lab users are enrolled under (tests use their own)",
    )
    up.add_argument(
        "--net",
        action="store_true",
        help="also build the laptop/office/hotel namespaces and the WireGuard tunnel (root)",
    )
    up.set_defaults(func=cmd_lab_up)
    down = lsub.add_parser("down", help="stop the lab and remove its users from the keychain")
    down.add_argument("--dir", type=Path, default=None, help="lab directory")
    down.set_defaults(func=cmd_lab_down)


def cmd_lab_up(args: argparse.Namespace) -> int:
    from lab import lab, net, sbc

    directory = args.dir or default_dir()
    try:
        state = lab.up(
            directory,
            keystore.OsKeychain(),
            port=args.port,
            with_net=args.net,
            keychain_service=args.keychain_service,
        )
    except (keystore.KeychainError, sbc.LabError, net.NetError) as exc:
        print(f"guardphone lab: not started: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(
            json.dumps(
                {
                    "directory": state.directory,
                    "sbc": f"{sbc.GOOD}:{state.port}",
                    "domain": state.domain,
                    "users": [
                        {"name": u.name, "uri": u.uri, "config": u.config} for u in state.users
                    ],
                    "net_users": [
                        {
                            "name": u.name,
                            "uri": u.uri,
                            "config": u.config,
                            "netns": u.netns,
                            "where": u.where,
                        }
                        for u in state.net_users or []
                    ],
                }
            )
        )
    else:
        print(
            f"lab up in {state.directory}: Kamailio SBC on tls:{sbc.GOOD}:{state.port} "
            f"(pid {state.kamailio_pid})"
        )
        for u in state.users:
            print(f"  {u.name:6} {u.uri:32} config {u.config}")
        for u in state.net_users or []:
            print(f"  {u.name:6} {u.uri:32} config {u.config} ({u.where}: netns {u.netns})")
    return 0


def cmd_lab_down(args: argparse.Namespace) -> int:
    from lab import lab

    directory = args.dir or default_dir()
    try:
        store: keystore.SecretStore | None = keystore.OsKeychain()
    except keystore.KeychainError:
        store = None  # still stop the SBC; the keychain entries went with the keychain
    was_up = lab.down(directory, store)
    print(f"lab in {directory}: {'stopped' if was_up else 'was not running'}")
    return 0
