"""Calls people can hear: a known tone into each side of a real call, and what the other
side recorded, on every kind of network a remote worker calls from (lab/net.py).

Each agent plays its own tone (`--play`) and records what it receives (`--record`); a call
passes when each side heard the other's tone clearly for the whole call.

The side that answers with a file player (pjsua2 2.15's wheel, null sound device) also
sends back what it receives in alternate passes of its file: the caller then hears its own
tone under the other's. That is the audio check's artefact (a call with a microphone has no
player), so what is asserted is the other side's tone, not the absence of one's own. The SBC's relay
(rtpengine) anchors every call, so the test also checks that each side's media went to the
relay's address on the network that side reaches the SBC by, and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lab import net
from tests.audio import TONES, heard, write_tone
from tests.netlab import NETLAB_MARKS, in_ns, namespace_of, run_in_ns, shared_netlab, user_config

pytestmark = NETLAB_MARKS
__all__ = ["shared_netlab"]  # the fixture, used by name

HOLD_S = 5.0
# The first half second of a recording is the jitter buffer filling: judged after it.
SETTLE_S = 0.5


@dataclass(frozen=True)
class Party:
    name: str
    where: str  # laptop (public Wi-Fi), home (behind NAT), hotel (NAT, tunnel blocked), office
    paths: tuple[str, ...] | None  # None: as the lab configures that user
    path: str  # the protected path the agent must end up on
    relay: str  # the SBC address its media must go to

    def config(self, state: Any) -> Path:
        changes = {} if self.paths is None else {"paths": list(self.paths)}
        return user_config(state, self.name, self.where, **changes)

    def netns(self, state: Any) -> str:
        return namespace_of(state, self.name, self.where)


BOB = Party("bob", "office", None, "sbc_mtls", net.OFFICE_LAN["office"])
ALICE_TUNNEL = Party("alice", "laptop", ("wireguard",), "wireguard", net.TUNNEL["office"])
ALICE_WIFI = Party("alice", "laptop", ("sbc_mtls",), "sbc_mtls", net.HOSTS["office"])
ALICE_HOME_TUNNEL = Party("alice", "home", ("wireguard",), "wireguard", net.TUNNEL["office"])
ALICE_HOME = Party("alice", "home", None, "sbc_mtls", net.HOSTS["office"])  # SBC path only
# carol's laptop tries the tunnel first; the hotel drops it, so she ends up on the SBC path.
CAROL_HOTEL = Party("carol", "hotel", None, "sbc_mtls", net.HOSTS["office"])

CASES = {
    "tunnel": (ALICE_TUNNEL, BOB),
    "sbc-from-public-wifi": (ALICE_WIFI, BOB),
    "hotel-blocks-the-tunnel": (CAROL_HOTEL, BOB),
    "tunnel-from-behind-home-nat": (ALICE_HOME_TUNNEL, BOB),
    "sbc-from-behind-home-nat": (ALICE_HOME, BOB),
    "office-calls-home-nat": (BOB, ALICE_HOME),
    "home-nat-calls-hotel-nat": (ALICE_HOME, CAROL_HOTEL),
    "hotel-nat-calls-home-nat": (CAROL_HOTEL, ALICE_HOME),
}


@pytest.mark.parametrize("case", CASES)
def test_each_side_hears_the_other(
    shared_netlab: Any, env: dict[str, str], tmp_path: Path, case: str
) -> None:
    caller, callee = CASES[case]
    tone = {
        "caller": write_tone(tmp_path / "caller.wav", TONES["caller"]),
        "callee": write_tone(tmp_path / "callee.wav", TONES["callee"]),
    }
    recorded = {"caller": tmp_path / "caller-heard.wav", "callee": tmp_path / "callee-heard.wav"}
    answering = in_ns(
        callee.netns(shared_netlab),
        callee.config(shared_netlab),
        "answer", "--count", "1",
        "--play", str(tone["callee"]), "--record", str(recorded["callee"]),
        env=env,
    )  # fmt: skip
    try:
        answering.wait_for("registered", timeout=20)
        calling = run_in_ns(
            caller.netns(shared_netlab),
            caller.config(shared_netlab),
            "call", f"sip:{callee.name}@lab.guardphone.test", "--hangup-after", str(HOLD_S),
            "--play", str(tone["caller"]), "--record", str(recorded["caller"]),
            env=env,
        )  # fmt: skip
        assert any(x["state"] == "call_established" for x in calling), calling
        assert answering.wait(15) == 0, answering.output_tail()
    finally:
        answering.stop()

    for party, lines in ((caller, calling), (callee, answering.lines)):
        established = next((x for x in lines if x["state"] == "call_established"), None)
        assert established is not None, f"{party.name} ({party.where}): {lines}"
        security = established["security"]
        assert security["path"] == party.path, f"{party.name} went {security['path']}"
        media = security["media"]
        assert media["srtp"] and media["transport"] == "RTP/SAVP"
        # Media goes to the SBC's relay on the network this side reaches the SBC by.
        assert media["sent_to"].rpartition(":")[0] == party.relay, media
        assert media["via_sbc"] is True
        ended = next(x for x in lines if x["state"] == "call_ended")
        assert ended["duration_s"] >= HOLD_S - 0.5

    for side, other in (("caller", "callee"), ("callee", "caller")):
        got = heard(recorded[side], TONES[other], after_s=SETTLE_S)
        assert got.seconds >= HOLD_S - 1, f"the {side}'s recording is {got.seconds} s long"
        # What a listener notices: the other side's tone, clearly, for the whole call.
        assert got.share >= 0.9, f"the {side} did not hear the {other} ({case}): {got}"
