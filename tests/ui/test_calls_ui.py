"""The tray app on the real lab: dialling from the dial pad, answering from the incoming-call
window, and what the in-call window says about the live call's protection."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import agent
from tests.ui.conftest import save
from ui.app import GuardphoneApp

pytestmark = [pytest.mark.kamailio, pytest.mark.keychain]


def seconds(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def config_of(lab: Any, name: str) -> Path:
    return Path(next(u.config for u in lab.users if u.name == name))


@pytest.fixture
def open_app(qtbot: Any) -> Iterator[Callable[[Path], GuardphoneApp]]:
    """The tray app for a lab user, registered; shut down (unregistered) afterwards."""
    made: list[GuardphoneApp] = []

    def open_(config: Path, ready: str = "can_call") -> GuardphoneApp:
        app = GuardphoneApp(config)
        made.append(app)
        app.start()
        if ready == "can_call":
            qtbot.waitUntil(lambda: app.tray.status.can_call, timeout=15000)
        else:
            qtbot.waitUntil(lambda: app.tray.status.kind == ready, timeout=15000)
        return app

    yield open_
    for app in made:
        started = time.monotonic()
        with qtbot.waitSignal(app.bridge.stopped, timeout=5000):
            app.quit()
        assert time.monotonic() - started < 1.5  # unregistered, or gave up after a second
        assert not app.bridge.phone.registered
        for window in (app.dialpad, app.why, *app.calls.values()):
            window.close()
        app.tray.icon.hide()


def test_dial_pad_places_a_real_call_and_the_call_window_shows_its_protection(
    lab: Any, env: dict[str, str], open_app: Any, qtbot: Any, screenshots: Path
) -> None:
    with agent(config_of(lab, "bob"), "answer", "--count", "1", env=env) as bob:
        bob.wait_for("registered")
        app = open_app(config_of(lab, "alice"))
        assert app.tray.status.kind == "registered_sbc"
        pad = app.dialpad
        pad.open()
        qtbot.keyClicks(pad.number, "bob")
        assert pad.preview.text() == "Calls bob@lab.guardphone.test"
        assert pad.call_button.isEnabled()
        save(pad, "dial-pad", screenshots)
        qtbot.keyClick(pad.number, "\r")  # Enter calls: no mouse needed
        qtbot.waitUntil(lambda: len(app.calls) == 1, timeout=10000)
        window = next(iter(app.calls.values()))
        qtbot.waitUntil(lambda: window.state.text() == "Connected", timeout=10000)
        established = bob.wait_for("call_established")
        line = window.security.text().replace("\n", " · ")
        # What the window says is what the live call reports (bob's side agrees on SRTP).
        media = established["security"]["media"]
        assert f"Media: SRTP {media['crypto_suite']}" in line
        assert "encrypted hop by hop to the company SBC" in line
        assert line.startswith("Signaling: TLSv1.2 (ECDHE-")
        assert "Path: mutual TLS to the company SBC 127.0.0.1:" in line
        qtbot.waitUntil(lambda: window.clock.text() not in ("", "00:00"), timeout=3000)
        assert app.bridge.phone.microphone_live(window.call_id)
        window.mute_button.click()
        assert window.mute_button.text() == "Unmute"
        # pjsip applies conference-bridge changes on its next clock tick (20 ms).
        qtbot.waitUntil(lambda: not app.bridge.phone.microphone_live(window.call_id), timeout=1000)
        save(window, "in-call", screenshots)
        # Hold is a re-INVITE through the SBC: the button says Resume only in words; the
        # engine must report the call held once the SBC answered, and back after Resume.
        window.hold_button.click()
        assert window.hold_button.text() == "Resume"
        qtbot.waitUntil(lambda: app.bridge.phone.on_hold(window.call_id), timeout=5000)
        window.hold_button.click()
        qtbot.waitUntil(lambda: not app.bridge.phone.on_hold(window.call_id), timeout=5000)
        assert window.state.text() == "Connected"
        window.mute_button.click()
        qtbot.waitUntil(lambda: app.bridge.phone.microphone_live(window.call_id), timeout=1000)
        # A DTMF digit on the live call: pytest-qt fails the test if the engine raises.
        window.keypad_button.click()
        window.dtmf.emit(window.call_id, "5")
        window.hangup_button.click()
        qtbot.waitUntil(lambda: window.state.text().startswith("Call ended"), timeout=5000)
        assert bob.wait(10) == 0
    assert any(line["state"] == "call_ended" for line in bob.lines)
    assert not window.hangup_button.isEnabled()
    # The call is in the recent list, to call again from the dial pad.
    assert "bob@lab.guardphone.test" in pad.recent.item(0).text()


def test_incoming_call_from_a_colleague_is_answered_and_hung_up_from_the_ui(
    lab: Any, env: dict[str, str], open_app: Any, qtbot: Any, screenshots: Path
) -> None:
    app = open_app(config_of(lab, "alice"))
    states: list[dict[str, Any]] = []
    app.bridge.state.connect(states.append)
    # Idle (the pump timer at seconds): the INVITE must still ring at once, woken by the
    # SBC connection's socket rather than found by the next tick.
    qtbot.waitUntil(lambda: app.bridge.idle, timeout=10000)
    target = "sip:alice@lab.guardphone.test"
    with agent(config_of(lab, "bob"), "call", target, env=env) as bob:
        qtbot.waitUntil(lambda: len(app.incoming) == 1, timeout=10000)
        calling = bob.wait_for("calling")
        incoming = next(line for line in states if line["state"] == "incoming")
        assert seconds(incoming["time"]) - seconds(calling["time"]) < 0.5
        ring = next(iter(app.incoming.values()))
        assert ring.internal, "the SBC asserted bob's identity: an internal caller"
        assert "confirmed by the company SBC" in ring.badge.text()
        save(ring, "incoming-call", screenshots)
        ring.answer_button.click()
        qtbot.waitUntil(lambda: len(app.calls) == 1, timeout=10000)
        window = next(iter(app.calls.values()))
        qtbot.waitUntil(lambda: window.state.text() == "Connected", timeout=10000)
        assert "Media: SRTP" in window.security.text()
        bob.wait_for("call_established")
        window.hangup_button.click()
        ended = bob.wait_for("call_ended")
        assert ended["duration_s"] > 0
    assert not app.incoming


def test_a_blocked_number_shows_the_rule_and_never_rings(
    lab: Any, open_app: Any, qtbot: Any
) -> None:
    app = open_app(config_of(lab, "carol"))
    pad = app.dialpad
    pad.open()
    qtbot.keyClicks(pad.number, "+1 900 555 0199")
    assert pad.preview.text() == "Calls +19005550199 (US, premium rate)"
    with qtbot.waitSignal(app.bridge.dial_refused, timeout=5000) as blocked:
        pad.call_button.click()
    assert blocked.args[0]["code"] == "call_blocked"
    assert "premium rate number, which your organisation blocks" in pad.reason.text()
    assert not app.calls


class Heartbeat:
    """A 10 ms timer on the UI thread: the longest gap between its ticks is how long the UI
    was frozen (a blocking unregister, probe or keychain call would show here)."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.last = time.monotonic()
        self.longest = 0.0
        self.when = 0.0
        self.timer = QTimer()
        self.timer.timeout.connect(self._beat)
        self.timer.start(10)

    def _beat(self) -> None:
        now = time.monotonic()
        if now - self.last > self.longest:
            self.longest, self.when = now - self.last, self.last
        self.last = now


def test_the_ui_never_freezes_from_start_through_a_call_to_quit(
    lab: Any, env: dict[str, str], qtbot: Any
) -> None:
    with agent(config_of(lab, "bob"), "answer", "--count", "1", env=env) as bob:
        bob.wait_for("registered")  # (the test itself waits here, not the app)
        beat = Heartbeat()
        t0 = time.monotonic()
        app = GuardphoneApp(config_of(lab, "alice"))
        marks = [("constructed", time.monotonic())]
        app.bridge.state.connect(lambda line: marks.append((line["state"], time.monotonic())))
        app.start()
        qtbot.waitUntil(lambda: app.tray.status.can_call, timeout=15000)
        app.dial("sip:bob@lab.guardphone.test")
        qtbot.waitUntil(
            lambda: any(w.state.text() == "Connected" for w in app.calls.values()), timeout=10000
        )
        window = next(iter(app.calls.values()))
        window.hangup_button.click()
        qtbot.waitUntil(lambda: window.state.text().startswith("Call ended"), timeout=5000)
        with qtbot.waitSignal(app.bridge.stopped, timeout=5000):
            app.quit()
        beat.timer.stop()
    app.tray.icon.hide()
    window.close()
    timeline = [(n, round(t - t0, 3)) for n, t in marks]
    print(f"longest UI-thread stall: {beat.longest * 1000:.0f} ms")
    assert beat.longest < 0.25, (
        f"the UI thread was blocked for {beat.longest:.3f} s from {beat.when - t0:.3f} s; "
        f"{timeline}"
    )


def test_an_emergency_number_is_dialled_even_while_suspended(
    lab: Any, open_app: Any, qtbot: Any
) -> None:
    from agent import config as config_mod
    from agent.fraud import FraudGuard, policy_from

    carol = config_of(lab, "carol")
    guard = FraudGuard(policy_from(config_mod.load(carol)), config_mod.load(carol).fraud.state_file)
    guard.suspend("test: suspected fraud")
    try:
        app = open_app(carol, ready="suspended")
        states: list[dict[str, Any]] = []
        app.bridge.state.connect(states.append)
        pad = app.dialpad
        pad.open()
        qtbot.keyClicks(pad.number, "911")
        assert pad.call_button.isEnabled(), "emergency numbers stay callable while suspended"
        pad.call_button.click()
        qtbot.waitUntil(lambda: any(s["state"] == "calling" for s in states), timeout=10000)
        calling = next(s for s in states if s["state"] == "calling")
        assert calling["uri"].startswith("sip:911@")
        assert any(s["state"] == "emergency_call" for s in states)
        # The lab has no emergency service (404); afterwards the suspension applies again.
        qtbot.waitUntil(lambda: app.tray.status.kind == "suspended", timeout=10000)
        qtbot.waitUntil(lambda: not app.bridge.phone.registered, timeout=10000)
        qtbot.keyClicks(pad.number, "1")  # "9111" is no emergency number
        assert not pad.call_button.isEnabled()
    finally:
        guard.resume("test")
        guard.close()


def test_the_call_window_says_when_the_other_side_goes_silent_and_when_it_is_back(
    lab: Any, env: dict[str, str], open_app: Any, qtbot: Any, screenshots: Path
) -> None:
    """Bob's laptop freezes mid-call (its process stopped, as a closed lid does): alice's
    window says in words that she cannot hear him within 3 s, and clears when he is back."""
    with agent(config_of(lab, "bob"), "answer", "--count", "1", env=env) as bob:
        bob.wait_for("registered")
        app = open_app(config_of(lab, "alice"))
        states: list[dict[str, Any]] = []
        app.bridge.state.connect(states.append)
        app.bridge.phone.call("sip:bob@lab.guardphone.test")
        qtbot.waitUntil(lambda: len(app.calls) == 1, timeout=10000)
        window = next(iter(app.calls.values()))
        qtbot.waitUntil(lambda: window.state.text() == "Connected", timeout=10000)
        bob.wait_for("call_established")
        qtbot.wait(1000)
        assert window.silence.isHidden(), "audio flows: nothing to say"
        os.kill(bob.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            qtbot.waitUntil(window.silence.isVisible, timeout=4000)
            noticed = time.monotonic() - frozen
            save(window, "in-call-silent", screenshots)
            assert window.silence.text().startswith("You can't hear them")
            silent = next(s for s in states if s["state"] == "media_silent")
            assert silent["direction"] == "in"
            assert noticed < 3.0, f"silence said after {noticed:.1f} s"
        finally:
            os.kill(bob.pid, signal.SIGCONT)
        qtbot.waitUntil(window.silence.isHidden, timeout=3000)
        assert any(s["state"] == "media_restored" for s in states)
        window.hangup_button.click()
        qtbot.waitUntil(lambda: window.state.text().startswith("Call ended"), timeout=5000)
        ended = next(s for s in states if s["state"] == "call_ended")
        assert ended["quality"]["silent_s"]["in"] >= 2.0
        assert ended["quality"]["mos"] is not None
        assert bob.wait(10) == 0
