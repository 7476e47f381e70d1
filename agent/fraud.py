"""The toll-fraud guard: every dialed number is judged here before an INVITE exists.

Numbers are classified by agent.numbers (libphonenumber's metadata, read against the user's
region). Emergency numbers are never blocked or
delayed, by any rule or by suspension. Counters live in a small SQLite file so thresholds
survive restarts; suspension too, until the portal or an admin resumes the account.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.numbers import Number, classify

MINUTES_KEPT_S = 2 * 86400  # enough for "today" in any time zone


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


class FraudGuard:
    """Decides on every dial; keeps its counters and the suspension in `state_path`.

    The counters a decision needs live in memory (a decision must take well under a
    millisecond), and every dial is also written to the file before the decision is returned,
    so they survive restarts. Another process sharing the file (the CLI resuming an account,
    a second session dialling) is noticed through SQLite's data_version, and the counters are
    then read back from the file: two processes never judge from different histories.
    """

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
        # Checkpoints (which fsync) run between calls, in maintain(), not inside a decision.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS dials (time REAL, e164 TEXT, international INTEGER, "
            "blocked INTEGER)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS dials_time ON dials(time)")
        self._db.execute("CREATE TABLE IF NOT EXISTS minutes (time REAL, e164 TEXT, minutes REAL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT)")
        self._seen_version = -1
        self._international: deque[float] = deque()  # allowed international dials
        self._blocks: deque[float] = deque()  # blocked dials
        self._recent: deque[tuple[float, str]] = deque(maxlen=max(1, policy.sequential_run))
        self._minutes: deque[tuple[float, float]] = deque()  # finished international calls
        self._suspended: str | None = None
        self.maintain()

    def close(self) -> None:
        self._db.close()

    def maintain(self) -> None:
        """Drop history no rule looks at any more and checkpoint the WAL (between calls)."""
        p = self.policy
        horizon = max(p.window_s, p.block_window_s, p.sequential_window_s)
        now = self._clock()
        self._db.execute("DELETE FROM dials WHERE time < ?", (now - horizon,))
        self._db.execute("DELETE FROM minutes WHERE time < ?", (now - MINUTES_KEPT_S,))
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._refresh(force=True)

    @property
    def suspended(self) -> str | None:
        self._refresh()
        return self._suspended

    def resume(self, by: str) -> None:
        self._db.execute("DELETE FROM state WHERE key = 'suspended'")
        self._db.execute("DELETE FROM dials WHERE blocked = 1")  # a fresh start for the count
        self._suspended = None
        self._blocks.clear()

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
            self.suspend(reason)
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
            now = self._clock()
            self._db.execute("INSERT INTO minutes VALUES (?, ?, ?)", (now, e164, seconds / 60.0))
            self._minutes.append((now, seconds / 60.0))
        self.maintain()  # a call just ended: a quiet moment for housekeeping

    def _refresh(self, force: bool = False) -> None:
        """Read the counters back from the file if another connection changed it."""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._seen_version and not force:
            return
        self._seen_version = version
        p, now = self.policy, self._clock()
        self._international.clear()
        self._blocks.clear()
        self._recent.clear()
        self._minutes.clear()
        since = now - max(p.window_s, p.block_window_s, p.sequential_window_s)
        for when, e164, international, blocked in self._db.execute(
            "SELECT time, e164, international, blocked FROM dials WHERE time >= ? ORDER BY time",
            (since,),
        ):
            self._remember(when, e164, bool(international), bool(blocked))
        for when, minutes in self._db.execute(
            "SELECT time, minutes FROM minutes WHERE time >= ? ORDER BY time",
            (now - MINUTES_KEPT_S,),
        ):
            self._minutes.append((when, minutes))
        row = self._db.execute("SELECT value FROM state WHERE key = 'suspended'").fetchone()
        self._suspended = json.loads(row[0])["reason"] if row else None

    def _remember(self, when: float, e164: str | None, international: bool, blocked: bool) -> None:
        if blocked:
            self._blocks.append(when)
        elif international:
            self._international.append(when)
        if e164:
            self._recent.append((when, e164))

    def _international_minutes_today(self) -> float:
        local = dt.datetime.fromtimestamp(self._clock(), ZoneInfo(self.policy.timezone))
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        return sum(minutes for when, minutes in self._minutes if when >= midnight)

    def _in_business_hours(self) -> bool:
        assert self.policy.business_hours is not None
        local = dt.datetime.fromtimestamp(self._clock(), ZoneInfo(self.policy.timezone))
        start, end = self.policy.business_hours
        return start <= local.hour < end

    def _record(self, number: Number, blocked: bool) -> None:
        now = self._clock()
        self._db.execute(
            "INSERT INTO dials VALUES (?, ?, ?, ?)",
            (now, number.e164, int(number.international), int(blocked)),
        )
        self._seen_version = self._db.execute("PRAGMA data_version").fetchone()[0]
        self._remember(now, number.e164, number.international, blocked)

    def _recent_international(self) -> int:
        return _count_since(self._international, self._clock() - self.policy.window_s)

    def _recent_blocks(self) -> int:
        return _count_since(self._blocks, self._clock() - self.policy.block_window_s)

    def _sequential_run(self, e164: str) -> int:
        """How many of the recent numbers, with this one, differ from each other by one."""
        since = self._clock() - self.policy.sequential_window_s
        run = 1
        current = int(e164.lstrip("+"))
        for when, previous in reversed(self._recent):  # newest first
            if when < since:
                break
            value = int(previous.lstrip("+"))
            if abs(current - value) != 1:
                break
            run, current = run + 1, value
        return run

    def suspend(self, reason: str) -> None:
        """Refuse every dial but emergency ones until resumed (a portal command, an admin)."""
        self._db.execute(
            "INSERT OR REPLACE INTO state VALUES ('suspended', ?)",
            (json.dumps({"reason": reason, "since": self._clock()}),),
        )
        self._suspended = reason


def _count_since(times: deque[float], since: float) -> int:
    """Forget what fell out of the window (oldest first) and count what is left."""
    while times and times[0] < since:
        times.popleft()
    return len(times)
