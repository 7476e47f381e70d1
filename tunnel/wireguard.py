"""WireGuard through wireguard-tools: the state of one named interface, and wg-quick up/down.

Commands are built as data (`show_command`, `quick_command`) and run by a runner that is
passed in, so tests compare the exact argument lists and replay recorded real output.
`wg show IFACE dump` prints the interface's private key first: it is dropped on parsing and
never stored, logged or returned.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass

Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


class WireGuardError(RuntimeError):
    """wg could not tell us the state; `code` is stable, the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Peer:
    public_key: str
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    latest_handshake: int  # epoch seconds; 0 = never
    rx_bytes: int
    tx_bytes: int
    keepalive_s: int | None


@dataclass(frozen=True)
class Interface:
    name: str
    public_key: str
    listen_port: int | None
    peers: tuple[Peer, ...]


def show_command(iface: str) -> list[str]:
    return ["wg", "show", iface, "dump"]


def quick_command(action: str, profile: str) -> list[str]:
    if action not in ("up", "down"):
        raise ValueError(f"wg-quick action must be up or down, not {action!r}")
    return ["wg-quick", action, profile]


def parse_dump(iface: str, text: str) -> Interface:
    """Parse `wg show IFACE dump` (tab-separated: one interface line, then one per peer)."""
    lines = [line.split("\t") for line in text.splitlines() if line.strip()]
    if not lines or len(lines[0]) != 4:
        raise WireGuardError("wg_unparsable", f"wg show {iface} dump printed nothing usable")
    _private, public, port, _fwmark = lines[0]
    peers = []
    for fields in lines[1:]:
        if len(fields) != 8:
            raise WireGuardError("wg_unparsable", f"unexpected peer line from wg show {iface}")
        key, _psk, endpoint, allowed, handshake, rx, tx, keepalive = fields
        peers.append(
            Peer(
                public_key=key,
                endpoint=None if endpoint == "(none)" else endpoint,
                allowed_ips=tuple(a for a in allowed.split(",") if a and a != "(none)"),
                latest_handshake=int(handshake),
                rx_bytes=int(rx),
                tx_bytes=int(tx),
                keepalive_s=None if keepalive == "off" else int(keepalive),
            )
        )
    return Interface(iface, public, int(port) if port.isdigit() else None, tuple(peers))


def _default_runner(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=False)


class WireGuard:
    """The one place that runs wg and wg-quick."""

    def __init__(self, runner: Runner = _default_runner) -> None:
        self._run = runner

    def show(self, iface: str) -> Interface:
        return parse_dump(iface, self._checked(show_command(iface), iface))

    def quick(self, action: str, profile: str) -> None:
        """wg-quick up/down; bringing up a tunnel that is already up is not an error."""
        try:
            self._checked(quick_command(action, profile), profile)
        except WireGuardError as exc:
            if not (action == "up" and "already exists" in str(exc)):
                raise

    def _checked(self, cmd: list[str], name: str) -> str:
        try:
            done = self._run(cmd)
        except FileNotFoundError:
            raise WireGuardError(
                "wg_missing",
                f"{cmd[0]} is not installed (package wireguard-tools): the office tunnel "
                "cannot be checked.",
            ) from None
        except subprocess.TimeoutExpired:
            raise WireGuardError("wg_timeout", f"{cmd[0]} did not answer in time") from None
        if done.returncode == 0:
            return done.stdout
        return _raise_for(done.stderr, name)


def _raise_for(stderr: str, name: str) -> str:
    text = stderr.strip()
    if "Permission denied" in text or "Operation not permitted" in text:
        raise WireGuardError(
            "wg_permission_denied",
            f"guardphone is not allowed to read the state of the tunnel {name} "
            "(ask IT: the agent needs the network-admin permission).",
        )
    absent = ("No such device", "Protocol not supported", "does not exist", "is not a WireGuard")
    if any(s in text for s in absent):
        raise WireGuardError("wg_interface_absent", f"The office tunnel {name} is not up.")
    raise WireGuardError("wg_failed", f"wg failed for {name}: {text or 'no message'}")
