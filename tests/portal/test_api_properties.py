"""Property-based: whatever a client sends, the portal never answers with a 5xx.

schemathesis generates requests from the portal's own OpenAPI document (valid ones and
ones that break it) and each is sent three ways: anonymously, as a logged-in admin, and
signed by an enrolled device, so generated bodies get past the signature check into
validation and the database. On SQLite and PostgreSQL (the `portal` fixture).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyotp
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from agent import report
from portal import staff
from tests.portal.test_api import enroll

# The checked-in document (tests/portal/test_api.py keeps it equal to what the app serves).
schema = schemathesis.openapi.from_path(Path(__file__).parents[2] / "portal" / "openapi.json")


class Callers:
    """An anonymous client, an admin's logged-in client and an enrolled device's key."""

    def __init__(self, portal: Any) -> None:
        self.anonymous = TestClient(portal.app, base_url="https://portal.test")
        self.admin = TestClient(portal.app, base_url="https://portal.test")
        with portal.sessions() as session:
            secret = staff.add_staff(session, "ines", "a long admin password", "admin")
        code = pyotp.TOTP(secret).now()
        login = self.admin.post(
            "/login",
            data={"name": "ines", "password": "a long admin password", "code": code},
            follow_redirects=False,
        )
        assert login.headers["location"] == "/helpdesk", "the admin could not log in"
        self.device, self.key, _ = enroll(portal)


@pytest.fixture
def callers(portal: Any) -> Callers:
    return Callers(portal)


def send(client: TestClient, case: Any, signed_by: tuple[str, str] | None = None) -> Any:
    kwargs = case.as_transport_kwargs()
    headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if isinstance(v, str)}
    options: dict[str, Any] = {"params": kwargs.get("params"), "follow_redirects": False}
    if "json" in kwargs:
        body = json.dumps(kwargs["json"]).encode()
        headers["content-type"] = "application/json"
    elif "data" in kwargs and isinstance(kwargs["data"], dict):
        options["data"] = kwargs["data"]
        body = b""
    else:
        body = kwargs.get("data") or kwargs.get("content") or b""
        body = body.encode() if isinstance(body, str) else bytes(body)
    if signed_by is not None:
        device, key = signed_by
        headers.update(report.signed_headers(key, device, case.method, case.formatted_path, body))
    if body:
        options["content"] = body
    return client.request(case.method, case.formatted_path, headers=headers, **options)


@schema.parametrize()
@settings(
    max_examples=20,
    derandomize=True,  # the same examples every run: CI fails for a change, not for luck
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_input_makes_the_portal_fail(case: Any, callers: Callers) -> None:
    for who, client, signer in (
        ("anonymous", callers.anonymous, None),
        ("admin", callers.admin, None),
        ("device", callers.anonymous, (callers.device, callers.key)),
    ):
        answer = send(client, case, signer)
        assert answer.status_code < 500, (
            f"{case.method} {case.formatted_path} as {who} -> {answer.status_code}: "
            f"{answer.text[:300]}"
        )
