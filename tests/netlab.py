"""The lab network for integration tests: a fresh laptop/office/hotel per test, and helpers
to run agents inside those namespaces and to capture what leaves the laptop."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import lab as lab_mod
from lab import net, sbc
from tests.services import GUARDPHONE, AgentProcess, free_port

# What every test on the lab network needs: namespaces (root), Kamailio and the keychain.
NETLAB_MARKS = [
    pytest.mark.root,
    pytest.mark.kamailio,
    pytest.mark.keychain,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root (CI runs as root)"),
]
PREFIX = "gt"
NAMES = net.Names(PREFIX)
LAPTOP, OFFICE, DESK = NAMES.ns("laptop"), NAMES.ns("office"), NAMES.ns("desk")
WG_LAPTOP = NAMES.wg("laptop")


@pytest.fixture
def netlab(tmp_path: Path, store: Any) -> Iterator[Any]:
    """A fresh lab network per test: tests cut links and kill tunnel ends."""
    port = free_port((sbc.GOOD, sbc.NAME_MISMATCH, sbc.EXPIRED, sbc.ROGUE))
    state = lab_mod.up(
        tmp_path / "lab",
        store,
        port=port,
        with_net=True,
        prefix=PREFIX,
        keychain_service="guardphone-netlab",
    )
    yield state
    lab_mod.down(tmp_path / "lab", store)


@pytest.fixture(scope="module")
def shared_netlab(tmp_path_factory: pytest.TempPathFactory, store: Any) -> Iterator[Any]:
    """One lab network for a module whose tests leave it as they found it (calls only)."""
    directory = tmp_path_factory.mktemp("netlab") / "lab"
    port = free_port((sbc.GOOD, sbc.NAME_MISMATCH, sbc.EXPIRED, sbc.ROGUE))
    state = lab_mod.up(
        directory, store, port=port, with_net=True, prefix=PREFIX,
        keychain_service="guardphone-netlab",
    )  # fmt: skip
    yield state
    lab_mod.down(directory, store)


def user_config(state: Any, name: str, where: str | None = None, **changes: Any) -> Path:
    """The lab's agent config for `name` (on the laptop on public Wi-Fi unless `where` says
    home, hotel or office), with top-level changes (e.g. paths)."""
    user = next(u for u in state.net_users if u.name == name and where in (None, u.where))
    data = json.loads(Path(user.config).read_text())
    data.update(changes)
    label = "-".join(changes) or "plain"
    path = Path(state.directory) / f"{name}-{user.where}-{label}.json"
    path.write_text(json.dumps(data))
    return path


def namespace_of(state: Any, name: str, where: str) -> str:
    return next(u.netns for u in state.net_users if u.name == name and u.where == where)


def in_ns(ns: str, config: Path, *args: str, env: dict[str, str]) -> AgentProcess:
    return AgentProcess(config, *args, env=env, prefix=["ip", "netns", "exec", ns])


def run_in_ns(ns: str, config: Path, *args: str, env: dict[str, str]) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, GUARDPHONE, "--config", str(config), *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


class Capture:
    """tshark on the laptop's internet-side veth, inside the laptop namespace."""

    def __init__(self, path: Path) -> None:
        self.path = path
        command = ["ip", "netns", "exec", LAPTOP, "tshark", "-q", "-i", NAMES.veth("laptop")]
        self.proc = subprocess.Popen(
            [*command, "-w", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if "Capturing on" in line:
                break

    def stop(self) -> list[tuple[str, str, str]]:
        """(protocol stack, udp ports, tcp ports) of every IP packet captured."""
        time.sleep(0.3)
        self.proc.terminate()
        self.proc.wait(10)
        return [(p, udp, tcp) for p, _, _, udp, tcp in self.fields()]

    def fields(self) -> list[tuple[str, str, str, str, str]]:
        """(protocol stack, source, destination, udp ports, tcp ports) of each IP packet."""
        names = ("frame.protocols", "ip.src", "ip.dst", "udp.port", "tcp.port")
        fields = [arg for name in names for arg in ("-e", name)]
        out = subprocess.run(
            ["tshark", "-r", str(self.path), "-Y", "ip", "-T", "fields", *fields],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [tuple(([*line.split("\t"), *[""] * 5])[:5]) for line in out.splitlines()]  # type: ignore[misc]


def only_wireguard(packets: list[tuple[str, str, str]]) -> None:
    assert packets, "the capture saw nothing: it proves nothing"
    wireguard = 0
    for protocols, udp, tcp in packets:
        assert not tcp, f"TCP left the laptop outside the tunnel: {protocols} {tcp}"
        assert "sip" not in protocols and "rtp" not in protocols
        if udp:  # (the kernel's own IGMP reports carry no port)
            assert udp == f"{net.WG_PORT},{net.WG_PORT}", f"non-WireGuard UDP: {protocols} {udp}"
            wireguard += 1
    assert wireguard > 50, "the call's media should have crossed as WireGuard"


def t(line: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(line["time"]).timestamp()
