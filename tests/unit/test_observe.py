"""The observer on recorded wg/ip output, with a fake clock: what the gate gets to see."""

from __future__ import annotations

import subprocess
from pathlib import Path

from agent import config
from agent.gate import decide
from agent.observe import PathObserver
from agent.sip import TlsMaterial
from tunnel.route import RouteTable
from tunnel.sbc import ProbeResult, ProbeTarget
from tunnel.wireguard import WireGuard

REC = Path(__file__).with_name("recordings")
HANDSHAKE = 1795701116.0  # in dump-up.txt
CFG = config.parse(
    {
        "version": 1,
        "account": {"user": "alice", "domain": "lab.guardphone.test"},
        "paths": ["wireguard"],
        "sbc": {"host": "192.0.2.1", "ca_file": "/ca.pem"},
        "wireguard": {"interface": "gp-wg-laptop", "registrar": "198.51.100.1", "silence_max_s": 3},
    }
)
MATERIAL = TlsMaterial("c", "k", "ca", "pw")


class Replay:
    """Answers each command with the next recorded output."""

    def __init__(self, *outputs: tuple[str, str, int]) -> None:
        self.outputs = list(outputs)
        self.seen: list[list[str]] = []

    def __call__(self, cmd: list[str]) -> subprocess.CompletedProcess[str]:
        self.seen.append(cmd)
        out, err, code = self.outputs.pop(0)
        return subprocess.CompletedProcess(cmd, code, out, err)


def rec(name: str) -> tuple[str, str, int]:
    return ((REC / name).read_text(), "", 0)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def observer(wg: Replay, ip: Replay, clock: Clock) -> PathObserver:
    def no_probe(target: ProbeTarget) -> ProbeResult:
        raise AssertionError("no SBC path configured")

    return PathObserver(
        CFG,
        WireGuard(wg),
        RouteTable(ip),
        no_probe,  # type: ignore[arg-type]
        link_state=lambda iface: True,
        clock=clock,
        sleep=clock.sleep,
    )


def test_fresh_handshake_allows_without_waiting() -> None:
    clock = Clock(HANDSHAKE + 1)
    obs = observer(Replay(rec("wg/dump-up.txt")), Replay(rec("ip/route-via-tunnel.json")), clock)
    verdict = decide(CFG, obs.observe(MATERIAL, probe_sbc=False))
    assert verdict.path == "wireguard" and verdict.local_address == "198.51.100.2"
    assert verdict.interface == "gp-wg-laptop"
    assert clock.slept == []


def test_old_handshake_waits_one_keepalive_and_sees_bytes() -> None:
    clock = Clock(HANDSHAKE + 60)
    wg = Replay(rec("wg/dump-office-silent-t0.txt"), rec("wg/dump-up.txt"))
    # dump-up has different rx than t0 (756 vs 532): the peer spoke during the wait.
    obs = observer(wg, Replay(rec("ip/route-via-tunnel.json")), clock)
    verdict = decide(CFG, obs.observe(MATERIAL, probe_sbc=False))
    assert clock.slept == [1.3]  # keepalive 1 s + margin
    assert verdict.path == "wireguard"


def test_silent_office_is_refused_after_the_threshold() -> None:
    clock = Clock(HANDSHAKE + 60)
    wg = Replay(*[rec("wg/dump-office-silent-t0.txt")] * 2, rec("wg/dump-office-silent-t3.txt"))
    ip = Replay(*[rec("ip/route-via-tunnel.json")] * 2)
    obs = observer(wg, ip, clock)
    first = decide(CFG, obs.observe(MATERIAL, probe_sbc=False))
    assert [r.code for r in first.reasons] == ["wg_peer_silent"]
    clock.now += 3
    again = decide(CFG, obs.observe(MATERIAL, probe_sbc=False))
    assert [r.code for r in again.reasons] == ["wg_peer_silent"]


def test_route_around_the_tunnel_is_refused() -> None:
    clock = Clock(HANDSHAKE + 1)
    obs = observer(Replay(rec("wg/dump-up.txt")), Replay(rec("ip/route-bypass.json")), clock)
    verdict = decide(CFG, obs.observe(MATERIAL, probe_sbc=False))
    assert [r.code for r in verdict.reasons] == ["route_bypasses_tunnel"]
    assert "gp-laptop-e" in verdict.reasons[0].text


def test_absent_interface_is_a_reason() -> None:
    text = (REC / "wg" / "absent.stderr").read_text()
    stderr, code = text.rsplit("rc=", 1)
    obs = observer(Replay(("", stderr, int(code))), Replay(), Clock(HANDSHAKE))
    verdict = decide(CFG, obs.observe(MATERIAL, probe_sbc=False))
    assert [r.code for r in verdict.reasons] == ["wg_interface_absent"]
