"""Register over mutual TLS, and call between two agents with SRTP, on the real lab SBC."""

from __future__ import annotations

import time
from typing import Any

import pytest

from agent.service import QUIET_S
from bench.idle import switches
from tests.services import agent, run_agent

pytestmark = [pytest.mark.kamailio, pytest.mark.keychain]


def config_of(lab: Any, name: str) -> str:
    return next(u.config for u in lab.users if u.name == name)


def test_register_once_over_mutual_tls(lab: Any, env: dict[str, str]) -> None:
    code, lines, stderr = run_agent(config_of(lab, "alice"), "register", "--once", env=env)

    assert code == 0, stderr
    states = [line["state"] for line in lines]
    assert states == ["checking", "connecting", "registered", "unregistered"]
    registered = lines[2]
    assert registered["account"] == "alice@lab.guardphone.test"
    assert registered["signaling"]["tls_version"] == "TLSv1.2"
    assert registered["signaling"]["cipher"].startswith("ECDHE-")
    assert registered["signaling"]["server_verified"] is True
    assert registered["signaling"]["server_cn"] == "sbc.lab.guardphone.test"
    assert lines[3]["reason"] == "unregistered on request"


def test_call_between_two_agents_is_srtp_on_both_sides(lab: Any, env: dict[str, str]) -> None:
    with agent(config_of(lab, "bob"), "answer", "--count", "1", env=env) as bob:
        bob.wait_for("registered")
        code, alice, stderr = run_agent(
            config_of(lab, "alice"),
            "call",
            "sip:bob@lab.guardphone.test",
            "--hangup-after",
            "1.5",
            env=env,
        )
        assert code == 0, stderr
        assert bob.wait(10) == 0
    bob_lines = bob.lines

    for side in (alice, bob_lines):
        established = next(line for line in side if line["state"] == "call_established")
        media = established["security"]["media"]
        # Read from the live stream (pjsua2 getStreamInfo + the session dump), not config.
        assert media["srtp"] is True
        assert media["transport"] == "RTP/SAVP"
        assert media["keying"] == "SDES"
        assert media["crypto_suite"] and media["crypto_suite"].startswith("AES")
        assert media["end_to_end"] is False
        assert media["scope"] == "hop by hop to the company SBC"
        assert established["security"]["signaling"]["tls_version"] == "TLSv1.2"
        ended = next(line for line in side if line["state"] == "call_ended")
        assert ended["duration_s"] >= 1.4
        assert ended["quality"]["rx_packets"] > 20  # media really flowed (20 ms frames)
        assert ended["quality"]["loss_percent"] == 0.0
    incoming = next(line for line in bob_lines if line["state"] == "incoming")
    assert "sip:alice@lab.guardphone.test" in incoming["from"]


def test_call_to_unknown_user_fails_with_reason(lab: Any, env: dict[str, str]) -> None:
    code, lines, _ = run_agent(
        config_of(lab, "alice"), "call", "sip:nobody@lab.guardphone.test", env=env
    )
    assert code == 1
    failed = next(line for line in lines if line["state"] == "call_failed")
    assert failed["sip_code"] == 404
    assert failed["code"] == "not_found"


def test_sigterm_unregisters_and_exits_within_a_second(lab: Any, env: dict[str, str]) -> None:
    import signal
    import time

    with agent(config_of(lab, "alice"), "register", env=env) as alice:
        alice.wait_for("registered")
        started = time.monotonic()
        alice.proc.send_signal(signal.SIGTERM)
        code = alice.wait(5)
        took = time.monotonic() - started
    assert code == 0  # not -6 (SIGABRT): pjsua2 was destroyed in order
    assert took < 1.0, f"shutdown took {took:.2f} s"
    assert alice.lines[-1]["state"] == "unregistered"
    assert alice.lines[-1]["reason"] == "unregistered on request"


def test_sigterm_during_a_call_hangs_up_cleanly(lab: Any, env: dict[str, str]) -> None:
    import signal
    import time

    with agent(config_of(lab, "bob"), "answer", "--count", "1", env=env) as bob:
        bob.wait_for("registered")
        with agent(
            config_of(lab, "alice"), "call", "sip:bob@lab.guardphone.test", env=env
        ) as alice:
            alice.wait_for("call_established")
            started = time.monotonic()
            alice.proc.send_signal(signal.SIGTERM)
            code = alice.wait(5)
            took = time.monotonic() - started
        assert code == 0, alice.output_tail()
        assert took < 1.0, f"shutdown took {took:.2f} s"
        bob.wait_for("call_ended", timeout=5)  # the hang-up reached the other side
        assert bob.wait(5) == 0


def test_an_idle_agent_sleeps_and_still_rings_at_once(lab: Any, env: dict[str, str]) -> None:
    # Registered and quiet, the agent sleeps on its sockets and netlink instead of a 250 ms
    # tick (4 wake-ups a second before), yet an INVITE on its SBC connection wakes it.
    calls = 3
    with agent(config_of(lab, "bob"), "answer", "--count", str(calls), env=env) as bob:
        bob.wait_for("registered")
        for _ in range(calls):
            time.sleep(QUIET_S + 1)  # nothing has happened for a while
            before = switches(bob.pid)
            time.sleep(3)
            per_s = (switches(bob.pid) - before) / 3
            assert per_s < 2.5, f"{per_s:.1f} wake-ups/s while idle"
            with agent(config_of(lab, "alice"), "call", "sip:bob@lab.guardphone.test",
                       "--hangup-after", "0.2", env=env) as alice:  # fmt: skip
                alice.wait_for("calling")
                dialled = time.monotonic()
                bob.wait_for("incoming", timeout=5)
                # Woken by the INVITE, not by the next second's look around.
                assert time.monotonic() - dialled < 0.25
                alice.wait_for("call_ended", timeout=10)
            bob.wait_for("call_ended", timeout=5)
