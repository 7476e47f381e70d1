from __future__ import annotations

import datetime as dt

from agent.certwatch import DAY_S, CertWatch
from lab import pki

CA = pki.make_ca("Unit CA")
NOW = dt.datetime.now(dt.UTC)


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def watch(days_left: float) -> tuple[CertWatch, Clock]:
    end = NOW + dt.timedelta(days=days_left)
    cert = pki.issue(CA, "alice", server=False, not_before=NOW - pki.DAY, not_after=end)
    clock = Clock(NOW.timestamp())
    return CertWatch(cert.cert_pem, clock), clock


def test_no_warning_more_than_30_days_out() -> None:
    w, _ = watch(45)
    assert w.warning() is None and not w.expired()


def test_warning_then_urgent_once_a_day() -> None:
    w, clock = watch(20)
    first = w.warning()
    assert first is not None and first["level"] == "warning" and first["days_left"] == 19
    assert w.warning() is None  # not twice the same day
    clock.at += 14 * DAY_S
    urgent = w.warning()
    assert urgent is not None and urgent["level"] == "urgent"
    assert "contact the helpdesk" in urgent["reason"]


def test_expired_gives_the_refusal() -> None:
    w, clock = watch(1)
    clock.at += 1.01 * DAY_S
    assert w.expired()
    reason = w.refusal()
    assert reason.code == "device_cert_expired"
    assert "expired on" in reason.text and "re-enroll" in reason.text
