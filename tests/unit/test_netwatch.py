from __future__ import annotations

import struct

from tunnel import netwatch


def link_message(kind: int, index: int, flags: int) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, flags, 0xFFFFFFFF)
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def addr_message(kind: int, index: int) -> bytes:
    body = struct.pack("=BBBBI", 2, 24, 0, 0, index)
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_link_down_and_deleted_are_reported_by_index() -> None:
    buf = (
        link_message(netwatch.RTM_NEWLINK, 7, 0)  # IFF_UP cleared
        + link_message(netwatch.RTM_NEWLINK, 8, netwatch.IFF_UP)  # came up: not a loss
        + link_message(netwatch.RTM_DELLINK, 9, netwatch.IFF_UP)
        + addr_message(netwatch.RTM_DELADDR, 10)
        + addr_message(20, 11)  # RTM_NEWADDR: not a loss
    )
    events = netwatch.parse(buf)
    assert events.changed
    assert events.down == frozenset({7, 9, 10})


def test_truncated_input_does_not_crash() -> None:
    assert netwatch.parse(link_message(netwatch.RTM_NEWLINK, 3, 0)[:20]).down == frozenset()
    assert netwatch.parse(b"\x00" * 8).changed


def test_polling_fallback_always_says_changed() -> None:
    watch = netwatch.PollingWatch(tick_s=0.01)
    assert watch.wait(1.0).changed
    assert watch.drain().changed
