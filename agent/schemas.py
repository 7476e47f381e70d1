"""What the agent and the portal exchange: the one module both import (DESIGN.md).

Plain pydantic models and the canonical bytes that signatures cover; no crypto, no I/O, so
the portal never loads pjsua2, Qt or the keychain. A value the agent could not observe is
None ("unknown"), never a guess.

Device requests are signed (agent.report): the signature covers
`METHOD \\n PATH \\n TIME \\n NONCE \\n SHA-256(body)` (`signed_request_bytes`), sent in the
headers below; the portal checks it against the enrolled device's certificate, rejects a time
more than `MAX_SKEW_S` away and a nonce it has seen (replays). Policies and commands come
back signed by the portal's policy key, which the agent received at enrollment.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_SKEW_S = 300
H_DEVICE, H_TIME, H_NONCE, H_SIGNATURE = (
    "X-Guardphone-Device",
    "X-Guardphone-Time",
    "X-Guardphone-Nonce",
    "X-Guardphone-Signature",
)


def canonical(document: Any) -> bytes:
    """The bytes a signature over a JSON document covers."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def signed_request_bytes(method: str, path: str, time: str, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((method.upper(), path, time, nonce, digest)).encode()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OsFacts(_Model):
    name: str | None = None
    version: str | None = None
    kernel: str | None = None
    pending_security_updates: int | None = None


class DiskFacts(_Model):
    root_encrypted: bool | None = None
    home_encrypted: bool | None = None


class PathFacts(_Model):
    in_use: Literal["wireguard", "sbc_mtls"] | None = None
    handshake_age_s: float | None = None
    tls_version: str | None = None
    tls_cipher: str | None = None
    pin_match: bool | None = None


class SipFacts(_Model):
    registered: bool = False
    reason_code: str | None = None
    reason: str | None = None
    transports: list[str] = Field(default_factory=list)
    plaintext_listener: bool | None = None  # any SIP listener on a non-tunnel address


class CheckFacts(_Model):
    """One check of the gate, as the "why can't I call?" view shows it (agent.why)."""

    name: str
    result: Literal["pass", "fail", "unknown"]
    observed: str
    fix: str = ""


class FraudFacts(_Model):
    suspended: str | None = None
    dials_last_hour: int | None = None
    blocked_last_10_min: int | None = None


class CallFacts(_Model):
    """How the latest call went (whom it was with stays on the laptop)."""

    path: Literal["wireguard", "sbc_mtls"] | None = None
    sent_to: str | None = None  # where the media went: the SBC's relay, or the other phone
    ended_at: str | None = None  # None: still in progress
    duration_s: float | None = None
    loss_percent: float | None = None
    jitter_ms: float | None = None
    rtt_ms: float | None = None
    mos: float | None = None  # agent.mos: the E-model's estimate, 1.0-4.5
    media_silent: list[Literal["in", "out"]] = Field(default_factory=list)  # at any time


class PostureReport(_Model):
    device_id: str
    account: str
    time: str  # ISO 8601, UTC
    agent_version: str
    pjsip_version: str | None = None
    openssl_version: str | None = None
    os: OsFacts = OsFacts()
    disk: DiskFacts = DiskFacts()
    firewall_active: bool | None = None
    screen_lock: bool | None = None
    path: PathFacts = PathFacts()
    sip: SipFacts = SipFacts()
    srtp_mandatory: bool | None = None
    fraud: FraudFacts = FraudFacts()
    keychain_backend: str | None = None
    last_event_hash: str | None = None
    certificate_not_after: str | None = None
    checks: list[CheckFacts] = Field(default_factory=list)
    last_call: CallFacts | None = None


class EventRecord(_Model):
    seq: int
    time: str
    type: str
    severity: str
    fields: dict[str, Any]
    prev_hash: str
    hash: str


class EventBatch(_Model):
    device_id: str
    events: list[EventRecord]


class Policy(_Model):
    """What the organisation decides centrally; signed by the portal's policy key."""

    version: int = Field(ge=1)  # only ever grows: an older policy than the one in force is refused
    issued_at: str
    min_agent_version: str = "0.0.0"
    below_min_version: Literal["refuse", "warn"] = "warn"
    report_interval_s: int = Field(default=900, ge=60, le=86400)


class SignedPolicy(_Model):
    policy: Policy
    signature: str  # base64 ECDSA-SHA256 by the portal's policy key over canonical(policy)


class Command(_Model):
    id: int
    device_id: str
    kind: Literal["suspend", "resume", "reenroll", "report_now"]
    issued_at: str
    reason: str = ""


class SignedCommand(_Model):
    command: Command
    signature: str


class EnrollAnswer(_Model):
    certificate_chain: str
    device_id: str
    sip: dict[str, str] | None = None
    policy_key: str | None = None  # PEM public key that signs policies and commands
