"""The gate: examples for every reason, and properties over random observations."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent import config
from agent.gate import SBC_PROBE_MAX_AGE_S, Observations, SbcSeen, Verdict, WireGuardSeen, decide
from agent.reasons import Reason

NOW = 1_800_000_000.0
CFG = config.parse(
    {
        "version": 1,
        "account": {"user": "alice", "domain": "example.com"},
        "paths": ["wireguard", "sbc_mtls"],
        "sbc": {"host": "192.0.2.1", "port": 5061, "ca_file": "/ca.pem"},
        "wireguard": {
            "interface": "wg-office",
            "registrar": "198.51.100.1",
            "handshake_max_age_s": 180,
            "silence_max_s": 5,
        },
    }
)
GOOD_WG = WireGuardSeen(
    "wg-office", None, True, NOW - 30, NOW - 1, "wg-office", "198.51.100.2", keepalive_s=1
)
GOOD_SBC = SbcSeen(None, True, "ok", "fine", NOW - 10, "192.0.2.2", "eth0")


def wg(**changes: Any) -> WireGuardSeen:
    return WireGuardSeen(**{**GOOD_WG.__dict__, **changes})


def codes(verdict: Verdict) -> list[str]:
    return [r.code for r in verdict.reasons]


def test_wireguard_preferred_when_both_are_good() -> None:
    v = decide(CFG, Observations(NOW, GOOD_WG, GOOD_SBC))
    assert (v.path, v.local_address, v.server) == (
        "wireguard",
        "198.51.100.2",
        ("198.51.100.1", 5061),
    )


def test_falls_back_to_sbc_when_tunnel_is_down() -> None:
    v = decide(CFG, Observations(NOW, wg(link_up=False), GOOD_SBC))
    assert (v.path, v.local_address, v.server) == ("sbc_mtls", "192.0.2.2", ("192.0.2.1", 5061))


def test_wireguard_only_config_refuses_without_tunnel() -> None:
    only_wg = CFG.model_copy(update={"paths": ("wireguard",)})
    v = decide(only_wg, Observations(NOW, wg(link_up=False), GOOD_SBC))
    assert not v.allowed
    assert codes(v) == ["tunnel_down"]


def test_each_wireguard_reason() -> None:
    only_wg = CFG.model_copy(update={"paths": ("wireguard",)})
    cases = {
        "wg_not_observed": None,
        "wg_interface_absent": wg(error=Reason("wg_interface_absent", "x")),
        "tunnel_down": wg(link_up=None),
        "wg_no_handshake": wg(latest_handshake=0),
        "wg_handshake_stale": wg(latest_handshake=NOW - 181, last_heard=NOW),
        "wg_peer_silent": wg(latest_handshake=NOW - 60, last_heard=NOW - 6),
        "route_bypasses_tunnel": wg(route_device="eth0"),
        "no_local_address": wg(route_source=None),
    }
    for code, seen in cases.items():
        assert codes(decide(only_wg, Observations(NOW, seen))) == [code], code


def test_each_sbc_reason() -> None:
    only_sbc = CFG.model_copy(update={"paths": ("sbc_mtls",)})
    cases = {
        "sbc_not_checked": None,
        "pin_mismatch": SbcSeen(None, False, "pin_mismatch", "pinned key differs", NOW, "x"),
        "sbc_check_stale": SbcSeen(None, True, "ok", "", NOW - SBC_PROBE_MAX_AGE_S - 1, "x"),
        "no_route": SbcSeen(None, True, "ok", "", NOW, None, None),
    }
    for code, seen in cases.items():
        assert codes(decide(only_sbc, Observations(NOW, sbc=seen))) == [code], code


def test_without_keepalive_only_the_handshake_age_counts() -> None:
    only_wg = CFG.model_copy(update={"paths": ("wireguard",)})
    quiet = wg(keepalive_s=None, latest_handshake=NOW - 100, last_heard=NOW - 100)
    assert decide(only_wg, Observations(NOW, quiet)).path == "wireguard"
    assert not decide(
        only_wg, Observations(NOW, wg(latest_handshake=NOW - 100, last_heard=NOW - 100))
    ).allowed


def test_refusal_lists_a_reason_per_path() -> None:
    v = decide(CFG, Observations(NOW))
    assert codes(v) == ["wg_not_observed", "sbc_not_checked"]


maybe_float = st.one_of(st.none(), st.floats(NOW - 1000, NOW + 10, allow_nan=False))
maybe_text = st.one_of(st.none(), st.sampled_from(["wg-office", "eth0", "", "198.51.100.2"]))
wg_seen = st.one_of(
    st.none(),
    st.builds(
        WireGuardSeen,
        interface=st.just("wg-office"),
        error=st.one_of(st.none(), st.just(Reason("wg_failed", "x"))),
        link_up=st.one_of(st.none(), st.booleans()),
        latest_handshake=st.one_of(maybe_float, st.just(0.0)),
        last_heard=maybe_float,
        route_device=maybe_text,
        route_source=maybe_text,
        keepalive_s=st.one_of(st.none(), st.integers(1, 25)),
    ),
)
sbc_seen = st.one_of(
    st.none(),
    st.builds(
        SbcSeen,
        error=st.one_of(st.none(), st.just(Reason("sbc_unreachable", "x"))),
        probe_ok=st.one_of(st.none(), st.booleans()),
        probe_code=st.sampled_from(["ok", "pin_mismatch", None]),
        checked_at=maybe_float,
        route_source=maybe_text,
        route_device=maybe_text,
    ),
)


@given(wg_seen, sbc_seen)
def test_never_allows_on_missing_or_stale_facts(w: WireGuardSeen | None, s: SbcSeen | None) -> None:
    verdict = decide(CFG, Observations(NOW, w, s))
    if verdict.path == "wireguard":
        assert w is not None and w.error is None and w.link_up is True
        assert w.latest_handshake and NOW - w.latest_handshake <= 180
        if w.keepalive_s is not None:
            assert NOW - max(w.last_heard or 0, w.latest_handshake) <= 5
        assert w.route_device == "wg-office" and w.route_source
        assert verdict.local_address == w.route_source
    elif verdict.path == "sbc_mtls":
        assert s is not None and s.error is None and s.probe_ok is True
        assert s.checked_at is not None and NOW - s.checked_at <= SBC_PROBE_MAX_AGE_S
        assert s.route_source and verdict.local_address == s.route_source
    else:
        assert len(verdict.reasons) == 2  # one reason per configured path, none skipped
