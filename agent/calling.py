"""The calling side of the supervisor: placing, answering and controlling calls (every dialed
number meets the fraud guard before an INVITE exists), and what the SIP engine reports about
registrations and calls. A mixin of agent.service.Softphone, which owns the state it uses.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.calls import CallRecord
from agent.fraud import judge_dial
from agent.gate import Verdict
from agent.numbers import Number, dialed_number
from agent.reasons import Reason, Refused
from agent.sip import (
    CallEnded,
    CallMediaActive,
    CallStateChanged,
    IncomingCall,
    RegistrationChanged,
    SipEvent,
    TransportChanged,
    UnsolicitedRequest,
)
from agent.supervisor import SupervisorState

log = logging.getLogger(__name__)


class CallControls(SupervisorState):
    @property
    def finished_calls(self) -> list[CallRecord]:
        return list(self._calls.finished)

    @property
    def active_calls(self) -> list[CallRecord]:
        return list(self._calls.active.values())

    @property
    def last_call(self) -> dict[str, Any] | None:
        """How the latest call went (agent.calls.CallBook.last_call), for posture reports."""
        return dict(self._calls.last_call) if self._calls.last_call else None

    def call(self, target: str) -> CallRecord:
        """Place a call to a SIP URI or a phone number (the fraud guard judges numbers)."""
        if self._running and self._observer is not None:
            self.check()  # the path is checked again right before every outgoing call
        if not self._verdict.allowed:
            raise Refused(self._verdict.reasons[0])
        if not self._registration.registered:
            raise Refused(Reason("not_registered", "Not registered: calls are paused."))
        dialed = dialed_number(target)  # a number, typed or inside a URI, meets the guard
        number = self._judge_dial(dialed) if dialed is not None else None
        uri = number[0] if number else target
        self._emit({"state": "calling", "uri": uri})
        record = self._calls.placed(self._engine.call(uri), uri)
        if number:
            self._dialed[record.call_id] = number[1]  # its minutes count when it ends
        return record

    def _judge_dial(self, dialed: str) -> tuple[str, Number]:
        """Before an INVITE exists: the guard's decision is logged, then obeyed."""
        assert self._fraud is not None
        try:
            return judge_dial(
                self._fraud, dialed, len(self._calls.active), self._emit, self.config.account.domain
            )
        except Refused as exc:
            if exc.reason.code == "fraud_suspended":
                # The path is fine, so unregister properly: the SBC drops the contact.
                self._verdict = Verdict(None, reasons=(exc.reason,))
                self.stop(reason=exc.reason)
            raise

    def hangup(self, call_id: int) -> None:
        self._engine.hangup(call_id)

    def answer(self, call_id: int) -> None:
        if call_id in self._calls.active:
            self._engine.answer(call_id)

    def set_mute(self, call_id: int, muted: bool) -> None:
        self._engine.set_mute(call_id, muted)

    def microphone_live(self, call_id: int) -> bool:
        """Whether the microphone reaches the call (False when muted or not connected)."""
        return self._engine.microphone_live(call_id)

    def set_hold(self, call_id: int, held: bool) -> bool:
        return self._engine.set_hold(call_id, held)

    def on_hold(self, call_id: int) -> bool:
        return self._engine.on_hold(call_id)

    def send_dtmf(self, call_id: int, digits: str) -> bool:
        if not digits or not all(d in "0123456789*#ABCD" for d in digits):
            return False
        return self._engine.send_dtmf(call_id, digits)

    def auto_answer(self, enabled: bool = True) -> None:
        self._auto_answer = enabled

    def handle(self, event: SipEvent) -> None:
        log.info("sip event: %s", event)
        s = self._registration
        if isinstance(event, TransportChanged):
            if self._registration.on_transport(event, self.server):
                self._probe_again = True  # prove the path again before pjsip reconnects
                if self._observer is not None:
                    self._observer.forget_sbc()
        elif isinstance(event, RegistrationChanged):
            self._registration.on_registration(
                event,
                self.server,
                self.config.account_id,
                self.config.account.user,
                self._verdict.path,
            )
        elif isinstance(event, IncomingCall):
            self._calls.incoming(event, self.config.account.domain)
            if self._auto_answer:
                self._engine.answer(event.call_id)
        elif isinstance(event, UnsolicitedRequest):
            log.warning("refused %s from %s (not the SBC)", event.method, event.source)
            self._emit(
                {
                    "state": "sip.unsolicited",
                    "source": event.source,
                    "method": event.method,
                    "from": event.from_uri,
                }
            )
        elif isinstance(event, CallStateChanged):
            self._calls.state_changed(event, self._verdict.path, s.tls)
        elif isinstance(event, CallMediaActive):
            if not self._calls.media_active(event):
                self._engine.hangup(event.call_id)
        elif isinstance(event, CallEnded):
            self._calls.ended(event)
            number = self._dialed.pop(event.call_id, None)
            if number is not None and number.e164 and self._fraud is not None:
                self._fraud.record_call(number.e164, event.duration_s, number.international)
