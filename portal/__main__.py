"""`guardphone-portal` (or `python -m portal`): set up and run the central portal.

  init     --state DIR [--ca-cert PEM --ca-key PEM]   keys (device CA, policy key)
  migrate  --db URL                                  create / upgrade the schema
  staff    --db URL NAME --role helpdesk|admin       password on stdin; prints the TOTP secret
  token    --db URL USER                             SIP password on stdin; prints the token
  serve    --db URL --state DIR --domain D --tls-cert PEM --tls-key PEM [--host H --port P]
           [--workers N]
  openapi                                            the OpenAPI document (portal/openapi.json)

The database URL is sqlite:///path/portal.db by default; postgresql+psycopg://… for fleets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_DB = "sqlite:///portal.db"


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - one flat dispatcher
    parser = argparse.ArgumentParser(prog="guardphone-portal", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init")
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--ca-cert", type=Path)
    p.add_argument("--ca-key", type=Path)
    p = sub.add_parser("migrate")
    p.add_argument("--db", default=DEFAULT_DB)
    p = sub.add_parser("staff")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("name")
    p.add_argument("--role", choices=("helpdesk", "admin"), required=True)
    p = sub.add_parser("token")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("user")
    p.add_argument("--hours", type=int, default=72)
    p = sub.add_parser("serve")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--domain", required=True, help="the SIP domain enrolled devices register in")
    p.add_argument("--tls-cert", type=Path, required=True)
    p.add_argument("--tls-key", type=Path, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8443)
    p.add_argument("--log-level", default="warning", help="info logs every request")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes (default: one per CPU core)",
    )
    sub.add_parser("openapi")
    args = parser.parse_args(argv)

    if args.command == "init":
        from portal.keys import init_state

        ca = (args.ca_cert.read_bytes(), args.ca_key.read_bytes()) if args.ca_cert else (None, None)
        init_state(args.state, *ca)
        print(f"portal keys in {args.state}")
        return 0
    if args.command == "openapi":
        print(json.dumps(openapi(), indent=2, sort_keys=True))
        return 0
    from portal import db

    if args.command == "migrate":
        db.migrate(args.db)
        print("schema up to date")
        return 0
    if args.command in ("staff", "token"):
        from portal import staff

        secret_in = sys.stdin.readline().rstrip("\n")
        with db.sessions(db.engine_for(args.db))() as session:
            try:
                if args.command == "staff":
                    totp = staff.add_staff(session, args.name, secret_in, args.role)
                    print(f"TOTP secret for {args.name} (put it in an authenticator app): {totp}")
                else:
                    print(staff.add_token(session, args.user, secret_in, args.hours))
            except ValueError as exc:
                print(f"guardphone-portal: {exc}", file=sys.stderr)
                return 2
        return 0
    import uvicorn

    from portal import asgi, processes

    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    db.migrate(args.db)
    os.environ.update(
        {asgi.ENV_DB: args.db, asgi.ENV_STATE: str(args.state), asgi.ENV_DOMAIN: args.domain}
    )
    settings: dict[str, Any] = {
        "app": "portal.asgi:app",
        "factory": True,
        "ssl_certfile": str(args.tls_cert),
        "ssl_keyfile": str(args.tls_key),
        "log_level": args.log_level,
    }
    workers = args.workers or os.cpu_count() or 1
    if workers == 1:
        uvicorn.run(**settings, host=args.host, port=args.port)
        return 0
    try:
        return processes.serve(settings, args.host, args.port, workers)
    except processes.PortInUse as exc:
        print(f"guardphone-portal: {exc}", file=sys.stderr)
        return 1


def openapi() -> dict[str, object]:
    """The API's OpenAPI document, independent of any database or keys."""
    from fastapi.openapi.utils import get_openapi

    from portal import app as api
    from portal import staff

    routes = [*api.device_api.routes, *staff.router.routes]
    return get_openapi(title="guardphone portal", version=api.API_VERSION, routes=routes)


if __name__ == "__main__":
    sys.exit(main())
