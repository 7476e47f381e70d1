"""How the supervisor leaves SIP: dropping everything without a word when the path is gone
(whatever was sent now could leave by another route), unregistering properly when the path
is fine but policy says stop (a suspension, "update required", a re-enrollment), and the
ordinary shutdown. A mixin of agent.service.Softphone, which owns the state it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.gate import NOT_CHECKED, Verdict
from agent.reasons import Reason
from agent.supervisor import SupervisorState

if TYPE_CHECKING:
    pass

UNREGISTER_TIMEOUT_S = 1.0


class Leaving(SupervisorState):
    def _teardown(self, code: str, text: str) -> None:
        """Stop SIP at once without sending anything: the path may lead anywhere now.
        What is about to end is logged first, then ended."""
        self._calls.drop_all(code, text)
        if self._registration.registered:
            self._registration.registered = False
            self._emit({"state": "unregistered", "code": code, "reason": text})
        self._engine.shutdown(send=False)
        self._running = False
        self._registration.tls = None

    def leave(self) -> None:
        """Hang up and send the un-REGISTER without waiting for answers: a desktop app pumps
        (`pump_sip`) until `registered` is False or its patience ends, then calls `stop`."""
        if not self._running or self._leaving:
            return
        self._leaving = True
        for call in list(self._calls.active.values()):
            self._engine.hangup(call.call_id)
        if self._registration.registered:
            self._engine.unregister()

    def stop(self, reason: Reason | None = None, wait_s: float = UNREGISTER_TIMEOUT_S) -> None:
        """Unregister (waiting at most `wait_s`) and release the engine. Idempotent."""
        if self._netwatch is not None:
            self._netwatch.close()
            self._netwatch = None
        if not self._running:
            return
        self._running = False
        if self._registration.registered and reason is not None:
            self._registration.registered = False
            self._emit({"state": "unregistered", **reason.as_dict()})  # logged, then done
            self._engine.unregister()
            self.pump_sip(0.3)  # the un-REGISTER goes out and its answer comes back
        elif self._registration.registered:
            if not self._leaving:
                self._engine.unregister()
            deadline = self._clock() + wait_s
            while self._registration.registered and self._clock() < deadline:
                self.pump_sip(0.05)
        for call in list(self._calls.active.values()):
            self._engine.hangup(call.call_id)
        self._engine.shutdown(send=True)
        self._leaving = False
        if self._registration.registered:
            self._registration.registered = False
            self._emit({"state": "unregistered", "reason": "shutdown (no answer in time)"})

    # -- what the portal decides (agent.orders) --------------------------------------------

    def suspend(self, reason: str) -> None:
        """Suspended (by the portal): logged, then unregistered properly; emergency calls
        still go through a fresh session."""
        assert self._fraud is not None
        self._fraud.suspend(reason)
        self.release(Reason("fraud_suspended", f"Calls are suspended: {reason}."))

    def resume(self, by: str) -> None:
        if self._fraud is not None and self._fraud.suspended:
            self._fraud.resume(by)
            self._emit({"state": "fraud_resumed", "by": by})
        self._refusal_shown = ()
        self._verdict = NOT_CHECKED
        self.request_check(True)

    def release(self, reason: Reason, drop_credentials: bool = False) -> None:
        """Refuse with `reason`, unregister properly (the path is fine) and free the SIP
        engine, but keep watching: the agent runs on, refusing, until things change.
        `drop_credentials`: forget the in-memory material too (it must be enrolled again)."""
        self._verdict = Verdict(None, reasons=(reason,))
        if drop_credentials:
            self._material, self._cert = None, None
        self._refusal_shown = (reason.code,)
        self._emit({"state": "refused", **reason.as_dict()})  # logged, then acted upon
        self._unregister_and_free(reason)

    def _unregister_and_free(self, reason: Reason) -> None:
        if not self._running:
            return
        self._calls.drop_all(reason.code, reason.text)
        if self._registration.registered:
            self._registration.registered = False
            self._emit({"state": "unregistered", **reason.as_dict()})
            self._engine.unregister()
            self.pump_sip(0.3)  # the un-REGISTER goes out: the SBC drops the contact
        self._engine.shutdown(send=True)
        self._running = False
