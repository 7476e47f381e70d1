"""The supervisor: checks, registers, places and answers calls, and reports every state.

It owns the decisions (refuse, register, hang up) and turns what the SIP engine reports into
states with plain reasons. It never talks to PJSIP directly, so it is unit-tested with a fake
engine. Every state is handed to `emit` as one JSON-ready dict.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from agent import credentials, keystore, reasons
from agent.config import AgentConfig
from agent.reasons import Reason
from agent.sip import (
    CallEnded,
    CallMediaActive,
    CallStateChanged,
    EngineSettings,
    IncomingCall,
    MediaFacts,
    RegistrationChanged,
    SipEngine,
    SipEvent,
    TlsFacts,
    TlsMaterial,
    TransportChanged,
)

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]
REGISTER_TIMEOUT_S = 15.0
UNREGISTER_TIMEOUT_S = 1.0
IDLE_POLL_S = 1.0  # pjsip wakes us earlier for its own timers and for any packet


class Refused(Exception):
    """The agent will not (or could not) register or call; `reason` says why."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.text)
        self.reason = reason


@dataclass
class CallRecord:
    call_id: int
    direction: str
    remote: str
    established_at: float | None = None
    media: MediaFacts | None = None
    ended: bool = False


@dataclass
class _State:
    registered: bool = False
    tls: TlsFacts | None = None
    failure: Reason | None = None
    calls: dict[int, CallRecord] = field(default_factory=dict)
    finished_calls: list[CallRecord] = field(default_factory=list)


class Softphone:
    """One account on one SIP engine, driven from a single thread."""

    def __init__(
        self,
        config: AgentConfig,
        store: keystore.SecretStore,
        engine: SipEngine,
        emit: Emit,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._store = store
        self._engine = engine
        self._emit = emit
        self._clock = clock
        self._state = _State()
        self._auto_answer = False
        self._started = False
        self.server = f"{config.sbc.host}:{config.sbc.port}"

    # -- checks before anything touches the network ----------------------------------------

    def prepare(self) -> TlsMaterial:
        """Everything that must hold before a single packet is sent; raises Refused."""
        cfg = self.config
        try:
            creds = keystore.load_credentials(self._store, cfg.keychain_service, cfg.account_id)
        except keystore.MissingCredential as exc:
            raise Refused(Reason("credentials_missing", str(exc))) from None
        except keystore.KeychainError as exc:
            raise Refused(Reason("keychain_unavailable", str(exc))) from None
        try:
            credentials.check_device(creds, cfg.account.user)
        except credentials.CredentialError as exc:
            raise Refused(Reason("device_cert_invalid", str(exc))) from None
        return TlsMaterial(
            creds.cert_pem, creds.key_pem, _read_ca(cfg.sbc.ca_file), creds.sip_password
        )

    def settings(self) -> EngineSettings:
        cfg = self.config
        return EngineSettings(
            user=cfg.account.user,
            domain=cfg.account.domain,
            display_name=cfg.account.display_name,
            sbc_host=cfg.sbc.host,
            sbc_port=cfg.sbc.port,
            bind_address=str(cfg.bind_address),
            qos=cfg.media.qos,
            null_audio=cfg.media.audio == "null",
        )

    # -- registration --------------------------------------------------------------------

    def start(self, timeout_s: float = REGISTER_TIMEOUT_S) -> None:
        """Check, connect and register; return once registered, raise Refused otherwise."""
        self._emit({"state": "checking", "account": self.config.account_id})
        material = self.prepare()
        self._emit({"state": "connecting", "sbc": self.server, "path": "sbc_mtls"})
        self._engine.start(self.settings(), material)
        self._started = True
        self._engine.register()
        deadline = self._clock() + timeout_s
        while not self._state.registered:
            if self._state.failure is not None:
                raise Refused(self._state.failure)
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise Refused(
                    Reason("sbc_timeout", f"The SBC at {self.server} did not answer in time.")
                )
            self.pump(min(remaining, 0.5))

    def stop(self) -> None:
        """Unregister (waiting at most a second) and release the engine. Idempotent."""
        if not self._started:
            return
        self._started = False
        if self._state.registered:
            self._engine.unregister()
            deadline = self._clock() + UNREGISTER_TIMEOUT_S
            while self._state.registered and self._clock() < deadline:
                self.pump(0.05)
        for call in list(self._state.calls.values()):
            self._engine.hangup(call.call_id)
        self._engine.shutdown()
        if self._state.registered:
            self._state.registered = False
            self._emit({"state": "unregistered", "reason": "shutdown (no answer in time)"})

    @property
    def registered(self) -> bool:
        return self._state.registered

    @property
    def failure(self) -> Reason | None:
        return self._state.failure

    @property
    def finished_calls(self) -> list[CallRecord]:
        return list(self._state.finished_calls)

    @property
    def active_calls(self) -> list[CallRecord]:
        return list(self._state.calls.values())

    # -- calls ---------------------------------------------------------------------------

    def call(self, uri: str) -> CallRecord:
        if not self._state.registered:
            raise Refused(Reason("not_registered", "Not registered: calls are paused."))
        self._emit({"state": "calling", "uri": uri})
        call_id = self._engine.call(uri)
        record = self._state.calls.setdefault(call_id, CallRecord(call_id, "outgoing", uri))
        return record

    def hangup(self, call_id: int) -> None:
        self._engine.hangup(call_id)

    def auto_answer(self, enabled: bool = True) -> None:
        self._auto_answer = enabled

    # -- the event loop ------------------------------------------------------------------

    def pump(self, timeout_s: float = IDLE_POLL_S) -> None:
        for event in self._engine.poll(timeout_s):
            self.handle(event)

    def handle(self, event: SipEvent) -> None:
        log.info("sip event: %s", event)
        s = self._state
        if isinstance(event, TransportChanged):
            self._on_transport(event)
        elif isinstance(event, RegistrationChanged):
            self._on_registration(event)
        elif isinstance(event, IncomingCall):
            s.calls[event.call_id] = CallRecord(event.call_id, "incoming", event.remote_uri)
            self._emit({"state": "incoming", "from": event.remote_uri})
            if self._auto_answer:
                self._engine.answer(event.call_id)
        elif isinstance(event, CallStateChanged):
            record = s.calls.setdefault(
                event.call_id, CallRecord(event.call_id, "outgoing", event.remote_uri)
            )
            if event.state == "early":
                self._emit({"state": "ringing", "uri": record.remote})
            elif event.state == "confirmed" and record.established_at is None:
                record.established_at = self._clock()
                self._emit(
                    {
                        "state": "call_established",
                        "uri": record.remote,
                        "direction": record.direction,
                        "security": self.security(record),
                    }
                )
        elif isinstance(event, CallMediaActive):
            if event.call_id in s.calls:
                s.calls[event.call_id].media = event.media
            if not event.media.srtp:
                # pjsua2 already refuses RTP-only offers (488); this is the second lock.
                log.error("call %d has unencrypted media: hanging up", event.call_id)
                self._engine.hangup(event.call_id)
        elif isinstance(event, CallEnded):
            self._on_call_ended(event)

    def _on_transport(self, event: TransportChanged) -> None:
        s = self._state
        if event.connected and event.tls is not None:
            bad_cert = reasons.server_certificate(event.tls, self.server)
            if bad_cert is not None:
                s.failure = s.failure or bad_cert
                return
            s.tls = event.tls
            return
        if not event.connected:
            reason = reasons.transport_failure(event, self.server, tls_seen=s.tls is not None)
            if s.registered:
                s.registered = False
                self._emit({"state": "unregistered", **reason.as_dict()})
            elif s.failure is None or s.failure.code == reasons.GENERIC_CONNECTION_FAILURE:
                # pjsip reports a cancelled connect before the certificate verdict: keep the
                # more specific reason.
                s.failure = reason

    def _on_registration(self, event: RegistrationChanged) -> None:
        s = self._state
        if event.registered:
            if not s.registered:
                s.registered = True
                self._emit(
                    {
                        "state": "registered",
                        "account": self.config.account_id,
                        "sbc": self.server,
                        "path": "sbc_mtls",
                        "expires": event.expires,
                        "signaling": _signaling(s.tls),
                    }
                )
            return
        if event.code // 100 == 2 and event.expires == 0:
            if s.registered:
                s.registered = False
                self._emit({"state": "unregistered", "reason": "unregistered on request"})
            return
        reason = reasons.registration_failure(event, self.server, self.config.account.user, s.tls)
        if s.registered:
            s.registered = False
            self._emit({"state": "unregistered", **reason.as_dict()})
        if s.failure is None:
            s.failure = reason

    def _on_call_ended(self, event: CallEnded) -> None:
        s = self._state
        record = s.calls.pop(event.call_id, None)
        if record is None:
            record = CallRecord(event.call_id, "outgoing", "")
        record.ended = True
        s.finished_calls.append(record)
        if record.established_at is None:
            reason = reasons.call_failure(event.code, event.reason)
            self._emit(
                {
                    "state": "call_failed",
                    "uri": record.remote,
                    "sip_code": event.code,
                    **reason.as_dict(),
                }
            )
            return
        quality = None
        if event.quality is not None:
            quality = {
                "rx_packets": event.quality.rx_packets,
                "tx_packets": event.quality.tx_packets,
                "loss_percent": event.quality.loss_percent,
                "jitter_ms": event.quality.jitter_ms,
                "rtt_ms": event.quality.rtt_ms,
            }
        self._emit(
            {
                "state": "call_ended",
                "uri": record.remote,
                "sip_code": event.code,
                "duration_s": event.duration_s,
                "quality": quality,
            }
        )

    def security(self, record: CallRecord) -> dict[str, Any]:
        """What protected this call, as observed on the live connection and stream."""
        media = record.media
        return {
            "path": "sbc_mtls",
            "signaling": _signaling(self._state.tls),
            "media": None
            if media is None
            else {
                "srtp": media.srtp,
                "transport": media.transport,
                "crypto_suite": media.crypto_suite,
                "keying": media.keying,
                # SDES keys travel in the SDP, which the SBC terminating TLS can read.
                "end_to_end": media.keying == "DTLS",
                "scope": "end to end"
                if media.keying == "DTLS"
                else "hop by hop to the company SBC",
                "codec": media.codec,
            },
        }


def _signaling(tls: TlsFacts | None) -> dict[str, Any] | None:
    if tls is None:
        return None
    return {
        "transport": "TLS",
        "tls_version": tls.version,
        "cipher": tls.cipher,
        "server_verified": tls.verified,
        "server_cn": tls.server_cn,
    }


def _read_ca(path: Path) -> str:
    try:
        pem = path.read_text()
        x509.load_pem_x509_certificates(pem.encode())
    except (OSError, ValueError, UnicodeDecodeError):
        raise Refused(
            Reason("ca_invalid", f"{path}: the SBC's CA certificate file is missing or unreadable.")
        ) from None
    return pem


def human(state: dict[str, Any]) -> str:
    """One line for a person reading the terminal."""
    name = state["state"]
    if "reason" in state:
        return f"{name}: {state['reason']}"
    if name == "registered":
        sig = state.get("signaling") or {}
        return (
            f"registered as {state['account']} via {state['sbc']} "
            f"({sig.get('tls_version')} {sig.get('cipher')})"
        )
    if name == "call_established":
        sec = state["security"]
        sig, med = sec["signaling"] or {}, sec["media"] or {}
        return (
            f"call established with {state['uri']}: signaling {sig.get('tls_version')} "
            f"({sig.get('cipher')}) · media SRTP {med.get('crypto_suite')} "
            f"({med.get('scope')}) · path {sec['path']}"
        )
    if name == "call_ended":
        q = state.get("quality") or {}

        def fig(key: str, unit: str) -> str:
            return "n/a" if q.get(key) is None else f"{q[key]} {unit}"

        return (
            f"call ended after {state['duration_s']} s (loss {fig('loss_percent', '%')}, "
            f"jitter {fig('jitter_ms', 'ms')}, round trip {fig('rtt_ms', 'ms')})"
        )
    rest = " ".join(f"{k}={v}" for k, v in state.items() if k not in ("state", "time"))
    return f"{name} {rest}".strip()
