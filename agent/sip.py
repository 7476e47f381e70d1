"""What the SIP engine reports, and the interface the rest of the agent drives it through.

Plain data only, so the supervisor and the CLI can be tested without PJSIP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class EngineSettings:
    """Everything pjsua2 needs that is not secret."""

    user: str
    domain: str
    display_name: str
    sbc_host: str
    sbc_port: int
    bind_address: str
    qos: bool
    null_audio: bool
    bind_ifindex: int | None = None  # the path's interface; sockets may use no other
    input_device: str | None = None  # by name; None: the system default
    output_device: str | None = None
    # RFC 5626 instance: the same for this account on this machine across restarts and
    # path changes, so the SBC replaces the binding instead of adding one each time.
    instance_id: str = ""

    @property
    def id_uri(self) -> str:
        uri = f"sip:{self.user}@{self.domain}"
        return f'"{self.display_name}" <{uri}>' if self.display_name else uri

    @property
    def registrar_uri(self) -> str:
        return f"sip:{self.domain};transport=tls"

    @property
    def proxy_uri(self) -> str:
        host = f"[{self.sbc_host}]" if ":" in self.sbc_host else self.sbc_host
        return f"sip:{host}:{self.sbc_port};transport=tls;lr"


@dataclass(frozen=True)
class AudioCheck:
    """An audio check instead of the sound devices: what the other side hears is `play` (a
    WAV file, looped), and what it sends is written to `record` (a WAV file)."""

    play: Path | None = None
    record: Path | None = None


@dataclass(frozen=True, repr=False)
class TlsMaterial:
    """Secrets and trust anchors, in memory only; handed to pjsua2 as buffers."""

    cert_pem: str
    key_pem: str
    ca_pem: str
    sip_password: str

    def __repr__(self) -> str:
        return "TlsMaterial(<redacted>)"


@dataclass(frozen=True)
class TlsFacts:
    version: str
    cipher: str
    verified: bool
    verify_status: int  # pj_ssl_cert_verify_flag_t bits, 0 when verified
    verify_messages: tuple[str, ...]
    server_cn: str
    local: str
    remote: str


@dataclass(frozen=True)
class MediaFacts:
    """What protects a call's media, read from the live stream."""

    srtp: bool
    transport: str  # "RTP/SAVP" for SDES-SRTP, "UDP/TLS/RTP/SAVP" for DTLS-SRTP
    crypto_suite: str | None
    keying: str | None  # "SDES" (hop by hop) or "DTLS" (end to end)
    codec: str
    local_rtp: str
    remote_rtp: str


@dataclass(frozen=True)
class CallQuality:
    rx_packets: int
    tx_packets: int
    rx_lost: int
    jitter_ms: float | None
    rtt_ms: float | None

    @property
    def loss_percent(self) -> float | None:
        """Of what the other side sent, the share that never arrived; 100 when nothing
        arrived while we sent (the other side cannot report what we never saw), None when
        neither side sent anything (nothing to judge)."""
        if self.rx_packets == 0:
            return 100.0 if self.tx_packets else None
        return round(100.0 * self.rx_lost / (self.rx_packets + self.rx_lost), 2)


@dataclass(frozen=True)
class AudioDevice:
    name: str
    inputs: int
    outputs: int


@dataclass(frozen=True)
class TransportChanged:
    connected: bool
    tls: TlsFacts | None
    error: int  # pj_status_t of the last error, 0 if none
    error_text: str


@dataclass(frozen=True)
class RegistrationChanged:
    registered: bool
    code: int
    reason: str
    status: int  # pj_status_t
    expires: int


@dataclass(frozen=True)
class IncomingCall:
    call_id: int
    remote_uri: str
    asserted_identity: str | None = None  # P-Asserted-Identity the SBC added, if any


@dataclass(frozen=True)
class UnsolicitedRequest:
    """A request that did not come from the SBC; the engine already refused it (403)."""

    source: str
    method: str
    from_uri: str


@dataclass(frozen=True)
class CallStateChanged:
    call_id: int
    state: str  # calling, incoming, early, connecting, confirmed, disconnected
    code: int
    reason: str
    remote_uri: str


@dataclass(frozen=True)
class CallMediaActive:
    call_id: int
    media: MediaFacts


@dataclass(frozen=True)
class CallEnded:
    call_id: int
    code: int
    reason: str
    duration_s: float
    quality: CallQuality | None = field(default=None)


SipEvent = (
    TransportChanged
    | RegistrationChanged
    | IncomingCall
    | UnsolicitedRequest
    | CallStateChanged
    | CallMediaActive
    | CallEnded
)


class SipEngine(Protocol):
    """The softphone, driven from one thread (the one that calls `start`)."""

    def start(self, settings: EngineSettings, material: TlsMaterial) -> None: ...
    def register(self) -> None: ...
    def unregister(self) -> None: ...
    def reconnect(self) -> None: ...
    def call(self, uri: str) -> int: ...
    def answer(self, call_id: int) -> None: ...
    def hangup(self, call_id: int) -> None: ...
    def set_mute(self, call_id: int, muted: bool) -> None: ...
    def microphone_live(self, call_id: int) -> bool: ...
    def set_hold(self, call_id: int, held: bool) -> bool: ...
    def on_hold(self, call_id: int) -> bool: ...
    def send_dtmf(self, call_id: int, digits: str) -> bool: ...
    def poll(self, timeout_s: float) -> list[SipEvent]: ...
    def quality(self, call_id: int) -> CallQuality | None: ...
    def versions(self) -> dict[str, str]: ...
    def audio_devices(self) -> list[AudioDevice]: ...
    def shutdown(self, send: bool = True) -> None: ...
