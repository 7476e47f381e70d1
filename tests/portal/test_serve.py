"""`guardphone-portal serve`: how many processes it runs, how connections reach them, and
refusing nonsense."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from lab import pki
from portal.keys import init_state
from tests.services import PortalProcess, free_port


def test_zero_workers_is_refused_with_the_reason() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "portal", "serve", "--db", "sqlite:///nowhere.db",
         "--state", "/nonexistent", "--domain", "corp.example", "--tls-cert", "/nonexistent",
         "--tls-key", "/nonexistent", "--workers", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert "--workers must be at least 1" in out.stderr


@pytest.fixture
def tls(tmp_path: Path) -> dict[str, Any]:
    """What `serve` needs: keys, a server certificate from a CA made now, a database."""
    ca = pki.make_ca("Portal test CA")
    server = pki.issue(ca, "portal.test", server=True, ips=("127.0.0.1",))
    (tmp_path / "ca.pem").write_text(ca.cert_pem)
    (tmp_path / "portal.pem").write_text(server.cert_pem)
    (tmp_path / "portal.key").write_text(server.key_pem)
    init_state(tmp_path / "state")
    return {
        "db_url": f"sqlite:///{tmp_path / 'portal.db'}",
        "state": tmp_path / "state",
        "domain": "corp.example",
        "cert": tmp_path / "portal.pem",
        "key": tmp_path / "portal.key",
    }


def listening(proc: psutil.Process, port: int) -> bool:
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in proc.net_connections()
    )


def accepted(proc: psutil.Process, port: int) -> int:
    return sum(
        c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port for c in proc.net_connections()
    )


def serving(portal: PortalProcess, count: int) -> list[psutil.Process]:
    """Its server processes once `count` of them listen."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = portal.children()
        if len(children) == count and all(listening(c, portal.port) for c in children):
            return children
        time.sleep(0.2)
    raise AssertionError(f"{count} server processes did not listen: {portal.log_tail()}")


def test_connections_opened_together_reach_every_process(tls: dict[str, Any]) -> None:
    # A reverse proxy opens its pool at once and keeps it: with one shared listening socket
    # the first process to wake accepted them all and the other processes idled.
    portal = PortalProcess(**tls, workers=3)
    try:
        children = serving(portal, 3)
        pool = [socket.create_connection(("127.0.0.1", portal.port)) for _ in range(60)]
        try:
            deadline = time.monotonic() + 10
            while sum(per := [accepted(c, portal.port) for c in children]) < len(pool):
                assert time.monotonic() < deadline, f"accepted {per} of {len(pool)}"
                time.sleep(0.1)
            # Spread by the kernel's hash of each connection: 20 each on average, and more
            # than 40 on one of the three sockets about once in 10^8 runs. One shared
            # socket (uvicorn's --workers) gave 46-51 of 60 to one process in 4 runs of 4.
            assert max(per) <= 40, per
        finally:
            for conn in pool:
                conn.close()
        ca = tls["cert"].parent / "ca.pem"
        answer = httpx.get(f"{portal.url}/openapi.json", verify=str(ca), timeout=10)
        assert answer.status_code == 200
    finally:
        portal.stop()
    assert not any(c.is_running() for c in children)


def test_answers_are_not_held_back_for_the_clients_acknowledgement(tls: dict[str, Any]) -> None:
    # Each answer goes out in more than one segment; without TCP_NODELAY the second waits
    # for the client's delayed ACK, ~40 ms, on every request of a kept-alive connection.
    portal = PortalProcess(**tls, workers=2)
    try:
        serving(portal, 2)
        ca = str(tls["cert"].parent / "ca.pem")
        with httpx.Client(base_url=portal.url, verify=ca, timeout=10) as client:
            client.get("/openapi.json")
            times = []
            for _ in range(20):
                t0 = time.perf_counter()
                assert client.get("/openapi.json").status_code == 200
                times.append(time.perf_counter() - t0)
        assert sorted(times)[len(times) // 2] < 0.025, times
    finally:
        portal.stop()


def test_a_second_portal_on_the_same_port_is_refused(tls: dict[str, Any]) -> None:
    # Each process's socket lets its siblings share the port; a second portal (an older one
    # still running, another database) must not quietly get half of the connections.
    first = PortalProcess(**tls, workers=2)
    try:
        serving(first, 2)
        second = subprocess.run(
            [sys.executable, "-m", "portal", "serve", "--db", tls["db_url"],
             "--state", str(tls["state"]), "--domain", "corp.example",
             "--tls-cert", str(tls["cert"]), "--tls-key", str(tls["key"]),
             "--port", str(first.port), "--workers", "2"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert second.returncode == 1
        assert f"cannot listen on 127.0.0.1:{first.port}: Address already in use" in second.stderr
    finally:
        first.stop()


def test_the_default_is_one_process_per_core(tls: dict[str, Any]) -> None:
    cores = os.cpu_count() or 1
    if cores < 2:
        pytest.skip("one core: the portal serves in its own process (CI has two cores)")
    portal = PortalProcess(**tls)
    try:
        serving(portal, cores)
    finally:
        portal.stop()


def test_a_process_that_ends_is_replaced(tls: dict[str, Any]) -> None:
    portal = PortalProcess(**tls, workers=2)
    try:
        gone = serving(portal, 2)[0]
        gone.kill()
        deadline = time.monotonic() + 30
        while gone.pid in [c.pid for c in portal.children()] or len(portal.children()) < 2:
            assert time.monotonic() < deadline, portal.log_tail()
            time.sleep(0.2)
        serving(portal, 2)
        assert "starting another" in portal.log_tail()
    finally:
        portal.stop()


def test_no_server_process_outlives_the_portal_killed(tls: dict[str, Any]) -> None:
    portal = PortalProcess(**tls, workers=2)
    try:
        children = serving(portal, 2)
        portal.proc.kill()  # SIGKILL: the parent cannot stop them itself
        portal.proc.wait()
        _, alive = psutil.wait_procs(children, timeout=15)
        assert not alive, portal.log_tail()
    finally:
        portal.stop()


def test_a_portal_that_cannot_start_stops_instead_of_retrying(tls: dict[str, Any]) -> None:
    tls["key"].write_text("not a key")
    out = subprocess.run(
        [sys.executable, "-m", "portal", "serve", "--db", tls["db_url"],
         "--state", str(tls["state"]), "--domain", "corp.example",
         "--tls-cert", str(tls["cert"]), "--tls-key", str(tls["key"]),
         "--port", str(free_port(("127.0.0.1",))), "--workers", "2"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert "the portal cannot start" in out.stderr
    assert "SSL" in out.stderr  # the cause, as the TLS library says it
