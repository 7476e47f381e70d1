"""The portal app for load runs under uvicorn (`--factory bench.portal_app:app`), configured
from GP_DB and GP_STATE."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from portal.app import PortalConfig, create_app


def app() -> FastAPI:
    return create_app(
        PortalConfig(os.environ["GP_DB"], Path(os.environ["GP_STATE"]), "corp.example")
    )
