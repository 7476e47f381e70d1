"""The real portal (uvicorn over TLS, its key pinned by the agent) in front of the lab SBC:
a device enrolls with a portal token, registers, reports its posture and events; the
helpdesk sees why it can or cannot call (in Chromium, logged in with password and TOTP);
a suspend command unregisters it (the SBC drops the
contact), a resume command brings it back, and a policy demanding a newer agent refuses it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest

from agent import config, enroll, keystore
from agent.events import EventLog
from portal import db, staff
from portal.app import publish_policy
from portal.db import CommandRow, Device, EventRow, PostureRow
from portal.keys import PortalKeys, init_state
from tests.browser import chromium_page, log_in
from tests.services import PortalProcess, agent, run_agent, run_cli

SCREENSHOTS = Path(os.environ.get("GUARDPHONE_SCREENSHOTS", "build/screenshots"))

pytestmark = [pytest.mark.kamailio, pytest.mark.keychain]


@dataclass
class Portal:
    url: str
    db_url: str
    state: Path
    server: PortalProcess

    def session(self) -> Any:
        return db.sessions(db.engine_for(self.db_url))()

    def restart(self) -> None:
        """The same portal (database, keys, certificate, port) started again."""
        s = self.server
        self.server = PortalProcess(s.db_url, s.state, s.domain, s.cert, s.key, port=s.port)


@pytest.fixture
def portal(lab: Any, tmp_path: Path) -> Iterator[Portal]:
    directory = Path(lab.directory)
    state = tmp_path / "portal-state"
    # The portal signs devices with the organisation's CA: the one the SBC trusts.
    init_state(state, (directory / "ca.pem").read_bytes(), (directory / "ca.key").read_bytes())
    db_url = f"sqlite:///{tmp_path / 'portal.db'}"
    server = PortalProcess(
        db_url, state, lab.domain, directory / "portal.pem", directory / "portal.key"
    )
    running = Portal(server.url, db_url, state, server)
    yield running
    running.server.stop()


def wait_until(
    check: Callable[[], Any], timeout: float = 15.0, why: Callable[[], str] = lambda: ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out {why()}")
        time.sleep(0.2)


@pytest.fixture
def dave(lab: Any, portal: Portal, store: Any, tmp_path: Path) -> Iterator[Path]:
    directory = Path(lab.directory)
    data = json.loads((directory / "agents" / "dave.json").read_text())
    data["keychain_service"] = f"guardphone-portal-{tmp_path.name[-12:]}"
    data["portal"]["url"] = portal.url
    data["portal"]["poll_interval_s"] = 0.5
    data["event_log"] = str(tmp_path / "dave-events.db")
    data["fraud"] = {"state_file": str(tmp_path / "dave-fraud.db")}
    config = tmp_path / "dave.json"
    config.write_text(json.dumps(data))
    yield config
    keystore.delete_credentials(store, data["keychain_service"], "dave@lab.guardphone.test")


def test_enroll_report_suspend_resume_and_update_required_through_the_portal(
    lab: Any, portal: Portal, dave: Path, env: dict[str, str], store: Any
) -> None:
    enrollee = json.loads((Path(lab.directory) / "enrollee.json").read_text())
    with portal.session() as session:
        token = staff.add_token(session, "dave", enrollee["password"], hours=1)
        secret = staff.add_staff(session, "ines", "a long admin password", "admin")
    done = run_cli(str(dave), "enroll", env=env, stdin=token + "\n")
    assert done.returncode == 0, done.stderr
    # Renewal through the portal, signed with the current key: a fresh key takes over (the
    # registration and the signed reports below use it).
    cfg = config.load(dave)
    before = keystore.load_credentials(store, cfg.keychain_service, cfg.account_id)
    enroll.renew(cfg, store)
    after = keystore.load_credentials(store, cfg.keychain_service, cfg.account_id)
    assert after.key_pem != before.key_pem and after.cert_pem != before.cert_pem
    with portal.session() as session:
        device = session.query(Device).one()
        publish_policy(session, PortalKeys(portal.state), report_interval_s=60)

    alice = next(u.config for u in lab.users if u.name == "alice")
    with agent(dave, "register", env=env) as running:
        running.wait_for("registered")

        # Posture and events arrive, signed by the device.
        def reported() -> Any:
            with portal.session() as session:
                row = session.query(PostureRow).filter_by(device_id=device.id).first()
                events = session.query(EventRow).filter_by(device_id=device.id).count()
                return row if row is not None and events >= 3 else None

        report = wait_until(reported).report
        assert report["sip"]["registered"] is True and report["srtp_mandatory"] is True
        checks = {c["name"]: c["result"] for c in report["checks"]}
        assert checks["Registered with the company SBC"] == "pass"
        assert report["os"]["kernel"] and report["keychain_backend"].endswith("Keyring")

        # The helpdesk reads it in a real browser, after logging in with password and TOTP.
        with portal.session() as session:
            types = {e.type for e in session.query(EventRow).filter_by(device_id=device.id)}
        assert "sip.registered" in types, types
        with chromium_page() as page:
            log_in(page, portal.url, "ines", "a long admin password", pyotp.TOTP(secret).now())
            page.wait_for_url("**/helpdesk")
            page.fill("input[name=q]", "dave")
            page.press("input[name=q]", "Enter")
            page.get_by_role("link", name="dave").click()
            page.wait_for_url(f"**/helpdesk/devices/{device.id}")
            assert page.inner_text("#verdict").startswith("Can call")
            assert "Registered with the company SBC over mutual TLS" in page.inner_text("#verdict")

            # Suspend from the page: logged, unregistered properly (the SBC drops the contact).
            with page.expect_navigation():
                page.get_by_role("button", name="Suspend calls").click()
            gone = running.wait_for("unregistered")
            assert gone["code"] == "fraud_suspended"
            _, lines, _ = run_agent(alice, "call", "sip:dave@lab.guardphone.test", env=env)
            assert next(line for line in lines if line["state"] == "call_failed")["sip_code"] == 404

            def says_suspended() -> bool:
                page.reload()
                verdict = page.inner_text("#verdict")
                return (
                    verdict.startswith("Cannot call")
                    and "suspended by your organisation" in verdict
                )

            wait_until(says_suspended)  # the next report, with the reason in words

            # The security events dave's agent sent (the command, the suspension) are listed.
            def security_events() -> set[str]:
                with portal.session() as session:
                    rows = session.query(EventRow).filter_by(device_id=device.id)
                    return {e.type for e in rows if e.severity != "info"}

            sent = wait_until(lambda: (t := security_events()) >= {"portal.command"} and t)
            page.reload()
            listed = page.inner_text("#events")
            assert all(t in listed for t in sent), (sent, listed)
            page.screenshot(path=SCREENSHOTS / "helpdesk-dave-suspended.png")

            # Resume from the page: registers again.
            with page.expect_navigation():
                page.get_by_role("button", name="Resume calls").click()
            running.wait_for("registered")

            # A policy demanding a newer agent: refused, "update required".
            with portal.session() as session:
                publish_policy(
                    session,
                    PortalKeys(portal.state),
                    min_agent_version="9.0.0",
                    below_min_version="refuse",
                )
            refused = running.wait_for("refused")
            assert refused["code"] == "update_required"
            assert running.wait_for("unregistered")["code"] == "update_required"

    status = json.loads(run_cli(str(dave), "status", "--json", env=env).stdout)["portal"]
    assert status["device_id"] == device.id and status["policy_version"] == 2
    assert status["last_contact"] != "never" and status["min_agent_version"] == "9.0.0"
    checked = run_cli(str(dave), "doctor", "--json", env=env)
    found = {c["name"]: c for c in json.loads(checked.stdout)["checks"]}
    assert found["Portal"]["result"] == "pass"  # reachable, its key pinned
    assert found["Version"]["result"] == "fail" and found["Version"]["blocks_calls"]
    assert checked.returncode == 1
    types = [line["state"] for line in running.lines]
    assert types.count("portal_command") == 2 and "fraud_resumed" in types
    with portal.session() as session:
        assert all(c.done_at is not None for c in session.query(CommandRow))


def test_the_portal_down_for_a_while_loses_nothing_and_delivers_in_order_afterwards(
    lab: Any, portal: Portal, dave: Path, env: dict[str, str]
) -> None:
    enrollee = json.loads((Path(lab.directory) / "enrollee.json").read_text())
    with portal.session() as session:
        token = staff.add_token(session, "dave", enrollee["password"], hours=1)
    assert run_cli(str(dave), "enroll", env=env, stdin=token + "\n").returncode == 0
    with portal.session() as session:
        device = session.query(Device).one().id
    local_log = EventLog(Path(json.loads(dave.read_text())["event_log"]))
    alice = next(u.config for u in lab.users if u.name == "alice")

    def delivered() -> int:
        with portal.session() as session:
            return int(session.query(EventRow).filter_by(device_id=device).count())

    with agent(dave, "answer", "--count", "1", env=env) as first:
        first.wait_for("registered")
        wait_until(lambda: delivered() >= 2)  # the link works before the outage
        portal.server.stop()
        down_at = dt.datetime.now(dt.UTC)
        # While the portal is away: a call (events), the agent stopping and a new agent
        # starting (its first posture report waits in the outbox, on disk).
        _, lines, _ = run_agent(
            alice, "call", "sip:dave@lab.guardphone.test", "--hangup-after", "1", env=env
        )
        assert any(line["state"] == "call_established" for line in lines), lines
        assert first.wait(20) == 0
    with agent(dave, "register", env=env) as second:
        second.wait_for("registered")
        newest = next(local_log.query(limit=1, newest_first=True)).seq
        assert delivered() < newest  # the outage really held events back
        portal.restart()
        up_at = dt.datetime.now(dt.UTC)

        # Every event arrives, each once, in the order of the agent's hash chain.
        wait_until(
            lambda: delivered() >= newest,
            timeout=60,
            why=lambda: (
                f"({delivered()} of {newest} events; the portal's log:\n"
                f"{portal.server.log_tail()}\nthe agent's: {second.output_tail()})"
            ),
        )
        with portal.session() as session:
            rows = session.query(EventRow).filter_by(device_id=device).order_by(EventRow.seq).all()
            reports = (
                session.query(PostureRow).filter_by(device_id=device).order_by(PostureRow.id).all()
            )
        assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
        # Among them the call made while the portal was away.
        during = [r.type for r in rows if down_at < dt.datetime.fromisoformat(r.time) < up_at]
        assert any(t.startswith("call.") for t in during), during
        # The report written while the portal was down was delivered, after the ones before.
        times = [dt.datetime.fromisoformat(r.report["time"]) for r in reports]
        assert times == sorted(times)
        assert any(down_at < t < up_at for t in times), (down_at, up_at, times)
    local_log.close()
