"""The toll-fraud guard: every dialed number is judged here before an INVITE exists.

Numbers are classified with libphonenumber's metadata (country, type, validity) after
normalising what the user typed against their region. Emergency numbers are never blocked or
delayed, by any rule or by suspension. Counters live in a small SQLite file so thresholds
survive restarts; suspension too, until the portal or an admin resumes the account.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import PhoneNumberType, shortnumberinfo

SATELLITE_CODES = frozenset({870, 881, 882})  # Inmarsat, GMSS, international networks
_TYPES = {
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
}


@dataclass(frozen=True)
class Policy:
    region: str = "US"  # where the user dials from: how "0..." and short numbers are read
    timezone: str = "UTC"
    block_types: tuple[str, ...] = ("premium_rate", "shared_cost", "satellite", "unknown")
    allow_countries: tuple[str, ...] = ()  # empty: every country not denied
    deny_countries: tuple[str, ...] = ()
    international_per_window: int = 10
    alert_international_from: int = 5  # from this many in the window, allowed but alerted
    daily_international_minutes: int = 120
    window_s: int = 3600
    max_concurrent: int = 2
    business_hours: tuple[int, int] | None = None  # (from hour, to hour) for international
    sequential_run: int = 5  # this many consecutive numbers within sequential_window_s
    sequential_window_s: int = 600
    suspend_after_blocks: int = 3  # blocked dials within block_window_s before suspending
    block_window_s: int = 600


@dataclass(frozen=True)
class Number:
    dialed: str
    e164: str | None
    country: str | None
    kind: str  # premium_rate, shared_cost, satellite, mobile, ..., unknown, invalid
    emergency: bool
    international: bool


@dataclass(frozen=True)
class Decision:
    action: str  # allow | block | suspend
    rule: str  # which rule decided (allow: "ok" or "emergency")
    reason: str
    number: Number
    alerts: tuple[str, ...] = field(default=())

    @property
    def allowed(self) -> bool:
        return self.action == "allow"

    def as_fields(self) -> dict[str, Any]:
        n = self.number
        return {
            "action": self.action,
            "rule": self.rule,
            "reason": self.reason,
            "number": n.e164 or n.dialed,
            "country": n.country,
            "kind": n.kind,
            "emergency": n.emergency,
            "alerts": list(self.alerts),
        }


def is_phone_number(target: str) -> bool:
    """A dial string (digits, +, spaces, dashes) rather than a SIP URI."""
    text = target.strip()
    return (
        bool(text)
        and not text.startswith(("sip:", "sips:"))
        and all(c.isdigit() or c in "+ -()./" for c in text)
    )


def policy_from(config: Any) -> Policy:
    """The guard's policy from the `fraud` settings."""
    f = config.fraud
    return Policy(
        region=f.region,
        timezone=f.timezone,
        block_types=tuple(f.block_types),
        allow_countries=tuple(f.allow_countries),
        deny_countries=tuple(f.deny_countries),
        international_per_window=f.international_per_window,
        window_s=f.window_s,
        max_concurrent=f.max_concurrent,
        business_hours=f.business_hours,
        alert_international_from=f.alert_international_from,
        daily_international_minutes=f.daily_international_minutes,
        sequential_run=f.sequential_run,
        suspend_after_blocks=f.suspend_after_blocks,
    )


def judge_dial(
    guard: FraudGuard,
    dialed: str,
    active_calls: int,
    emit: Callable[[dict[str, Any]], None],
    domain: str,
) -> tuple[str, Number]:
    """Judge a dial, log the decision; the SIP URI to call and the number; Refused otherwise."""
    from agent.reasons import Reason, Refused

    decision = guard.check(dialed, active_calls)
    fields = decision.as_fields()
    if decision.action == "suspend":
        emit({"state": "fraud_suspended", **fields})
        raise Refused(Reason("fraud_suspended", decision.reason), reported=True)
    if not decision.allowed:
        emit({"state": "call_blocked", **fields})
        raise Refused(Reason("call_blocked", decision.reason), reported=True)
    if decision.alerts:
        emit({"state": "fraud_alert", **fields})
    if decision.number.emergency:
        emit({"state": "emergency_call", **fields})
        # Dialled as the short number, so the SBC routes it to the local emergency service.
        number = "".join(c for c in dialed if c.isdigit())
    else:
        number = decision.number.e164 or dialed.strip()
    return f"sip:{number}@{domain};user=phone", decision.number


def classify(dialed: str, region: str) -> Number:
    """What a dialed string is, read as the user in `region` would mean it."""
    text = dialed.strip()
    emergency = shortnumberinfo.is_emergency_number(text, region)
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return Number(dialed, None, None, "invalid", emergency, False)
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    country = phonenumbers.region_code_for_number(parsed)
    international = country != region
    if parsed.country_code in SATELLITE_CODES:
        kind = "satellite"
    elif not phonenumbers.is_valid_number(parsed):
        kind = "invalid"
    else:
        kind = _TYPES.get(phonenumbers.number_type(parsed), "unknown")
    return Number(dialed, e164, country, kind, emergency, international)


class FraudGuard:
    """Decides on every dial; keeps its counters and the suspension in `state_path`."""

    def __init__(
        self, policy: Policy, state_path: Path, clock: Callable[[], float] = time.time
    ) -> None:
        self.policy = policy
        self._clock = clock
        state_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(state_path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Counters survive a crash of the agent (WAL); a power cut may lose the last few
        # dials, which only makes the guard forget some history, never allow more than
        # policy. The security *events* are in the fully synchronous event log.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS dials (time REAL, e164 TEXT, international INTEGER, "
            "blocked INTEGER)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS dials_time ON dials(time)")
        self._db.execute("CREATE TABLE IF NOT EXISTS minutes (time REAL, e164 TEXT, minutes REAL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT)")

    def close(self) -> None:
        self._db.close()

    @property
    def suspended(self) -> str | None:
        row = self._db.execute("SELECT value FROM state WHERE key = 'suspended'").fetchone()
        return json.loads(row[0])["reason"] if row else None

    def resume(self, by: str) -> None:
        self._db.execute("DELETE FROM state WHERE key = 'suspended'")
        self._db.execute("DELETE FROM dials WHERE blocked = 1")  # a fresh start for the count

    def check(self, dialed: str, active_calls: int = 0) -> Decision:
        number = classify(dialed, self.policy.region)
        if number.emergency:
            return Decision("allow", "emergency", "Emergency number: always connected.", number)
        if self.suspended:
            return Decision(
                "block",
                "suspended",
                "Calls are suspended for suspected fraud: contact the helpdesk.",
                number,
            )
        decision = self._judge(number, active_calls)
        self._record(number, blocked=not decision.allowed)
        if not decision.allowed and self._recent_blocks() >= self.policy.suspend_after_blocks:
            reason = (
                f"{self._recent_blocks()} blocked dials in "
                f"{self.policy.block_window_s // 60} minutes"
            )
            self._suspend(reason)
            return Decision(
                "suspend",
                decision.rule,
                f"{decision.reason} Calls are now suspended for suspected fraud ({reason}).",
                number,
            )
        return decision

    def _judge(self, number: Number, active_calls: int) -> Decision:
        p = self.policy
        if number.kind in p.block_types or (
            number.kind == "invalid" and "unknown" in p.block_types
        ):
            return Decision(
                "block",
                f"type:{number.kind}",
                f"{number.e164 or number.dialed} is a {number.kind.replace('_', ' ')} "
                "number, which your organisation blocks.",
                number,
            )
        if number.country and number.country in p.deny_countries:
            return Decision(
                "block",
                "country_denied",
                f"Calls to {number.country} are blocked by your organisation.",
                number,
            )
        if number.country and p.allow_countries and number.country not in p.allow_countries:
            return Decision(
                "block",
                "country_not_allowed",
                f"Calls to {number.country} are not allowed by your organisation.",
                number,
            )
        if active_calls >= p.max_concurrent:
            return Decision(
                "block", "concurrent_calls", f"At most {p.max_concurrent} calls at a time.", number
            )
        if number.international:
            if p.business_hours is not None and not self._in_business_hours():
                start, end = p.business_hours
                return Decision(
                    "block",
                    "business_hours",
                    f"International calls only between {start}:00 and {end}:00.",
                    number,
                )
            recent = self._recent_international()
            if recent >= p.international_per_window:
                return Decision(
                    "block",
                    "velocity",
                    f"More than {p.international_per_window} international calls "
                    f"in {p.window_s // 60} minutes.",
                    number,
                )
            if self._international_minutes_today() >= p.daily_international_minutes:
                return Decision(
                    "block",
                    "daily_minutes",
                    f"Today's {p.daily_international_minutes} minutes of international calls "
                    "are used up.",
                    number,
                )
            if recent + 1 >= p.alert_international_from:
                alert = f"international call {recent + 1} of {p.international_per_window}"
                return Decision("allow", "ok", "", number, alerts=(alert,))
        if number.e164 and self._sequential_run(number.e164) >= p.sequential_run:
            return Decision(
                "block",
                "sequential_dialing",
                "Many consecutive numbers dialled in a short time (an enumeration pattern).",
                number,
            )
        return Decision("allow", "ok", "", number)

    def record_call(self, e164: str, seconds: float, international: bool) -> None:
        """A finished call's length counts against the daily international minutes."""
        if international:
            self._db.execute(
                "INSERT INTO minutes VALUES (?, ?, ?)", (self._clock(), e164, seconds / 60.0)
            )

    def _international_minutes_today(self) -> float:
        local = dt.datetime.fromtimestamp(self._clock(), ZoneInfo(self.policy.timezone))
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        row = self._db.execute(
            "SELECT COALESCE(SUM(minutes), 0) FROM minutes WHERE time >= ?", (midnight,)
        ).fetchone()
        return float(row[0])

    def _in_business_hours(self) -> bool:
        assert self.policy.business_hours is not None
        local = dt.datetime.fromtimestamp(self._clock(), ZoneInfo(self.policy.timezone))
        start, end = self.policy.business_hours
        return start <= local.hour < end

    def _record(self, number: Number, blocked: bool) -> None:
        self._db.execute(
            "INSERT INTO dials VALUES (?, ?, ?, ?)",
            (self._clock(), number.e164, int(number.international), int(blocked)),
        )

    def _recent_international(self) -> int:
        since = self._clock() - self.policy.window_s
        row = self._db.execute(
            "SELECT COUNT(*) FROM dials WHERE time >= ? AND international = 1 AND blocked = 0",
            (since,),
        ).fetchone()
        return int(row[0])

    def _recent_blocks(self) -> int:
        since = self._clock() - self.policy.block_window_s
        row = self._db.execute(
            "SELECT COUNT(*) FROM dials WHERE time >= ? AND blocked = 1", (since,)
        ).fetchone()
        return int(row[0])

    def _sequential_run(self, e164: str) -> int:
        """How many of the recent numbers, with this one, differ from each other by one."""
        since = self._clock() - self.policy.sequential_window_s
        recent = [  # newest first, and only as many as a run needs
            row[0]
            for row in self._db.execute(
                "SELECT e164 FROM dials WHERE time >= ? AND e164 IS NOT NULL "
                "ORDER BY time DESC LIMIT ?",
                (since, self.policy.sequential_run),
            )
        ]
        run = 1
        current = int(e164.lstrip("+"))
        for previous in recent:
            value = int(previous.lstrip("+"))
            if abs(current - value) != 1:
                break
            run, current = run + 1, value
        return run

    def _suspend(self, reason: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO state VALUES ('suspended', ?)",
            (json.dumps({"reason": reason, "since": self._clock()}),),
        )
