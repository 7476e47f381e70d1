"""Several portal server processes on one port, each listening on a socket of its own.

uvicorn's `--workers` hands one listening socket to every process, and whichever process wakes
first accepts every connection waiting. Connections that open together and stay open (a
reverse proxy's pool, a load generator's) then all land on one process while the others idle:
bench/portal.py saw one of four processes doing all the work. With a socket each, bound with
SO_REUSEPORT, the kernel spreads new connections across the processes. Linux lets only
processes of the same user join such a group, and the port is first checked with a plain bind,
so the portal never shares its port with another program or an older portal still running.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import threading
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

log = logging.getLogger("guardphone.portal")

PR_SET_PDEATHSIG = 1  # linux/prctl.h


class PortInUse(Exception):
    pass


def serve(uvicorn_settings: dict[str, Any], host: str, port: int, processes: int) -> int:
    """Run `processes` servers on host:port until SIGTERM or SIGINT; a process that ends on
    its own is replaced, unless it could not start (then the same would happen again: all
    stop and the exit status says so). Returns the exit status."""
    _check_free(host, port)
    spawn = multiprocessing.get_context("spawn")  # no inherited event loop or database pool

    def start() -> multiprocessing.process.BaseProcess:
        child = spawn.Process(target=_serve_one, args=(uvicorn_settings, host, port))
        child.start()
        return child

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    children = [start() for _ in range(processes)]
    status = 0
    while not stop.wait(0.5):
        for i, child in enumerate(children):
            if child.is_alive():
                continue
            if child.exitcode == STARTUP_FAILURE:
                log.error("a portal process could not start (its log says why); stopping")
                status = 1
                stop.set()
                break
            log.warning("portal process %s ended (%s); starting another", child.pid, child.exitcode)
            children[i] = start()
    for child in children:
        child.terminate()  # SIGTERM: uvicorn finishes the requests in flight
    for child in children:
        child.join(30)
        if child.is_alive():
            child.kill()
            child.join()
    return status


def _check_free(host: str, port: int) -> None:
    """A plain bind fails where anyone listens, a group of SO_REUSEPORT sockets included."""
    with socket.socket(_family(host)) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not in use
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _serve_one(uvicorn_settings: dict[str, Any], host: str, port: int) -> None:
    try:  # whatever fails before serving fails again: the parent stops, not retries
        _end_with_parent()
        config = uvicorn.Config(**uvicorn_settings)  # sets up logging in this process
        config.load()  # the app, its keys, the TLS certificate
        sock = listening_socket(host, port)
    except Exception as exc:
        log.exception("the portal cannot start")
        raise SystemExit(STARTUP_FAILURE) from exc
    uvicorn.Server(config).run(sockets=[sock])


def _end_with_parent() -> None:
    """SIGTERM this process when the portal's parent process ends, however it ends (a
    SIGKILL included): a server process left behind would go on answering on the port."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() == 1:  # the parent ended before that was set
        raise SystemExit(0)


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket of the port's SO_REUSEPORT group. Its protocol is named, not left 0: asyncio
    sets TCP_NODELAY only on sockets that say they are TCP, and without it each answer waited
    ~40 ms for the client's delayed ACK (two processes took 650 reports/s, one 2,200)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
