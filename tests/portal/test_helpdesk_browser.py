"""The helpdesk pages in a real browser (Debian's Chromium, headless, through Selenium)
against the portal served over TLS by uvicorn: log in with password and TOTP, find the
non-compliant device, read why its person cannot call, and (as an admin) suspend it.
Screenshots go to build/screenshots/."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from agent import report, schemas
from agent.enroll import _new_key_and_csr
from lab import pki
from portal import db, staff
from portal.db import CommandRow
from portal.keys import init_state
from tests.services import PortalProcess

SCREENSHOTS = Path(os.environ.get("GUARDPHONE_SCREENSHOTS", "build/screenshots"))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """The portal over TLS (a test CA made now), its database URL and the CA file."""
    ca = pki.make_ca("Portal test CA")
    server = pki.issue(ca, "portal.test", server=True, ips=("127.0.0.1",))
    (tmp_path / "ca.pem").write_text(ca.cert_pem)
    (tmp_path / "portal.pem").write_text(server.cert_pem)
    (tmp_path / "portal.key").write_text(server.key_pem)
    init_state(tmp_path / "state")
    db_url = f"sqlite:///{tmp_path / 'portal.db'}"
    server_proc = PortalProcess(
        db_url, tmp_path / "state", "corp.example", tmp_path / "portal.pem", tmp_path / "portal.key"
    )
    yield server_proc.url, db_url, tmp_path / "ca.pem"
    server_proc.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("Chromium is not installed (run `make deps`)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900",
                 f"--user-data-dir={tmp_path / 'chromium'}"):  # fmt: skip
        options.add_argument(flag)
    options.accept_insecure_certs = True  # the portal's test CA is not in the system store
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    yield driver
    driver.quit()


def test_helpdesk_finds_why_alice_cannot_call_and_an_admin_suspends(
    served: tuple[str, str, Path], browser: Any, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

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
    browser.get(url + "/helpdesk")
    assert browser.current_url.endswith("/login")  # nothing without logging in
    browser.find_element(By.NAME, "name").send_keys("ines")
    browser.find_element(By.NAME, "password").send_keys("a long admin password")
    browser.find_element(By.NAME, "code").send_keys("123456")  # a wrong code
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait = WebDriverWait(browser, 10)
    wait.until(lambda b: "error=" in b.current_url)
    assert "Wrong name, password or code" in browser.find_element(By.ID, "error").text
    browser.save_screenshot(str(SCREENSHOTS / "helpdesk-login.png"))
    browser.find_element(By.NAME, "name").send_keys("ines")
    browser.find_element(By.NAME, "password").send_keys("a long admin password")
    browser.find_element(By.NAME, "code").send_keys(pyotp.TOTP(secret).now())
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda b: b.current_url.endswith("/helpdesk"))

    browser.find_element(By.NAME, "noncompliant").click()
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait.until(lambda b: "noncompliant=true" in b.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "#devices tr.fail")
    assert len(rows) == 1 and "host firewall: off" in rows[0].text
    browser.save_screenshot(str(SCREENSHOTS / "helpdesk-devices.png"))
    rows[0].find_element(By.LINK_TEXT, "alice").click()
    wait.until(lambda b: f"/helpdesk/devices/{device}" in b.current_url)

    verdict = browser.find_element(By.ID, "verdict").text
    assert "Cannot call" in verdict and "Office tunnel connected" in verdict
    assert "What to do: Connect to the office tunnel with your VPN client." in verdict
    failing = browser.find_elements(By.CSS_SELECTOR, "#posture tr.fail")
    assert failing and failing[0].text.startswith("Host firewall")
    colour = (
        failing[0].find_element(By.CSS_SELECTOR, "td").value_of_css_property("background-color")
    )
    assert colour == "rgba(252, 232, 230, 1)"  # highlighted, as a person sees it
    browser.save_screenshot(str(SCREENSHOTS / "helpdesk-device.png"))

    browser.find_element(By.XPATH, "//button[text()='Suspend calls']").click()

    def issued(_: Any) -> Any:
        with maker() as session:
            return session.query(CommandRow).first()

    wait.until(issued)
    with maker() as session:
        command = session.query(CommandRow).one()
        assert (command.kind, command.issued_by) == ("suspend", "ines")
