"""Which interface the kernel would use to reach an address (`ip -j route get ADDR`).

Binding a socket to the tunnel address sets the source address, not the interface: only the
kernel's route decides where packets go, so the gate asks it before every registration.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


class RouteError(RuntimeError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Route:
    destination: str
    device: str
    source: str | None
    gateway: str | None
    kind: str = "unicast"  # "local" when the destination is one of our own addresses


def route_command(destination: str) -> list[str]:
    return ["ip", "-j", "route", "get", destination]


def parse_route(destination: str, text: str) -> Route:
    try:
        entries = json.loads(text)
        entry = entries[0]
        return Route(
            destination,
            entry["dev"],
            entry.get("prefsrc"),
            entry.get("gateway"),
            entry.get("type", "unicast"),
        )
    except (ValueError, LookupError, TypeError):
        raise RouteError(
            "route_unparsable", f"ip route get {destination}: unexpected output"
        ) from None


def _default_runner(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=False)


class RouteTable:
    """The one place that asks the kernel for routes."""

    def __init__(self, runner: Runner = _default_runner) -> None:
        self._run = runner

    def get(self, destination: str) -> Route:
        try:
            done = self._run(route_command(destination))
        except FileNotFoundError:
            raise RouteError("ip_missing", "the `ip` command (iproute2) is missing") from None
        except subprocess.TimeoutExpired:
            raise RouteError("route_timeout", "ip route get did not answer in time") from None
        if done.returncode != 0:
            raise RouteError(
                "no_route", f"No route to {destination}: {done.stderr.strip() or 'unknown'}"
            )
        return parse_route(destination, done.stdout)
