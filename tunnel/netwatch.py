"""Notice of link, address and route changes, so the gate reacts in milliseconds.

Linux: a netlink socket subscribed to link, address and route groups. Any message means
"look again"; a link going down or away, or an address removed, is also reported by
interface index, because a flap shorter than our reaction time would otherwise go unseen
(the gate would look after the link is back and miss that the path broke). Elsewhere: a
polling fallback behind the same interface that says "changed" on every tick.
"""

from __future__ import annotations

import select
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Protocol

# rtnetlink multicast groups and message types (linux/rtnetlink.h)
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
GROUPS = (
    RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE
)
RTM_NEWLINK, RTM_DELLINK, RTM_DELADDR = 16, 17, 21
IFF_UP = 0x1
_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index


@dataclass(frozen=True)
class NetEvents:
    changed: bool = False
    down: frozenset[int] = frozenset()  # interfaces that went down, vanished or lost an address


class NetWatch(Protocol):
    def wait(self, timeout_s: float) -> NetEvents:
        """Block up to `timeout_s` for a change; return what was seen (drained)."""
        ...

    def drain(self) -> NetEvents:
        """Without blocking: what changed since the last call."""
        ...

    def close(self) -> None: ...

    def fileno(self) -> int | None:
        """A descriptor that becomes readable on a change (for an event loop), if any."""
        ...


def parse(buf: bytes) -> NetEvents:
    """Read the rtnetlink messages in one datagram."""
    down: set[int] = set()
    offset = 0
    while offset + _NLMSGHDR.size <= len(buf):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(buf, offset)
        if length < _NLMSGHDR.size:
            break
        body = offset + _NLMSGHDR.size
        if kind in (RTM_NEWLINK, RTM_DELLINK) and body + _IFINFOMSG.size <= len(buf):
            _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(buf, body)
            if kind == RTM_DELLINK or not flags & IFF_UP:
                down.add(index)
        elif kind == RTM_DELADDR and body + _IFADDRMSG.size <= len(buf):
            down.add(_IFADDRMSG.unpack_from(buf, body)[4])
        offset += (length + 3) & ~3  # NLMSG_ALIGN
    return NetEvents(True, frozenset(down))


class NetlinkWatch:
    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self._sock.bind((0, GROUPS))
        self._sock.setblocking(False)

    def wait(self, timeout_s: float) -> NetEvents:
        ready, _, _ = select.select([self._sock], [], [], max(0.0, timeout_s))
        return self.drain() if ready else NetEvents()

    def drain(self) -> NetEvents:
        changed, down = False, set[int]()
        while True:
            try:
                buf = self._sock.recv(65536)
            except BlockingIOError:
                return NetEvents(changed, frozenset(down))
            except OSError:
                # ENOBUFS: messages were lost; we cannot know what went down, so say "all".
                return NetEvents(True, frozenset({-1}))
            seen = parse(buf)
            changed = True
            down |= seen.down

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int | None:
        return self._sock.fileno()


class PollingWatch:
    """Fallback: every tick counts as a change."""

    def __init__(self, tick_s: float = 1.0) -> None:
        self._tick = tick_s

    def wait(self, timeout_s: float) -> NetEvents:
        time.sleep(min(timeout_s, self._tick))
        return NetEvents(True)

    def drain(self) -> NetEvents:
        return NetEvents(True)

    def close(self) -> None:
        pass

    def fileno(self) -> int | None:
        return None


def open_watch() -> NetWatch:
    if sys.platform.startswith("linux"):
        try:
            return NetlinkWatch()
        except OSError:
            pass
    return PollingWatch()
