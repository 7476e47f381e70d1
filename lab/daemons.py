"""The lab's daemons (Kamailio, rtpengine): started in a session of their own, judged ready
by what they open, stopped by PID as a group. One way to do it, whichever daemon it is."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class LabError(RuntimeError):
    """The lab could not do what was asked; the message says why and what to do."""


def launch(
    argv: list[str],
    logfile: Path,
    ready: Callable[[], bool],
    name: str,
    timeout: float,
    env: dict[str, str] | None = None,
) -> int:
    """Start `argv` logging to `logfile`; its PID once `ready()`, else LabError with the
    log's tail (the process is stopped first)."""
    with logfile.open("ab") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True, env=env
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = logfile.read_text(errors="replace")[-2000:]
            raise LabError(f"{name} exited with {proc.returncode}:\n{tail}")
        if ready():
            return proc.pid
        time.sleep(0.05)
    stop_group(proc.pid)
    raise LabError(f"{name} was not ready within {timeout:.0f} s (log: {logfile})")


def cmdline(pid: int) -> list[bytes]:
    """The process's argv, empty when it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def stop_group(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM the process group, SIGKILL it if still there after `timeout`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def process_alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False
