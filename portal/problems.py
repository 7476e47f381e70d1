"""The device API's refusals: an HTTP status, a stable error code the agent acts on, and a
detail for the person reading its log."""

from __future__ import annotations

from fastapi import HTTPException


def problem(status: int, error: str, detail: str = "") -> HTTPException:
    return HTTPException(status, {"error": error, "detail": detail})
