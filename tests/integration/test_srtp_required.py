"""SRTP is mandatory both ways: an RTP-only peer cannot call guardphone, nor be called by it."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.services import agent, run_agent

pytestmark = [pytest.mark.kamailio, pytest.mark.keychain]
# An old desk phone: bare pjsua2 with SRTP disabled (lab/bare_peer.py).
PEER = ["-m", "lab.bare_peer"]


def config_of(lab: Any, name: str) -> str:
    return next(u.config for u in lab.users if u.name == name)


def peer_lines(stdout: str) -> list[dict[str, Any]]:
    """The peer's JSON lines (pjsua2 prints a banner of its own first)."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_rtp_only_offer_to_guardphone_is_answered_488(lab: Any, env: dict[str, str]) -> None:
    with agent(config_of(lab, "alice"), "answer", env=env) as alice:
        alice.wait_for("registered")
        done = subprocess.run(
            [
                sys.executable,
                *PEER,
                config_of(lab, "carol"),
                "call",
                "sip:alice@lab.guardphone.test",
                "--srtp",
                "disabled",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        events = peer_lines(done.stdout)
        seen = [(e["event"], e.get("code")) for e in events]
        assert ("registration", 200) in seen, done.stderr
        assert ("call_ended", 488) in seen
        assert ("confirmed", None) not in seen
        alice.stop()
    # pjsua2 refuses the offer before the application hears of it: no incoming call at all.
    assert not any(line["state"] in ("incoming", "call_established") for line in alice.lines)


def test_guardphone_call_to_rtp_only_peer_fails_with_reason(lab: Any, env: dict[str, str]) -> None:
    peer = subprocess.Popen(
        [sys.executable, *PEER, config_of(lab, "carol"), "answer", "6", "--srtp", "disabled"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert peer.stdout is not None
        for line in peer.stdout:
            if '"ready"' in line:
                break
        code, lines, _ = run_agent(
            config_of(lab, "alice"), "call", "sip:carol@lab.guardphone.test", env=env
        )
    finally:
        peer.terminate()
        peer.wait(10)
    assert code == 1
    failed = next(line for line in lines if line["state"] == "call_failed")
    assert failed["sip_code"] == 488
    assert failed["code"] == "srtp_required"
    assert "no SRTP" in failed["reason"]
    assert not any(line["state"] == "call_established" for line in lines)
