"""baresip (Debian's baresip-core), the peer softphone of the benchmarks, configured like
the agent: TLS to the lab SBC with the user's client certificate and the lab CA as trust
anchor, mandatory SRTP (`mediaenc=srtp-mand`), G.711, no sound device (aubridge: a player
and a source that only feed each other). Driven through its ctrl_tcp module (netstring
JSON commands and events), so every milestone is seen as it happens.

The certificate and key are written to a 0600 file in the benchmark's own directory
because baresip reads them only from files (the lab's test PKI, made at run time).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from agent.sip import TlsMaterial

BINARY = "baresip"
MODULES = ("g711.so", "srtp.so", "aubridge.so", "account.so", "menu.so", "ctrl_tcp.so")


def available() -> bool:
    return shutil.which(BINARY) is not None


def version() -> str:
    out = subprocess.run([BINARY, "-h"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()[:1]
    return first[0].split()[1] if first else "unknown"


_handed_out: set[int] = set()


def _free_port() -> int:
    """A loopback port free for TCP and UDP, with the next one free for TCP too (baresip's
    sip_listen takes UDP and TCP on it and TLS on the next), not handed out before in this
    process (ports are chosen before baresip binds them: two picks must not collide)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port in _handed_out or port + 1 in _handed_out or not _bindable(port):
            continue
        _handed_out.update((port, port + 1))
        return port
    raise RuntimeError("no free loopback port for baresip")


def _bindable(port: int) -> bool:
    wanted = ((socket.SOCK_DGRAM, port), (socket.SOCK_STREAM, port), (socket.SOCK_STREAM, port + 1))
    try:
        for kind, number in wanted:
            with socket.socket(socket.AF_INET, kind) as probe:
                probe.bind(("127.0.0.1", number))
    except OSError:
        return False
    return True


class Baresip:
    """One baresip process for one lab user, registered through `server`:`port`."""

    def __init__(
        self,
        directory: Path,
        user: str,
        domain: str,
        server: str,
        port: int,
        material: TlsMaterial,
        srtp: str = "srtp-mand",
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.ctrl_port = _free_port()
        identity = directory / "identity.pem"
        fd = os.open(identity, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(material.cert_pem + material.key_pem)
        (directory / "ca.pem").write_text(material.ca_pem)
        config = [
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{_free_port()}",
            f"sip_certificate {identity}",
            f"sip_cafile {directory / 'ca.pem'}",
            "audio_player aubridge,nil",
            "audio_source aubridge,nil",
            "audio_alert aubridge,nil",
            "rtp_ports 20000-39998",
            "module_path /usr/lib/baresip/modules",
            *(f"module {m}" for m in MODULES if m not in ("account.so", "menu.so")),
            "module_app account.so",
            "module_app menu.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
        ]
        (directory / "config").write_text("\n".join(config) + "\n")
        fd = os.open(directory / "accounts", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(
                f"<sip:{user}@{domain};transport=tls>;auth_pass={material.sip_password}"
                f';outbound="sip:{server}:{port};transport=tls";mediaenc={srtp}'
                ";regint=600;answermode=auto\n"
            )
        (directory / "contacts").write_text("")
        self.proc: subprocess.Popen[bytes] | None = None
        self._ctrl: socket.socket | None = None
        self._buffer = b""

    def start(self) -> float:
        """Start the process; returns the monotonic time it was started."""
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [BINARY, "-f", str(self.directory)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = started + 10
        while self._ctrl is None:
            try:
                self._ctrl = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("baresip did not start (see its config)") from None
                time.sleep(0.001)
        return started

    def command(self, name: str, params: str = "") -> None:
        payload = json.dumps({"command": name, "params": params, "token": name}).encode()
        assert self._ctrl is not None
        self._ctrl.sendall(f"{len(payload)}:".encode() + payload + b",")

    def event(self, wanted: set[str], timeout: float = 10.0) -> tuple[str, float]:
        """The next ctrl_tcp event whose type is in `wanted`, and when it arrived."""
        assert self._ctrl is not None
        deadline = time.monotonic() + timeout
        while True:
            while (message := self._next_message()) is not None:
                kind = str(message.get("type", ""))
                if message.get("event") and kind in wanted:
                    return kind, time.monotonic()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"baresip: none of {sorted(wanted)} within {timeout} s")
            self._ctrl.settimeout(left)
            try:
                chunk = self._ctrl.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise RuntimeError("baresip closed its control connection")
            self._buffer += chunk

    def _next_message(self) -> dict[str, Any] | None:
        head, sep, rest = self._buffer.partition(b":")
        if not sep or not head.isdigit() or len(rest) < int(head) + 1:
            return None
        size = int(head)
        self._buffer = rest[size + 1 :]
        return dict(json.loads(rest[:size]))

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self._ctrl is not None:
            with contextlib.suppress(OSError):
                self.command("quit")
            self._ctrl.close()
            self._ctrl = None
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None
