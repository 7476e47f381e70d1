"""The portal app as uvicorn's worker processes import it (`portal.asgi:app`, a factory).

`guardphone-portal serve` passes its settings through the environment, not the command line:
a database URL may carry a password, and /proc/PID/cmdline is readable by every local user.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from portal.app import PortalConfig, create_app

ENV_DB = "GUARDPHONE_PORTAL_DB"
ENV_STATE = "GUARDPHONE_PORTAL_STATE"
ENV_DOMAIN = "GUARDPHONE_PORTAL_DOMAIN"


def app() -> FastAPI:
    return create_app(
        PortalConfig(os.environ[ENV_DB], Path(os.environ[ENV_STATE]), os.environ[ENV_DOMAIN])
    )
