"""tunnel.wireguard and tunnel.route on recorded real output (tests/unit/recordings)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tunnel import route, wireguard

REC = Path(__file__).with_name("recordings")


def replay(stdout: str = "", stderr: str = "", code: int = 0) -> tuple[list[list[str]], object]:
    seen: list[list[str]] = []

    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, code, stdout, stderr)

    return seen, run


def recorded_stderr(name: str) -> tuple[str, int]:
    text = (REC / "wg" / name).read_text()
    message, rc = text.rsplit("rc=", 1)
    return message, int(rc)


def test_commands_are_exact() -> None:
    assert wireguard.show_command("wg-office") == ["wg", "show", "wg-office", "dump"]
    assert wireguard.quick_command("up", "office") == ["wg-quick", "up", "office"]
    assert wireguard.quick_command("down", "office") == ["wg-quick", "down", "office"]
    with pytest.raises(ValueError):
        wireguard.quick_command("restart", "office")
    assert route.route_command("198.51.100.1") == ["ip", "-j", "route", "get", "198.51.100.1"]


def test_dump_of_a_live_tunnel() -> None:
    seen, run = replay((REC / "wg" / "dump-up.txt").read_text())
    iface = wireguard.WireGuard(run).show("gp-wg-laptop")  # type: ignore[arg-type]
    assert seen == [["wg", "show", "gp-wg-laptop", "dump"]]
    assert iface.public_key == "vyOjE9KO+PsPwQ4TWdsj8Wbnc23vPNzBnx+6dfcVlCE="
    assert iface.listen_port == 51820
    (peer,) = iface.peers
    assert peer.endpoint == "192.0.2.1:51820"
    assert peer.allowed_ips == ("198.51.100.1/32",)
    assert peer.latest_handshake == 1795701116
    assert (peer.rx_bytes, peer.tx_bytes, peer.keepalive_s) == (532, 624, 1)
    assert "redacted" not in repr(iface)  # the private key field is dropped, not kept


def test_never_handshaked_peer() -> None:
    _, run = replay((REC / "wg" / "dump-never-handshaked.txt").read_text())
    (peer,) = wireguard.WireGuard(run).show("gp-wg-test").peers  # type: ignore[arg-type]
    assert peer.latest_handshake == 0
    assert peer.rx_bytes == 0


def test_silent_office_freezes_rx() -> None:
    t0 = wireguard.parse_dump("x", (REC / "wg" / "dump-office-silent-t0.txt").read_text())
    t3 = wireguard.parse_dump("x", (REC / "wg" / "dump-office-silent-t3.txt").read_text())
    assert t0.peers[0].rx_bytes == t3.peers[0].rx_bytes
    assert t3.peers[0].tx_bytes > t0.peers[0].tx_bytes


@pytest.mark.parametrize(
    ("recording", "code", "words"),
    [
        ("absent.stderr", "wg_interface_absent", "is not up"),
        ("permission.stderr", "wg_permission_denied", "not allowed"),
    ],
)
def test_recorded_errors(recording: str, code: str, words: str) -> None:
    stderr, rc = recorded_stderr(recording)
    _, run = replay(stderr=stderr, code=rc)
    with pytest.raises(wireguard.WireGuardError) as err:
        wireguard.WireGuard(run).show("gp-wg-laptop")  # type: ignore[arg-type]
    assert err.value.code == code
    assert words in str(err.value)


def test_wg_missing() -> None:
    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(cmd[0])

    with pytest.raises(wireguard.WireGuardError) as err:
        wireguard.WireGuard(run).show("wg0")
    assert err.value.code == "wg_missing"
    assert "wireguard-tools" in str(err.value)


def test_garbage_is_an_error_not_a_state() -> None:
    with pytest.raises(wireguard.WireGuardError):
        wireguard.parse_dump("wg0", "")
    with pytest.raises(wireguard.WireGuardError):
        wireguard.parse_dump("wg0", "a\tb\tc\td\nshort\tline\n")


@pytest.mark.parametrize(
    ("recording", "device", "gateway"),
    [
        ("route-via-tunnel.json", "gp-wg-laptop", None),
        ("route-via-veth.json", "gp-laptop-e", None),
        ("route-bypass.json", "gp-laptop-e", "192.0.2.1"),
    ],
)
def test_recorded_routes(recording: str, device: str, gateway: str | None) -> None:
    _, run = replay((REC / "ip" / recording).read_text())
    found = route.RouteTable(run).get("198.51.100.1")  # type: ignore[arg-type]
    assert found.device == device
    assert found.gateway == gateway


def test_unreachable_route() -> None:
    text = (REC / "ip" / "route-unreachable.stderr").read_text()
    stderr, rc = text.rsplit("rc=", 1)
    _, run = replay(stderr=stderr, code=int(rc))
    with pytest.raises(route.RouteError) as err:
        route.RouteTable(run).get("203.0.113.5")  # type: ignore[arg-type]
    assert err.value.code == "no_route"
    assert "Network is unreachable" in str(err.value)


def test_local_route_is_marked_local() -> None:
    _, run = replay((REC / "ip" / "route-local.json").read_text())
    found = route.RouteTable(run).get("198.51.100.1")  # type: ignore[arg-type]
    assert (found.kind, found.device, found.source) == ("local", "lo", "198.51.100.1")
