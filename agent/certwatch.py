"""The device certificate's life while the agent runs: warnings before it expires, and the
refusal once it has.

30 and 7 days before the end, the agent warns (once a day); at the end, registration stops
at once with a reason that says what to do. Renewal comes with the portal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agent import credentials
from agent.reasons import Reason

WARN_DAYS = 30
URGENT_DAYS = 7
DAY_S = 86400.0


class CertWatch:
    def __init__(self, cert_pem: str, clock: Callable[[], float] = time.time) -> None:
        self.summary = credentials.summarize(cert_pem)
        self._ends = self.summary.not_after.timestamp()
        self._clock = clock
        self._warned_day: int | None = None

    def expired(self) -> bool:
        return self._clock() >= self._ends

    def seconds_left(self) -> float:
        return self._ends - self._clock()

    def refusal(self) -> Reason:
        return Reason(
            "device_cert_expired",
            f"Your device certificate expired on {self.summary.not_after:%Y-%m-%d %H:%M} UTC: "
            f"calls are paused. Contact the helpdesk to re-enroll this device "
            f"(serial {self.summary.serial}).",
        )

    def warning(self) -> dict[str, Any] | None:
        """A cert.expiring state when within 30 days of the end, at most once a day."""
        left = self.seconds_left()
        if left <= 0 or left > WARN_DAYS * DAY_S:
            return None
        day = int(self._clock() // DAY_S)
        if day == self._warned_day:
            return None
        self._warned_day = day
        days = int(left // DAY_S)
        return {
            "state": "cert.expiring",
            "level": "urgent" if left <= URGENT_DAYS * DAY_S else "warning",
            "days_left": days,
            "expires": self.summary.not_after.isoformat(),
            "reason": f"Your device certificate expires in {days} day(s), on "
            f"{self.summary.not_after:%Y-%m-%d}: contact the helpdesk before then.",
        }
