"""The helpdesk pages in a real browser (Debian's Chromium, headless, driven by Playwright)
against the portal served over TLS by uvicorn: log in with password and TOTP, find the
non-compliant device, read why its person cannot call, and (as an admin) suspend it.
Screenshots go to build/screenshots/."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from agent import report, schemas
from agent.enroll import _new_key_and_csr
from portal import db, staff
from portal.db import CommandRow
from tests.browser import chromium_page, log_in
from tests.services import PortalProcess

SCREENSHOTS = Path(os.environ.get("GUARDPHONE_SCREENSHOTS", "build/screenshots"))


@pytest.fixture
def served(portal_files: dict[str, Any]) -> Iterator[tuple[str, str, Path]]:
    """The portal over TLS (a test CA made now), its database URL and the CA file."""
    server_proc = PortalProcess(**portal_files)
    yield server_proc.url, portal_files["db_url"], portal_files["cert"].parent / "ca.pem"
    server_proc.stop()


@pytest.fixture
def page() -> Iterator[Any]:
    with chromium_page() as browser_page:
        yield browser_page


def test_helpdesk_finds_why_alice_cannot_call_and_an_admin_suspends(
    served: tuple[str, str, Path], page: Any, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    url, db_url, _ = served
    maker = db.sessions(db.engine_for(db_url))
    with maker() as session:
        token = staff.add_token(session, "alice", "sip-secret-123")
        secret = staff.add_staff(session, "ines", "a long admin password", "admin")
    # A device enrolls and reports: its tunnel is down and its firewall off.
    from portal.app import PortalConfig, create_app

    app = create_app(PortalConfig(db_url, tmp_path / "state", "corp.example"))
    with TestClient(app, base_url="https://portal.test") as api:
        key, csr = _new_key_and_csr("alice")
        device = api.post("/v1/enroll", json={"token": token, "csr": csr}).json()["device_id"]
        doc = schemas.PostureReport(
            device_id=device,
            account="alice@corp.example",
            time=dt.datetime.now(dt.UTC).isoformat(),
            agent_version="0.1.0",
            firewall_active=False,
            screen_lock=True,
            srtp_mandatory=True,
            os=schemas.OsFacts(name="Debian GNU/Linux", version="12", pending_security_updates=0),
            disk=schemas.DiskFacts(root_encrypted=True, home_encrypted=True),
            sip=schemas.SipFacts(registered=False, reason_code="tunnel_down"),
            # Her last call, from the hotel, carried nothing back to her.
            last_call=schemas.CallFacts(
                path="sbc_mtls",
                sent_to="192.0.2.1:30000",
                ended_at=dt.datetime.now(dt.UTC).isoformat(),
                duration_s=14.2,
                loss_percent=100.0,
                mos=1.0,
                media_silent=["in"],
            ),
            checks=[
                schemas.CheckFacts(name="Device certificate", result="pass", observed="Valid."),
                schemas.CheckFacts(
                    name="Office tunnel connected",
                    result="fail",
                    observed="The office tunnel wg-office is down.",
                    fix="Connect to the office tunnel with your VPN client.",
                ),
            ],
        ).model_dump()
        body = report.body_of(doc)
        headers = report.signed_headers(key, device, "POST", "/v1/posture", body)
        assert api.post("/v1/posture", content=body, headers=headers).status_code == 200

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log_in(page, url, "ines", "a long admin password", "123456")  # a wrong code
    page.wait_for_url("**error=*")
    assert "Wrong name, password or code" in page.inner_text("#error")
    page.screenshot(path=SCREENSHOTS / "helpdesk-login.png")
    page.fill("input[name=name]", "ines")
    page.fill("input[name=password]", "a long admin password")
    page.fill("input[name=code]", pyotp.TOTP(secret).now())
    page.click("button[type=submit]")
    page.wait_for_url("**/helpdesk")

    page.check("input[name=noncompliant]")
    page.click("main form button[type=submit]")
    page.wait_for_url("**noncompliant=true*")
    rows = page.locator("#devices tr.fail")
    assert rows.count() == 1 and "host firewall: off" in rows.first.inner_text()
    page.screenshot(path=SCREENSHOTS / "helpdesk-devices.png")
    rows.first.get_by_role("link", name="alice").click()
    page.wait_for_url(f"**/helpdesk/devices/{device}")

    verdict = page.inner_text("#verdict")
    assert "Cannot call" in verdict and "Office tunnel connected" in verdict
    assert "What to do: Connect to the office tunnel with your VPN client." in verdict
    failing = page.locator("#posture tr.fail")
    assert failing.count() and failing.first.inner_text().startswith("Host firewall")
    colour = failing.first.locator("td").first.evaluate(
        "cell => getComputedStyle(cell).backgroundColor"
    )
    assert colour == "rgb(252, 232, 230)"  # highlighted, as a person sees it
    last_call = page.inner_text("#last-call")
    assert "the user could not hear the other side" in last_call
    assert "1.0 (bad)" in last_call and "192.0.2.1:30000 over mutual TLS" in last_call
    page.screenshot(path=SCREENSHOTS / "helpdesk-device.png", full_page=True)

    with page.expect_navigation():
        page.get_by_role("button", name="Suspend calls").click()
    with maker() as session:
        command = session.query(CommandRow).one()
        assert (command.kind, command.issued_by) == ("suspend", "ines")
