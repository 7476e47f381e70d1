"""Real services for integration tests: a private Secret Service, and agent processes.

Everything started here is stopped by PID when the fixture or the `with` block ends.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import queue
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

GUARDPHONE = str(Path(sys.executable).with_name("guardphone"))


class SecretService:
    """dbus-daemon + gnome-keyring-daemon, unlocked, in a fresh data directory."""

    def __init__(self, root: Path) -> None:
        missing = [t for t in ("dbus-daemon", "gnome-keyring-daemon") if not shutil.which(t)]
        if missing:
            raise RuntimeError(f"not installed: {', '.join(missing)} (run `make deps`)")
        run = root / "run"
        run.mkdir(mode=0o700)
        self.env = {
            "XDG_DATA_HOME": str(root / "data"),
            "XDG_RUNTIME_DIR": str(run),
        }
        base = {**os.environ, **self.env}
        self._bus = subprocess.Popen(
            # A socket path, not an abstract socket: agents in lab namespaces reach it too.
            [
                "dbus-daemon",
                "--session",
                "--nofork",
                "--nopidfile",
                "--print-address=1",
                f"--address=unix:path={root / 'bus'}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=base,
            start_new_session=True,
            text=True,
        )
        assert self._bus.stdout is not None
        self.env["DBUS_SESSION_BUS_ADDRESS"] = self._bus.stdout.readline().strip()
        # Its own words go to a file: if the keyring ever goes away mid-run, this says why.
        self.log = root / "gnome-keyring.log"
        self._keyring = subprocess.Popen(
            ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
            stdin=subprocess.PIPE,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # no signal meant for the test's process group reaches it
            env={**base, **self.env},
        )
        assert self._keyring.stdin is not None
        self._keyring.stdin.write(secrets.token_urlsafe(16).encode())
        self._keyring.stdin.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        probe = (
            "import keyring; keyring.set_password('guardphone-probe', 'p', 'ok');"
            "assert keyring.get_password('guardphone-probe', 'p') == 'ok'"
        )
        deadline = time.monotonic() + 10
        while True:
            done = subprocess.run(
                [sys.executable, "-c", probe], env=self.full_env(), capture_output=True, check=False
            )
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Secret Service did not come up: {done.stderr[-500:]!r}")
            time.sleep(0.1)

    def full_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def stop(self) -> None:
        for proc in (self._keyring, self._bus):
            terminate(proc)


def terminate(proc: subprocess.Popen[Any], timeout_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout_s`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port(hosts: tuple[str, ...]) -> int:
    """A TCP port free on every one of `hosts`."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        try:
            for host in hosts[1:]:
                with socket.socket() as s:
                    s.bind((host, port))
        except OSError:
            continue
        return int(port)
    raise RuntimeError("no free port")


def run_cli(
    config: Path | str,
    *args: str,
    env: dict[str, str],
    stdin: str | None = None,
    check: bool = False,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run `guardphone --config CONFIG ARGS...` as a user would; its output as text."""
    return subprocess.run(
        [GUARDPHONE, "--config", str(config), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def run_agent(
    config: Path | str,
    *args: str,
    env: dict[str, str],
    stdin: str | None = None,
    timeout: float = 30,
) -> tuple[int, list[dict[str, Any]], str]:
    """Run one guardphone command to the end; return exit code, JSON lines, stderr."""
    done = subprocess.run(
        [GUARDPHONE, "--config", str(config), *args, "--json"],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, lines, done.stderr


class JsonLinesProcess:
    """A long-running command that prints one JSON object per line, read as they come."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        # stderr is read as it comes too: a pipe nobody reads fills up and stops the process
        # at its next log line; the last lines are kept for a failing test to show.
        self._stderr: collections.deque[str] = collections.deque(maxlen=200)
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                self._queue.put(json.loads(line))
        self._queue.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def output_tail(self) -> str:
        return "".join(self._stderr)

    def wait_for(self, state: str, timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {state!r} within {timeout} s; saw {self.lines}") from None
            if item is None:
                raise AssertionError(f"exited before {state!r}; saw {self.lines}")
            self.lines.append(item)
            if item["state"] == state:
                return item

    def wait(self, timeout: float = 15) -> int:
        code = self.proc.wait(timeout)
        while True:  # collect what is left
            item = self._queue.get(timeout=5)
            if item is None:
                return code
            self.lines.append(item)

    def stop(self) -> None:
        """SIGTERM (then SIGKILL), and collect every line it printed into `lines`."""
        terminate(self.proc)
        while True:
            try:
                item = self._queue.get(timeout=5)
            except queue.Empty:
                return
            if item is None:
                self._queue.put(None)  # keep "ended" visible to later calls
                return
            self.lines.append(item)


class AgentProcess(JsonLinesProcess):
    """A long-running guardphone command."""

    def __init__(
        self, config: Path | str, *args: str, env: dict[str, str], prefix: list[str] | None = None
    ) -> None:
        command = [*(prefix or []), GUARDPHONE, "--config", str(config), *args, "--json"]
        super().__init__(command, env)


class Desktop:
    """A virtual X display (Xvfb) with a system tray host (trayer), started and stopped by
    PID: what the tray app needs on a machine without a desktop."""

    def __init__(self) -> None:
        missing = [t for t in ("Xvfb", "trayer") if not shutil.which(t)]
        if missing:
            raise RuntimeError(f"not installed: {', '.join(missing)} (run `make deps`)")
        number = next(
            n
            for n in range(90, 200)
            if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists()
        )
        self.display = f":{number}"
        self._x = subprocess.Popen(
            ["Xvfb", self.display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            if self._x.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Xvfb did not start on {self.display}")
            time.sleep(0.05)
        tray = "--edge top --align right --widthtype request --height 32 --expand true"
        self._tray = subprocess.Popen(
            ["trayer", *tray.split()],
            env={**os.environ, "DISPLAY": self.display},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self) -> None:
        for proc in (self._tray, self._x):
            terminate(proc)


@contextmanager
def agent(config: Path | str, *args: str, env: dict[str, str]) -> Iterator[AgentProcess]:
    proc = AgentProcess(config, *args, env=env)
    try:
        yield proc
    finally:
        proc.stop()


class PortalProcess:
    """`python -m portal serve` over TLS on a free loopback port, stopped by PID."""

    def __init__(
        self,
        db_url: str,
        state: Path,
        domain: str,
        cert: Path,
        key: Path,
        port: int = 0,
        workers: int | None = None,
    ) -> None:
        self.db_url, self.state, self.domain, self.cert, self.key = db_url, state, domain, cert, key
        self.port = port or free_port(("127.0.0.1",))  # a restart keeps its port (and URL)
        self.url = f"https://127.0.0.1:{self.port}"
        serve = ["serve", "--db", db_url, "--state", str(state), "--domain", domain]
        tls = ["--tls-cert", str(cert), "--tls-key", str(key), "--port", str(self.port)]
        if workers is not None:
            serve += ["--workers", str(workers)]
        # Its log goes to a file, not a pipe nobody reads while it runs (a full pipe would
        # stop the server mid-test), and a failing test can show it.
        self.log_path = state.parent / f"portal-{self.port}-{secrets.token_hex(3)}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "portal", *serve, *tls, "--log-level", "info"],
                stdout=log,  # uvicorn's access log
                stderr=log,
            )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the portal did not start: {self.log_tail()}") from None
                time.sleep(0.1)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def children(self) -> list[psutil.Process]:
        """Its server processes when it runs several (uvicorn's own helper excluded)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            found = psutil.Process(self.proc.pid).children()
            return [c for c in found if "multiprocessing.spawn" in " ".join(c.cmdline())]
        return []

    def stop(self) -> None:
        children = self.children()
        terminate(self.proc, 10.0)
        for child in children:  # by PID: none outlives the test, even if the parent was killed
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
