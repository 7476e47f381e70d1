"""The toll-fraud guard on real numbers (libphonenumber metadata) and a controllable clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.fraud import FraudGuard, Policy
from agent.numbers import classify


class Clock:
    def __init__(self, at: float = 1_800_000_000.0) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def guard(tmp_path: Path, clock: Clock | None = None, **policy: object) -> FraudGuard:
    return FraudGuard(Policy(**policy), tmp_path / "fraud.db", clock or Clock())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("dialed", "region", "kind", "country"),
    [
        ("+44 909 879 0000", "GB", "premium_rate", "GB"),
        ("0900 1234567", "DE", "premium_rate", "DE"),
        ("+1 900 555 0199", "US", "premium_rate", "US"),
        ("+39 899 123456", "IT", "premium_rate", "IT"),
        ("+33 8 92 12 34 56", "FR", "premium_rate", "FR"),
        ("+49 1805 123456", "DE", "shared_cost", "DE"),
        ("+44 871 123 4567", "GB", "premium_rate", "GB"),
        ("+881 6 1234 5678", "US", "satellite", "001"),
        ("030 1234567", "DE", "fixed_line", "DE"),
        ("0049 30 123456", "US", "fixed_line", "DE"),
        ("+1 212 555 0100", "US", "fixed_line_or_mobile", "US"),
        ("+7 495 123 4567", "US", "fixed_line", "RU"),
    ],
)
def test_real_numbers_are_classified(dialed: str, region: str, kind: str, country: str) -> None:
    number = classify(dialed, region)
    assert (number.kind, number.country) == (kind, country)


@pytest.mark.parametrize(
    "dialed", ["+44 909 879 0000", "0900 1234567", "+49 1805 123456", "+881 6 1234 5678"]
)
def test_premium_shared_cost_and_satellite_are_blocked(tmp_path: Path, dialed: str) -> None:
    decision = guard(tmp_path, region="DE").check(dialed)
    assert decision.action == "block" and decision.rule.startswith("type:")
    assert "blocks" in decision.reason


@pytest.mark.parametrize(
    ("dialed", "region"),
    [("112", "DE"), ("911", "US"), ("999", "GB"), ("000", "AU"), ("112", "FR"), ("110", "DE")],
)
def test_emergency_numbers_always_go_through_even_when_suspended(
    tmp_path: Path, dialed: str, region: str
) -> None:
    g = guard(tmp_path, region=region)
    g.suspend("test")
    decision = g.check(dialed, active_calls=99)
    assert (decision.action, decision.rule) == ("allow", "emergency")


def test_country_deny_and_allow_lists(tmp_path: Path) -> None:
    assert (
        guard(tmp_path / "a", region="US", deny_countries=("RU",)).check("+7 495 123 4567").rule
        == "country_denied"
    )
    g = guard(tmp_path / "b", region="US", allow_countries=("US", "CA"))
    assert g.check("+44 20 7946 0018").rule == "country_not_allowed"
    assert g.check("+1 212 555 0100").allowed


def test_concurrent_limit(tmp_path: Path) -> None:
    assert guard(tmp_path, max_concurrent=1).check("+1 212 555 0100", active_calls=1).rule == (
        "concurrent_calls"
    )


def test_velocity_and_window(tmp_path: Path) -> None:
    clock = Clock()
    g = guard(
        tmp_path,
        clock,
        region="US",
        international_per_window=3,
        window_s=600,
        suspend_after_blocks=99,
    )
    for i in range(3):
        assert g.check(f"+44 20 7946 00{10 + i * 3}").allowed
    assert g.check("+44 20 7946 0050").rule == "velocity"
    clock.at += 601
    assert g.check("+44 20 7946 0060").allowed


def test_sequential_dialing_and_suspension_persist_across_restarts(tmp_path: Path) -> None:
    clock = Clock()
    g = guard(tmp_path, clock, region="US", sequential_run=4, suspend_after_blocks=2)
    for i in range(3):
        assert g.check(f"+1 212 555 01{10 + i}").allowed
        clock.at += 5
    assert g.check("+1 212 555 0113").rule == "sequential_dialing"
    g.close()
    g = guard(tmp_path, clock, region="US", sequential_run=4, suspend_after_blocks=2)  # restart
    clock.at += 5
    decision = g.check("+1 212 555 0114")
    assert decision.action == "suspend" and "suspended for suspected fraud" in decision.reason
    g.close()
    g = guard(tmp_path, clock, region="US")  # another restart: still suspended
    assert g.suspended and g.check("+1 212 555 0199").rule == "suspended"
    g.resume("admin")
    assert g.suspended is None and g.check("+1 212 555 0199").allowed


def test_business_hours_in_the_users_time_zone(tmp_path: Path) -> None:
    # 1_800_000_000 = 2027-01-15 08:00 UTC = 03:00 in New York
    g = guard(tmp_path, region="US", timezone="America/New_York", business_hours=(8, 20))
    assert g.check("+44 20 7946 0018").rule == "business_hours"
    assert g.check("+1 212 555 0100").allowed  # domestic: not restricted


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30), st.sampled_from(["US", "DE", "GB", "FR", "AU", "JP", "ZZ"]))
def test_never_crashes_on_arbitrary_input(dialed: str, region: str) -> None:
    number = classify(dialed, region)
    assert number.kind


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([("112", "DE"), ("911", "US"), ("999", "GB"), ("000", "AU")]),
    st.integers(0, 50),
)
def test_emergency_always_allowed_whatever_the_state(pair: tuple[str, str], calls: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        g = guard(Path(d), region=pair[1], max_concurrent=0, deny_countries=(pair[1],))
        g.suspend("property test")
        assert g.check(pair[0], active_calls=calls).allowed
        g.close()


def test_alert_before_the_velocity_limit(tmp_path: Path) -> None:
    g = guard(tmp_path, region="US", international_per_window=4, alert_international_from=3)
    first, second, third = (g.check(f"+44 20 7946 00{n}") for n in (11, 22, 33))
    assert first.allowed and not first.alerts and not second.alerts
    assert third.allowed and third.alerts == ("international call 3 of 4",)


def test_daily_international_minutes_reset_at_local_midnight(tmp_path: Path) -> None:
    clock = Clock()  # 2027-01-15 08:00 UTC
    g = guard(
        tmp_path, clock, region="US", daily_international_minutes=30, timezone="Europe/Berlin"
    )
    assert g.check("+44 20 7946 0011").allowed
    g.record_call("+442079460011", 31 * 60, international=True)
    g.record_call("+12125550100", 600 * 60, international=False)  # domestic: not counted
    assert g.check("+44 20 7946 0022").rule == "daily_minutes"
    assert g.check("+1 212 555 0100").allowed
    clock.at += 16 * 3600  # past midnight in Berlin
    assert g.check("+44 20 7946 0033").allowed


def test_counters_are_shared_with_another_process_on_the_same_file(tmp_path: Path) -> None:
    """The running agent and a CLI session judge from one history, and see each other's
    suspension and resume (the counters are cached in memory, the file is the truth)."""
    clock = Clock()
    policy = {"region": "US", "international_per_window": 2, "suspend_after_blocks": 2}
    agent_side, cli_side = guard(tmp_path, clock, **policy), guard(tmp_path, clock, **policy)
    assert agent_side.check("+44 20 7946 0011").allowed
    assert cli_side.check("+44 20 7946 0022").allowed
    assert agent_side.check("+44 20 7946 0033").rule == "velocity"  # the other's dial counted
    assert cli_side.check("+1 900 555 0199").action == "suspend"  # 2nd block, across both
    assert agent_side.suspended and agent_side.check("+1 212 555 0100").rule == "suspended"
    cli_side.resume("admin")
    assert agent_side.suspended is None and agent_side.check("+1 212 555 0100").allowed


def test_velocity_counts_survive_a_restart_and_old_history_is_dropped(tmp_path: Path) -> None:
    clock = Clock()
    g = guard(tmp_path, clock, region="US", international_per_window=2, window_s=600)
    assert g.check("+44 20 7946 0011").allowed and g.check("+44 20 7946 0022").allowed
    g.close()
    g = guard(tmp_path, clock, region="US", international_per_window=2, window_s=600)
    assert g.check("+44 20 7946 0033").rule == "velocity"
    g.close()
    clock.at += 3600
    g = guard(tmp_path, clock, region="US", international_per_window=2, window_s=600)
    assert g.check("+44 20 7946 0044").allowed
    rows = g._db.execute("SELECT COUNT(*) FROM dials").fetchone()[0]
    assert rows == 1  # an hour later, only the new dial is kept
