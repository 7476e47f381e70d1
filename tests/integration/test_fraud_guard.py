"""The toll-fraud guard end to end on the lab: blocked before the wire, then suspended."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.services import agent, run_agent, run_cli

pytestmark = [pytest.mark.kamailio, pytest.mark.keychain]
PREMIUM = "+1 900 555 0199"


def config_of(lab: Any, name: str) -> str:
    return next(u.config for u in lab.users if u.name == name)


def test_premium_burst_is_blocked_then_suspended_then_resumed(
    lab: Any, env: dict[str, str], store: Any
) -> None:
    carol = config_of(lab, "carol")
    kamailio_log = Path(lab.directory) / "kamailio.log"
    before = kamailio_log.read_text()

    for _ in range(2):
        code, lines, _ = run_agent(carol, "call", PREMIUM, env=env)
        assert code == 1
        blocked = lines[-2] if lines[-1]["state"] == "unregistered" else lines[-1]
        assert blocked["state"] == "call_blocked"
        assert blocked["rule"] == "type:premium_rate" and blocked["number"] == "+19005550199"
        assert "calling" not in [line["state"] for line in lines]

    code, lines, _ = run_agent(carol, "call", PREMIUM, env=env)
    assert code == 1
    states = [line["state"] for line in lines]
    assert "fraud_suspended" in states
    unregistered = next(line for line in lines if line["state"] == "unregistered")
    assert unregistered["code"] == "fraud_suspended"
    # Not one INVITE for the premium number reached the SBC.
    new = kamailio_log.read_text()[len(before) :]
    assert "INVITE from carol" not in new

    # Suspended: no registration at all; and the SBC dropped carol's contact.
    code, lines, _ = run_agent(carol, "register", "--once", env=env)
    assert code == 1 and lines[-1]["code"] == "fraud_suspended"
    code, lines, _ = run_agent(
        config_of(lab, "alice"), "call", "sip:carol@lab.guardphone.test", env=env
    )
    assert next(line for line in lines if line["state"] == "call_failed")["sip_code"] == 404

    # Suspended, and still an emergency call is never blocked: it registers for it and dials.
    code, lines, _ = run_agent(carol, "call", "911", env=env)
    states = [line["state"] for line in lines]
    assert "emergency_call" in states and "calling" in states
    assert next(line for line in lines if line["state"] == "calling")["uri"].startswith("sip:911")
    # ...while any other number stays refused.
    code, lines, _ = run_agent(carol, "call", "+1 212 555 0100", env=env)
    assert code == 1 and lines[-1]["code"] == "fraud_suspended"

    # The local admin code (provisioned by IT in the keychain) resumes the account.
    entry = "carol@lab.guardphone.test/fraud-admin-code"
    store.set(lab.keychain_service, entry, "4242-1337")
    try:
        wrong = run_cli(carol, "fraud", "resume", env=env, stdin="0000\n")
        assert wrong.returncode == 1 and "stays suspended" in wrong.stderr
        ok = run_cli(carol, "fraud", "resume", env=env, stdin="4242-1337\n")
        assert ok.returncode == 0, ok.stderr
    finally:
        store.delete(lab.keychain_service, entry)
    code, lines, stderr = run_agent(carol, "register", "--once", env=env)
    assert code == 0, stderr
    events = run_cli(carol, "events", "--json", env=env, check=True).stdout
    types = [json.loads(line)["type"] for line in events.splitlines()]
    assert types.count("call.blocked") == 2
    assert "fraud.suspended" in types and "fraud.resumed" in types


def test_internal_calls_and_plain_numbers_still_work(lab: Any, env: dict[str, str]) -> None:
    with agent(config_of(lab, "bob"), "answer", "--count", "1", env=env) as bob:
        bob.wait_for("registered")
        code, lines, stderr = run_agent(
            config_of(lab, "alice"),
            "call",
            "sip:bob@lab.guardphone.test",
            "--hangup-after",
            "0.3",
            env=env,
        )
    assert code == 0, stderr
    # A valid domestic number passes the guard and becomes a tel-style SIP URI (the lab SBC
    # has no such user: 404 — but the INVITE was allowed to exist).
    code, lines, _ = run_agent(config_of(lab, "alice"), "call", "+1 212 555 0100", env=env)
    calling = next(line for line in lines if line["state"] == "calling")
    assert calling["uri"] == "sip:+12125550100@lab.guardphone.test;user=phone"
