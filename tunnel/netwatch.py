"""Notice of link, address and route changes, so the gate reacts in milliseconds.

Linux: a netlink socket subscribed to link, address and route groups; any message means
"look again" (the gate re-observes everything, so the messages need no parsing). Elsewhere:
a polling fallback behind the same interface that says "changed" on every tick, which keeps
the gate correct, only slower.
"""

from __future__ import annotations

import select
import socket
import sys
from typing import Protocol

# rtnetlink multicast groups (linux/rtnetlink.h)
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
GROUPS = (
    RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE
)


class NetWatch(Protocol):
    def wait(self, timeout_s: float) -> bool:
        """Block up to `timeout_s`; True (and drained) if the network changed meanwhile."""
        ...

    def changed(self) -> bool:
        """Without blocking: did anything change since the last call? (drains)"""
        ...

    def close(self) -> None: ...


class NetlinkWatch:
    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self._sock.bind((0, GROUPS))
        self._sock.setblocking(False)

    def wait(self, timeout_s: float) -> bool:
        ready, _, _ = select.select([self._sock], [], [], max(0.0, timeout_s))
        return self.changed() if ready else False

    def changed(self) -> bool:
        seen = False
        while True:
            try:
                self._sock.recv(65536)
            except BlockingIOError:
                return seen
            except OSError:  # ENOBUFS: we missed messages, which also means "changed"
                return True
            seen = True

    def close(self) -> None:
        self._sock.close()


class PollingWatch:
    """Fallback: every tick counts as a change."""

    def __init__(self, tick_s: float = 1.0) -> None:
        self._tick = tick_s

    def wait(self, timeout_s: float) -> bool:
        import time

        time.sleep(min(timeout_s, self._tick))
        return True

    def changed(self) -> bool:
        return True

    def close(self) -> None:
        pass


def open_watch() -> NetWatch:
    if sys.platform.startswith("linux"):
        try:
            return NetlinkWatch()
        except OSError:
            pass
    return PollingWatch()
