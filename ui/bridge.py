"""The one place where Qt meets the agent: the supervisor runs on the Qt thread, pumped by a
timer, and its states come out as Qt signals.

Nothing here blocks the UI. Path observations (subprocesses, a TLS probe) and the start
(keychain, enrollment) run on a worker thread and are handed back to the Qt thread, where
every SIP action happens. The pump timer runs fast (20 ms) only while something is happening
— a call, a registration, a shutdown, the seconds after any event — and slowly otherwise; a
network change wakes it at once through the netlink socket, so idle costs a few wake-ups a
second. Quitting unregisters without waiting in a loop: the timer pumps until the SBC
answered or a second passed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSocketNotifier, QTimer, Signal

from agent import keystore
from agent.calls import CallRecord
from agent.numbers import classify, dialed_number
from agent.reasons import Reason, Refused
from agent.session import Session
from agent.sip import SipEngine
from agent.why import Check, explain

log = logging.getLogger(__name__)

FAST_MS = 20  # while media flows through our ioqueue, and around any change
# Registered and quiet: anything arriving from the SBC wakes us through its socket, so the
# timer only serves pjsip's own coarse timers (keep-alives, re-REGISTER) and the path
# re-check (every second on a WireGuard path: handshake age and peer silence).
IDLE_MS = 5000
BUSY_S = 3.0  # how long after an event the pump stays fast
LEAVE_S = 1.0  # how long quitting waits for the SBC to confirm the un-REGISTER
RETRY_START_S = 30.0  # a failed start (keychain locked, no credentials yet) is tried again


class AgentBridge(QObject):
    state = Signal(dict)  # every agent state, as logged (with time and seq)
    checks_changed = Signal(list)  # list[agent.why.Check]
    dial_refused = Signal(dict)  # {"code", "reason"}: a dial that never reached the wire
    stopped = Signal()
    _posted = Signal(object)  # a callable to run on the Qt thread

    def __init__(
        self, config_path: Path, engine: SipEngine | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._posted.connect(self._run_posted)
        self._main = threading.current_thread()
        self.session = Session(config_path, self._show, engine)
        try:
            self.phone = self.session.phone
        except keystore.KeychainError as exc:
            self.session.emit(
                {"state": "refused", "code": "keychain_unavailable", "reason": str(exc)}
            )
            self.session.close()
            raise
        self.phone.request_check = self._request_check
        self.config = self.session.effective.config
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._tick)
        self._begun = False
        self._starting = False  # begin() runs on the worker: nothing else touches the phone
        self._checking = False
        self._check_again: bool | None = None
        self._pending_dial: str | None = None
        self._busy_until = 0.0
        self._stopping = False
        self._leave_deadline = 0.0
        self._net: QSocketNotifier | None = None
        self._sip: list[QSocketNotifier] = []  # the TLS connection(s) to the SBC
        self.checks: list[Check] = []
        self.wakeups = 0  # timer ticks, for the idle figures

    # -- what the UI asks for -----------------------------------------------------------

    def start(self) -> None:
        if self._starting or self._begun:
            return
        self._starting = True
        self._in_worker(self._begin, "guardphone-start")

    def dial(self, target: str) -> None:
        target = target.strip()
        if not target:
            return
        if self._emergency(target) and not self.phone.registered and self.phone.suspended:
            # Never blocked by a fraud suspension: register for this call alone, dial it as
            # soon as the SBC accepts us, and let the suspension return when it ends.
            self.phone.emergency_dial = True
            self._pending_dial = target
            self._request_check(True)
            return
        if self._checking:
            self._pending_dial = target  # placed as soon as the running check concluded
            return
        try:
            self.phone.call(target)
        except Refused as exc:
            self.dial_refused.emit(exc.reason.as_dict())
        self._hurry()

    def _emergency(self, target: str) -> bool:
        number = dialed_number(target)
        return number is not None and classify(number, self.config.fraud.region).emergency

    def answer(self, call_id: int) -> None:
        self.phone.answer(call_id)
        self._hurry()

    def hangup(self, call_id: int) -> None:
        self.phone.hangup(call_id)
        self._hurry()

    def set_mute(self, call_id: int, muted: bool) -> None:
        self.phone.set_mute(call_id, muted)

    def set_hold(self, call_id: int, held: bool) -> bool:
        self._hurry()
        return self.phone.set_hold(call_id, held)

    def send_dtmf(self, call_id: int, digits: str) -> bool:
        self._hurry()
        return self.phone.send_dtmf(call_id, digits)

    def check_now(self) -> None:
        if self._begun:
            self._request_check(True)
        else:
            self.start()

    def shutdown(self) -> None:
        """Hang up, unregister, release everything; `stopped` is emitted when done."""
        if self._stopping:
            return
        self._stopping = True
        self.phone.leave()
        self._leave_deadline = time.monotonic() + LEAVE_S
        self._schedule(0)

    @property
    def idle(self) -> bool:
        """Pumping slowly: nothing is happening (what the idle figures measure)."""
        return self._timer.interval() > FAST_MS and not self._busy()

    @property
    def active_calls(self) -> list[CallRecord]:
        return self.phone.active_calls

    # -- the start, off the Qt thread ---------------------------------------------------

    def _begin(self) -> None:
        failure: Reason | None = None
        try:
            self.phone.begin()
        except Refused as exc:
            failure = exc.reason
        except keystore.KeychainError as exc:
            failure = Reason("keychain_unavailable", str(exc))
        except Exception as exc:  # never leave the tray saying "checking" forever
            log.exception("start failed")
            failure = Reason("start_failed", f"guardphone could not start: {exc}")
        self._posted.emit(lambda: self._begin_done(failure))

    def _begin_done(self, failure: Reason | None) -> None:
        self._starting = False
        if self._stopping:
            return
        if failure is not None:
            self.session.emit({"state": "refused", **failure.as_dict()})
            self._publish_checks()
            QTimer.singleShot(int(RETRY_START_S * 1000), self._retry_start)
            self._schedule(IDLE_MS)  # a corrected configuration is still followed
            return
        self._begun = True
        fd = self.phone.network_fd()
        if fd is not None:
            self._net = QSocketNotifier(fd, QSocketNotifier.Type.Read, self)
            self._net.activated.connect(self._network_changed)
        self._request_check(True)

    def _retry_start(self) -> None:
        if not self._begun and not self._stopping and self.phone.certificate is None:
            self.start()

    # -- checks, observed off the Qt thread and concluded on it --------------------------

    def _request_check(self, probe: bool) -> None:
        if self._checking:
            self._check_again = bool(self._check_again) or probe
            return
        self._checking = True
        self._in_worker(lambda: self._observe(probe), "guardphone-check")

    def _observe(self, probe: bool) -> None:
        try:
            seen = self.phone.observe(probe)
        except Exception as exc:
            log.exception("observing the paths failed")
            error = Reason("observe_failed", f"The connection check failed: {exc}")
            self._posted.emit(lambda: self._concluded(None, error))
            return
        self._posted.emit(lambda: self._concluded(seen, None))

    def _concluded(self, seen: Any, error: Reason | None) -> None:
        """The check's result, back on the Qt thread. Only a change (a state emitted) or a
        waiting dial makes the pump run fast: a routine re-check that changed nothing must
        not cost three seconds of 20 ms ticks."""
        self._checking = False
        if self._stopping:
            return
        if seen is not None:
            self.phone.conclude(seen)
        elif error is not None:
            self.session.emit({"state": "refused", **error.as_dict()})
        self._publish_checks()
        if self._check_again is not None:
            probe, self._check_again = self._check_again, None
            self._request_check(probe)
        elif self._pending_dial is not None and self.phone.registered:
            target, self._pending_dial = self._pending_dial, None
            self.dial(target)
        elif self._pending_dial is not None and not self.phone.verdict.allowed:
            self._pending_dial = None
            self.dial_refused.emit(self.phone.verdict.reasons[0].as_dict())
        # (still registering: the "registered" state places it)
        self._schedule()

    def _publish_checks(self) -> None:
        self.checks = explain(self.phone.config, self.phone.situation())
        self.checks_changed.emit(self.checks)

    # -- pumping -----------------------------------------------------------------------

    def _network_changed(self) -> None:
        self._tick()

    def _tick(self) -> None:
        self.wakeups += 1
        if self._stopping:
            self._leave_step()
            return
        if not self._starting:
            self.phone.pump(0)
        self._schedule()

    def _leave_step(self) -> None:
        self.phone.pump_sip(0)
        if self.phone.registered and time.monotonic() < self._leave_deadline:
            self._schedule(FAST_MS)
            return
        for notifier in [*self._sip, *([self._net] if self._net else [])]:
            notifier.setEnabled(False)
        self.phone.stop(wait_s=0)
        self.session.close()
        self.stopped.emit()

    def _watch_sip(self) -> None:
        """Wake on anything the SBC sends: a notifier on our TLS connection to it, so an
        incoming call rings at once."""
        for notifier in self._sip:
            notifier.setEnabled(False)
            notifier.deleteLater()
        self._sip = []
        for fd in self.phone.sip_sockets():
            notifier = QSocketNotifier(fd, QSocketNotifier.Type.Read, self)
            notifier.activated.connect(self._sip_readable)
            self._sip.append(notifier)

    def _sip_readable(self) -> None:
        self._busy_until = time.monotonic() + BUSY_S  # a transaction may be starting
        self._tick()

    def _hurry(self) -> None:
        self._busy_until = time.monotonic() + BUSY_S
        self._schedule(0)

    def _busy(self) -> bool:
        return bool(
            self.phone.active_calls
            or time.monotonic() < self._busy_until
            or (self.phone.verdict.allowed and not self.phone.registered)
        )

    def _schedule(self, ms: int | None = None) -> None:
        if ms is None:
            ms = FAST_MS if self._busy() else min(IDLE_MS, int(self.phone.recheck_s * 1000))
        if self._timer.isActive() and self._timer.remainingTime() <= ms:
            return
        self._timer.start(ms)

    # -- threads -----------------------------------------------------------------------

    def _show(self, line: dict[str, Any]) -> None:
        """Every state the agent logged; shown on the Qt thread, whoever emitted it."""
        if threading.current_thread() is self._main:
            self._state(line)
        else:
            self._posted.emit(lambda: self._state(line))

    def _state(self, line: dict[str, Any]) -> None:
        self._busy_until = time.monotonic() + BUSY_S
        name = line.get("state")
        if name in ("registered", "unregistered", "refused", "connecting"):
            self._watch_sip()
        if name == "registered" and self._pending_dial is not None and not self._checking:
            target, self._pending_dial = self._pending_dial, None
            QTimer.singleShot(0, lambda: self.dial(target))  # once this state is handled
        if name == "refused" and self._pending_dial is not None:
            self._pending_dial = None  # it cannot be placed: say why
            self.dial_refused.emit({"code": line.get("code", ""), "reason": line.get("reason", "")})
        others = [c for c in self.phone.active_calls if c.call_id != line.get("call_id")]
        if name in ("call_ended", "call_failed") and self.phone.emergency_dial and not others:
            self.phone.emergency_dial = False  # the suspension applies again
            QTimer.singleShot(0, lambda: self._request_check(False))
        self.state.emit(line)
        if self._begun:
            self._publish_checks()

    def _in_worker(self, job: Callable[[], None], name: str) -> None:
        threading.Thread(target=job, name=name, daemon=True).start()

    def _run_posted(self, job: Callable[[], None]) -> None:
        job()
