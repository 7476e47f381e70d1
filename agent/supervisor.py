"""What the parts of the supervisor share: agent.service.Softphone owns and sets up this
state; agent.calling and agent.leaving work on it. Declared once, for the type checker."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.calls import CallBook
    from agent.certwatch import CertWatch
    from agent.config import AgentConfig
    from agent.fraud import FraudGuard
    from agent.gate import Verdict
    from agent.numbers import Number
    from agent.observe import PathObserver
    from agent.reasons import Reason
    from agent.registration import Registration
    from agent.sip import SipEngine, TlsMaterial
    from tunnel.netwatch import NetWatch


class SupervisorState:
    config: AgentConfig
    server: str
    request_check: Callable[[bool], Any]
    _engine: SipEngine
    _emit: Callable[[dict[str, Any]], None]
    _calls: CallBook
    _registration: Registration
    _verdict: Verdict
    _fraud: FraudGuard | None
    _dialed: dict[int, Number]
    _running: bool
    _leaving: bool
    _observer: PathObserver | None
    _netwatch: NetWatch | None
    _material: TlsMaterial | None
    _cert: CertWatch | None
    _refusal_shown: tuple[str, ...]
    _clock: Callable[[], float]
    _auto_answer: bool
    _probe_again: bool

    if TYPE_CHECKING:  # provided by Softphone and Leaving

        def check(self, probe: bool = False) -> Verdict: ...
        def stop(self, reason: Reason | None = None, wait_s: float = 1.0) -> None: ...
        def pump_sip(self, timeout_s: float) -> None: ...
