"""What the portal decides, carried out by the supervisor: signed commands (suspend, resume,
re-enroll, report now) and the signed policy's minimum agent version. Each command is logged
before it is acted upon, and acknowledged after.
"""

from __future__ import annotations

import queue
import socket
import time
from typing import TYPE_CHECKING, Any

import psutil

from agent import keystore
from agent.fleet import AGENT_VERSION, FleetLink
from agent.reasons import Reason
from agent.schemas import CallFacts, CheckFacts, FraudFacts, PathFacts, SipFacts

if TYPE_CHECKING:
    from agent.service import Softphone


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int("".join(c for c in part if c.isdigit()) or 0) for part in text.split("."))


FACTS_EVERY_S = 5.0


class Orders:
    def __init__(self, link: FleetLink) -> None:
        self.link = link
        self._warned_version: str | None = None
        self._last_can_call: tuple[bool, tuple[Reason, ...]] | None = None
        self._facts_at = 0.0

    def update_required(self) -> Reason | None:
        """A refusal when the policy demands a newer agent and says to refuse below it."""
        policy = self.link.policy
        if policy is None or version_tuple(AGENT_VERSION) >= version_tuple(
            policy.min_agent_version
        ):
            return None
        if policy.below_min_version != "refuse":
            return None
        return Reason(
            "update_required",
            f"This guardphone ({AGENT_VERSION}) is older than your organisation allows "
            f"({policy.min_agent_version} or newer): update it, then calls resume.",
        )

    def follow(self, phone: Softphone) -> None:
        """On the supervisor's thread: hand over the VoIP facts (a fresh report when calling
        became possible or impossible: the helpdesk sees the change), carry out commands."""
        can_call = (phone.registered, phone.verdict.reasons[:1])
        now = time.monotonic()
        if can_call != self._last_can_call or now - self._facts_at >= FACTS_EVERY_S:
            # Rebuilt when something changed or every few seconds, not on every pump (a
            # call pumps every 20 ms).
            self.link.voip = voip_facts(phone)
            self._facts_at = now
        if can_call != self._last_can_call:
            self._last_can_call = can_call
            self.link.report_now()
        policy = self.link.policy
        if (
            policy is not None
            and policy.below_min_version == "warn"
            and version_tuple(AGENT_VERSION) < version_tuple(policy.min_agent_version)
            and self._warned_version != policy.min_agent_version
        ):
            self._warned_version = policy.min_agent_version
            phone.emit(
                {
                    "state": "update_recommended",
                    "reason": f"Your organisation asks for guardphone {policy.min_agent_version} "
                    f"or newer (this is {AGENT_VERSION}).",
                }
            )
        if self.update_required() is not None and phone.verdict.allowed:
            phone.request_check(False)  # the gate refuses it now
        while True:
            try:
                command = self.link.commands.get_nowait()
            except queue.Empty:
                return
            self._carry_out(phone, command.id, command.kind, command.reason)

    def _carry_out(self, phone: Softphone, command_id: int, kind: str, reason: str) -> None:
        phone.emit({"state": "portal_command", "id": command_id, "kind": kind, "reason": reason})
        if kind == "suspend":
            phone.suspend(f"suspended by your organisation{': ' + reason if reason else ''}")
        elif kind == "resume":
            phone.resume("portal command")
        elif kind == "report_now":
            self.link.report_now()
        elif kind == "reenroll":
            cfg = phone.config
            keystore.delete_credentials(phone.store, cfg.keychain_service, cfg.account_id)
            phone.release(
                Reason(
                    "reenroll_required",
                    "Your organisation asked this device to enroll again: ask the helpdesk "
                    "for an enrollment token.",
                ),
                drop_credentials=True,
            )
        self.link.acknowledge(command_id)


def voip_facts(phone: Softphone) -> dict[str, Any]:
    """The VoIP part of a posture report, from the supervisor's own state."""
    from agent.why import explain

    situation = phone.situation()
    verdict = situation.verdict
    tls = phone.tls
    wg = situation.seen.wireguard if situation.seen else None
    handshake = (
        situation.seen.now - wg.latest_handshake
        if situation.seen and wg and wg.latest_handshake
        else None
    )
    first = verdict.reasons[0] if verdict.reasons else None
    failure = situation.registration_failure or first
    versions = phone.versions()
    cert = phone.certificate
    return {
        "pjsip_version": versions.get("pjsip"),
        "openssl_version": versions.get("pjsip_openssl"),
        "path": PathFacts(
            in_use=verdict.path,  # type: ignore[arg-type]
            handshake_age_s=round(handshake, 1) if handshake is not None else None,
            tls_version=tls.version if tls else None,
            tls_cipher=tls.cipher if tls else None,
            pin_match=True if verdict.path == "sbc_mtls" else None,
        ),
        "sip": SipFacts(
            registered=phone.registered,
            reason_code=None if phone.registered or failure is None else failure.code,
            reason=None if phone.registered or failure is None else failure.text,
            transports=["tls"] if phone.registered else [],
            plaintext_listener=listens_outside_path(phone),
        ),
        "srtp_mandatory": True,  # agent.phone: PJMEDIA_SRTP_MANDATORY, not configurable
        "fraud": FraudFacts(suspended=situation.suspended),
        "keychain_backend": keychain_backend(phone),
        "last_event_hash": None,
        "certificate_not_after": cert.summary.not_after.isoformat() if cert else None,
        "checks": [
            CheckFacts(name=c.name, result=c.result, observed=c.observed, fix=c.fix)  # type: ignore[arg-type]
            for c in explain(phone.config, situation)
        ],
        "last_call": _last_call(phone.last_call),
    }


def _last_call(facts: dict[str, Any] | None) -> CallFacts | None:
    if facts is None:
        return None
    return CallFacts(**{k: v for k, v in facts.items() if k in CallFacts.model_fields})


def listens_outside_path(phone: Softphone) -> bool | None:
    """Whether any socket of ours listens on an address other than the path's."""
    local = phone.verdict.local_address
    try:
        conns = psutil.Process().net_connections(kind="inet")
    except psutil.Error:
        return None
    listening = [c for c in conns if c.status == psutil.CONN_LISTEN or not c.raddr]
    if local is None:
        return bool(listening)
    return any(c.laddr.ip != local for c in listening if c.type == socket.SOCK_STREAM)


def keychain_backend(phone: Softphone) -> str:
    return str(getattr(phone.store, "backend_name", type(phone.store).__name__))
