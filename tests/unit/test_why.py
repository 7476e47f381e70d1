"""agent.why: every gate check, its result, what was seen, and a fix a person can act on."""

from __future__ import annotations

from agent.gate import Observations, SbcSeen, Verdict, decide
from agent.reasons import Reason
from agent.why import FAIL, PASS, UNKNOWN, Situation, explain
from tests.unit.test_gate import CFG, GOOD_SBC, GOOD_WG, NOW, wg


def situation(seen: Observations, **changes: object) -> Situation:
    verdict = decide(CFG, seen)
    base = {
        "verdict": verdict,
        "seen": seen,
        "certificate": "Valid until 2027-01-01 (serial 01).",
        "certificate_problem": None,
        "registered": verdict.allowed,
        "registration_failure": None,
        "suspended": None,
        "support_reference": "alice@example.com",
    }
    base.update(changes)
    return Situation(**base)  # type: ignore[arg-type]


def results(checks: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {c.name: c.result for c in checks}


def test_all_good_over_the_tunnel_and_the_sbc_is_not_needed() -> None:
    checks = explain(CFG, situation(Observations(NOW, GOOD_WG, None)))
    got = results(checks)
    assert got["Office tunnel connected"] == PASS
    assert got["Calls routed through the tunnel"] == PASS
    assert got["Company SBC reachable and verified"] == UNKNOWN
    assert got["Registered with the company SBC"] == PASS
    assert not [c for c in checks if c.failed]


def test_a_stale_handshake_fails_the_second_tunnel_check_and_later_ones_are_not_guessed() -> None:
    stale = wg(latest_handshake=NOW - 3600)
    checks = explain(CFG, situation(Observations(NOW, stale, GOOD_SBC)))
    got = results(checks)
    assert got["Office tunnel connected"] == PASS
    assert got["Tunnel reaches the office"] == FAIL
    assert got["Calls routed through the tunnel"] == UNKNOWN
    assert got["Company SBC reachable and verified"] == PASS  # the fallback carries calls
    failed = next(c for c in checks if c.failed)
    assert "3600 s" in failed.observed and "reconnect" in failed.fix


def test_intercepted_network_says_to_use_another_one() -> None:
    untrusted = SbcSeen(None, False, "server_cert_untrusted", "Not our CA.", NOW - 5, None, None)
    seen = Observations(NOW, wg(link_up=False), untrusted)
    checks = explain(CFG, situation(seen))
    sbc = next(c for c in checks if c.name == "Company SBC reachable and verified")
    assert sbc.result == FAIL and "another network" in sbc.fix
    tunnel = next(c for c in checks if c.name == "Office tunnel connected")
    assert tunnel.result == FAIL and tunnel.fix.startswith("Connect to the office tunnel")


def test_expired_certificate_and_suspension_point_to_the_helpdesk_with_a_reference() -> None:
    expired = Reason("device_cert_expired", "Your device certificate expired on 2026-01-01.")
    seen = Observations(NOW, GOOD_WG, None)
    checks = explain(
        CFG,
        situation(
            seen,
            verdict=Verdict(None, reasons=(expired,)),
            certificate=None,
            certificate_problem=expired,
            registered=False,
            suspended="3 blocked dials in 10 minutes",
        ),
    )
    cert = checks[0]
    assert cert.result == FAIL and "expired on 2026-01-01" in cert.observed
    assert "helpdesk" in cert.fix and "Reference: alice@example.com" in cert.fix
    fraud = next(c for c in checks if c.name == "Not suspended for suspected fraud")
    assert fraud.result == FAIL and "3 blocked dials" in fraud.observed
    assert "Reference: alice@example.com" in fraud.fix


def test_a_registration_refused_by_the_sbc_is_named() -> None:
    failure = Reason("auth_failed", "The SBC rejected the SIP password for alice.")
    seen = Observations(NOW, GOOD_WG, None)
    checks = explain(CFG, situation(seen, registered=False, registration_failure=failure))
    last = checks[-1]
    assert last.result == FAIL and last.observed == failure.text and "reset" in last.fix
