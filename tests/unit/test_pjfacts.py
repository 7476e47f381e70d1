"""Decoding and shaping what pjsua2 takes and gives, without pjsua2."""

from __future__ import annotations

import pytest

from agent import pjfacts


class _SockOpt:
    def __init__(self) -> None:
        self.level = self.optName = self.value = 0

    def setOptValInt(self, value: int) -> None:
        self.value = value


class _Pj:
    SockOpt = _SockOpt
    SockOptVector = list


def test_socket_options_never_exceed_what_pjsip_applies() -> None:
    """pjsip keeps four options and drops the rest silently: the path's binding comes last,
    so a fifth option would cost the laptop its interface pin. Refused instead."""
    four = [(6, 1, 1), (1, 9, 1), (6, 4, 20)]
    opts, holders = pjfacts.sock_opts(_Pj, four, ifindex=7)
    assert [(o.level, o.optName, o.value) for o in opts][-1] == (1, 62, 7)
    assert holders == opts  # the caller keeps these alive: pjsua2 points at their values
    with pytest.raises(ValueError, match="5 socket options"):
        pjfacts.sock_opts(_Pj, [*four, (6, 5, 5)], ifindex=7)
