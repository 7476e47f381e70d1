"""Two portal processes on one database behave as one: a request replayed to the other is
refused (the nonce is in the database), a token spent on one is spent on both, and a staff
session made by one is valid on the other (signed cookie, shared key)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyotp
from fastapi.testclient import TestClient

from agent import report
from agent.enroll import _new_key_and_csr
from portal import db, staff
from portal.app import PortalConfig, create_app, publish_policy
from portal.keys import init_state
from tests.portal.test_api import posture


def test_two_portal_processes_share_everything_through_the_database(
    db_url: str, tmp_path: Path
) -> None:
    init_state(tmp_path / "state")
    db.migrate(db_url)
    config = PortalConfig(db_url, tmp_path / "state", "corp.example")
    one, two = create_app(config), create_app(config)  # as two processes behind a balancer
    with (
        TestClient(one, base_url="https://portal.test") as a,
        TestClient(two, base_url="https://portal.test") as b,
    ):
        with one.state.sessions() as session:
            token = staff.add_token(session, "alice", "sip-secret-123")
            secret = staff.add_staff(session, "hanna", "correct horse battery", "helpdesk")
        key, csr = _new_key_and_csr("alice")
        device = a.post("/v1/enroll", json={"token": token, "csr": csr}).json()["device_id"]
        assert b.post("/v1/enroll", json={"token": token, "csr": csr}).status_code == 401

        body = report.body_of(posture(device))
        headers = report.signed_headers(key, device, "POST", "/v1/posture", body)
        assert a.post("/v1/posture", content=body, headers=headers).status_code == 200
        replay: Any = b.post("/v1/posture", content=body, headers=headers)
        assert replay.status_code == 409 and replay.json()["detail"]["error"] == "replayed"

        a.post(
            "/login",
            data={
                "name": "hanna",
                "password": "correct horse battery",
                "code": pyotp.TOTP(secret).now(),
            },
        )
        b.cookies.update(a.cookies)
        listed = b.get("/v1/devices")
        assert listed.status_code == 200 and [d["id"] for d in listed.json()] == [device]


def test_a_policy_published_by_one_process_judges_the_next_report_on_the_other(
    db_url: str, tmp_path: Path
) -> None:
    """Each process parses the newest policy once per version: a newer one, published
    anywhere, is used from the next report on (and not an older one it parsed first)."""
    init_state(tmp_path / "state")
    db.migrate(db_url)
    config = PortalConfig(db_url, tmp_path / "state", "corp.example")
    one, two = create_app(config), create_app(config)
    with TestClient(one, base_url="https://portal.test") as a:
        with one.state.sessions() as session:
            token = staff.add_token(session, "alice", "sip-secret-123")
            publish_policy(session, one.state.keys, min_agent_version="0.1.0")
        key, csr = _new_key_and_csr("alice")
        device = a.post("/v1/enroll", json={"token": token, "csr": csr}).json()["device_id"]

        def report_now(minutes: int) -> Any:
            when = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
            body = report.body_of(posture(device, when))  # agent 0.1.0
            headers = report.signed_headers(key, device, "POST", "/v1/posture", body)
            return a.post("/v1/posture", content=body, headers=headers).json()

        assert report_now(0)["compliant"] is True
        with two.state.sessions() as session:
            publish_policy(session, two.state.keys, min_agent_version="0.2.0")
        judged = report_now(1)
        assert judged["compliant"] is False
        assert judged["problems"] == ["agent 0.1.0 is below 0.2.0"]
