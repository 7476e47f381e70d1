"""No protected path, no SIP: the gate in real namespaces with a real wireguard-go tunnel.

A laptop, an office (Kamailio + the other tunnel end) and a hotel neighbour share an
"internet" bridge (lab/net.py). Agents run inside the laptop namespace; a capture on the
laptop's internet-side veth shows what really left the laptop.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from lab import net
from tests.netlab import (
    DESK,
    LAPTOP,
    NAMES,
    NETLAB_MARKS,
    OFFICE,
    WG_LAPTOP,
    Capture,
    in_ns,
    netlab,
    only_wireguard,
    run_in_ns,
    t,
    user_config,
)

pytestmark = NETLAB_MARKS
__all__ = ["netlab"]  # the fixture, used by name


def test_registers_and_calls_through_the_tunnel_only(
    netlab: Any, env: dict[str, str], tmp_path: Path
) -> None:
    capture = Capture(tmp_path / "veth.pcap")
    bob = in_ns(DESK, user_config(netlab, "bob"), "answer", "--count", "1", env=env)
    try:
        bob.wait_for("registered")
        alice = run_in_ns(
            LAPTOP,
            user_config(netlab, "alice"),
            "call",
            "sip:bob@lab.guardphone.test",
            "--hangup-after",
            "1.5",
            env=env,
        )
        assert bob.wait(10) == 0
    finally:
        bob.stop()
    packets = capture.stop()
    connecting = next(line for line in alice if line["state"] == "connecting")
    assert (connecting["path"], connecting["local_address"]) == ("wireguard", "198.51.100.2")
    established = next(line for line in alice if line["state"] == "call_established")
    assert established["security"]["path"] == "wireguard"
    assert established["security"]["media"]["srtp"] is True
    ended = next(line for line in alice if line["state"] == "call_ended")
    assert ended["quality"]["rx_packets"] > 20
    only_wireguard(packets)


def test_no_tunnel_and_no_sbc_is_refused_and_sends_nothing(
    netlab: Any, env: dict[str, str], tmp_path: Path
) -> None:
    subprocess.run(["ip", "-n", LAPTOP, "link", "del", WG_LAPTOP], check=True)
    subprocess.run(
        [
            "ip",
            "-n",
            OFFICE,
            "addr",
            "del",
            f"{net.HOSTS['office']}/24",
            "dev",
            NAMES.veth("office"),
        ],
        check=True,
    )
    capture = Capture(tmp_path / "veth.pcap")
    lines = run_in_ns(LAPTOP, user_config(netlab, "alice"), "register", "--once", env=env)
    packets = capture.stop()
    refused = lines[-1]
    assert refused["state"] == "refused"
    codes = [r["code"] for r in refused["reasons"]]
    assert codes[0] in ("wg_interface_absent", "tunnel_down")
    assert codes[1] in ("sbc_unreachable", "sbc_timeout")
    assert not any(line["state"] in ("connecting", "registered") for line in lines)
    # Only the probe's TCP SYNs towards the (gone) SBC address may appear; never SIP or RTP.
    for protocols, udp, _tcp in packets:
        assert "sip" not in protocols and "rtp" not in protocols and not udp


def test_link_loss_mid_call_ends_call_and_refuses_within_a_second(
    netlab: Any, env: dict[str, str], tmp_path: Path
) -> None:
    wg_only = user_config(netlab, "alice", paths=["wireguard"])
    bob = in_ns(DESK, user_config(netlab, "bob"), "answer", "--count", "1", env=env)
    bob.wait_for("registered")
    alice = in_ns(LAPTOP, wg_only, "call", "sip:bob@lab.guardphone.test", env=env)
    try:
        alice.wait_for("call_established")
        capture = Capture(tmp_path / "veth.pcap")
        cut = time.time()
        subprocess.run(["ip", "-n", LAPTOP, "link", "del", WG_LAPTOP], check=True)
        ended = alice.wait_for("call_ended", timeout=5)
        # The refusal may be logged before the teardown or right after it.
        refused = next((x for x in alice.lines if x["state"] == "refused"), None) or (
            alice.wait_for("refused", timeout=5)
        )
        packets = capture.stop()
    finally:
        alice.stop()
        bob.stop()
    reaction = t(refused) - cut
    assert t(ended) - cut < 1.0
    assert reaction < 1.0, f"refused {reaction:.3f} s after the link went"
    assert ended["code"] == "path_lost"
    assert refused["code"] in ("wg_interface_absent", "tunnel_down")
    # Nothing went out in clear after the tunnel vanished (not even a BYE).
    for protocols, _udp, tcp in packets:
        assert not tcp and "sip" not in protocols and "rtp" not in protocols, protocols


def test_silent_office_is_refused_after_the_threshold(netlab: Any, env: dict[str, str]) -> None:
    wg_only = user_config(netlab, "alice", paths=["wireguard"])
    alice = in_ns(LAPTOP, wg_only, "register", env=env)
    try:
        alice.wait_for("registered")
        stopped = time.time()
        net.stop_wireguard(NAMES, "office")
        refused = alice.wait_for("refused", timeout=10)
    finally:
        alice.stop()
    waited = t(refused) - stopped
    assert refused["code"] == "wg_peer_silent"
    assert 1.0 < waited < 3 + 2.0, f"refused after {waited:.2f} s (threshold 3 s, checks 1 s apart)"


def test_route_around_the_tunnel_is_refused(netlab: Any, env: dict[str, str]) -> None:
    wg_only = user_config(netlab, "alice", paths=["wireguard"])
    alice = in_ns(LAPTOP, wg_only, "register", env=env)
    try:
        alice.wait_for("registered")
        changed = time.time()
        subprocess.run(
            [
                "ip",
                "-n",
                LAPTOP,
                "route",
                "add",
                f"{net.TUNNEL['office']}/32",
                "via",
                net.HOSTS["office"],
                "dev",
                NAMES.veth("laptop"),
            ],
            check=True,
        )
        refused = alice.wait_for("refused", timeout=5)
    finally:
        alice.stop()
    assert refused["code"] == "route_bypasses_tunnel"
    assert t(refused) - changed < 1.0


def test_falls_back_to_the_sbc_path_and_returns_to_the_tunnel(
    netlab: Any, env: dict[str, str]
) -> None:
    alice = in_ns(LAPTOP, user_config(netlab, "alice"), "register", env=env)
    try:
        first = alice.wait_for("connecting")
        alice.wait_for("registered")
        assert first["path"] == "wireguard"
        subprocess.run(["ip", "-n", LAPTOP, "link", "set", WG_LAPTOP, "down"], check=True)
        fallback = alice.wait_for("connecting", timeout=5)
        alice.wait_for("registered", timeout=5)
        assert (fallback["path"], fallback["sbc"]) == ("sbc_mtls", f"192.0.2.1:{netlab.port}")
        subprocess.run(["ip", "-n", LAPTOP, "link", "set", WG_LAPTOP, "up"], check=True)
        back = alice.wait_for("connecting", timeout=8)
        alice.wait_for("registered", timeout=5)
        assert back["path"] == "wireguard"
    finally:
        alice.stop()


def test_twenty_quick_flaps_during_a_call(netlab: Any, env: dict[str, str], tmp_path: Path) -> None:
    wg_only = user_config(netlab, "alice", paths=["wireguard"])
    alice = in_ns(LAPTOP, wg_only, "answer", env=env)
    bob = None
    windows: list[tuple[float, float]] = []  # from asking for the link down to asking it up
    down_for_sure: list[tuple[float, float]] = []  # from `ip` done to asking it up
    try:
        alice.wait_for("registered")
        capture = Capture(tmp_path / "veth.pcap")
        bob = in_ns(
            DESK, user_config(netlab, "bob"), "call", "sip:alice@lab.guardphone.test", env=env
        )
        alice.wait_for("call_established")
        for _ in range(20):
            down = time.time()
            subprocess.run(["ip", "-n", LAPTOP, "link", "set", WG_LAPTOP, "down"], check=True)
            surely_down = time.time()  # `ip` can take tens of ms on a loaded machine
            time.sleep(0.15)
            up = time.time()
            subprocess.run(["ip", "-n", LAPTOP, "link", "set", WG_LAPTOP, "up"], check=True)
            windows.append((down, up))
            down_for_sure.append((surely_down, up))
            time.sleep(0.15)
        last_up = windows[-1][1]
        alice.wait_for("registered", timeout=5)
        time.sleep(2.0)  # nothing more may happen once the path is stable
        packets = capture.stop()
    finally:
        if bob is not None:
            bob.stop()
        alice.stop()

    registered = [t(line) for line in alice.lines if line["state"] == "registered"]
    for when in registered:
        assert not any(down < when < up for down, up in down_for_sure), (
            "registered while down",
            when,
            windows,
            [(line["state"], t(line)) for line in alice.lines],
        )
    assert len([when for when in registered if when > last_up]) == 1
    after = [line["state"] for line in alice.lines if t(line) > last_up]
    assert after.count("connecting") <= 1
    assert "refused" not in after[after.index("registered") :], after
    assert any(
        line["state"] == "call_ended" and line.get("code") == "path_lost" for line in alice.lines
    )
    only_wireguard(packets)

    # Every flap that hit a registered agent was seen (the netlink latch), however short.
    # (A flap that hits while the agent is still re-connecting finds nothing to tear down.)
    unregistered = [t(line) for line in alice.lines if line["state"] == "unregistered"]
    intervals = [
        (r, min([u for u in unregistered if u > r], default=float("inf"))) for r in registered
    ]
    reactions, recoveries = [], []
    for down, up in windows:
        if any(r <= down < u for r, u in intervals):
            lost = min((u for u in unregistered if u >= down), default=float("inf"))
            assert lost - down < 1.0, f"a flap at {down:.3f} went unnoticed"
            reactions.append(lost - down)
        recoveries.append(min(w for w in registered if w >= up) - up)
    assert len(reactions) >= 10, "most flaps should hit a registered agent"
    reactions.sort()
    recoveries.sort()
    print(
        f"\nflap reaction (n={len(reactions)}): median {reactions[len(reactions) // 2]:.3f} s, "
        f"worst {reactions[-1]:.3f} s; tunnel up -> registered (n={len(recoveries)}): "
        f"median {recoveries[len(recoveries) // 2]:.3f} s, worst {recoveries[-1]:.3f} s"
    )


def test_calls_still_arrive_after_more_flaps_than_the_sbc_has_branches(
    netlab: Any, env: dict[str, str]
) -> None:
    """Each re-REGISTER after a lost path must replace alice's binding at the SBC (a stable
    RFC 5626 instance), not add one: Kamailio forks to at most 12 branches, so 14 stale
    bindings once meant calls to her stopped arriving until they expired."""
    wg_only = user_config(netlab, "alice", paths=["wireguard"])
    alice = in_ns(LAPTOP, wg_only, "answer", env=env)
    bob = None
    try:
        alice.wait_for("registered")
        for _ in range(14):
            subprocess.run(["ip", "-n", LAPTOP, "link", "set", WG_LAPTOP, "down"], check=True)
            alice.wait_for("refused", timeout=5)
            subprocess.run(["ip", "-n", LAPTOP, "link", "set", WG_LAPTOP, "up"], check=True)
            alice.wait_for("registered", timeout=10)
        bob = in_ns(
            DESK, user_config(netlab, "bob"), "call", "sip:alice@lab.guardphone.test", env=env
        )
        assert alice.wait_for("call_established", timeout=10)["direction"] == "incoming"
    finally:
        if bob is not None:
            bob.stop()
        alice.stop()
