"""Calls as the supervisor tracks them, and the states and facts it reports about each."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent import reasons
from agent.sip import (
    CallEnded,
    CallMediaActive,
    CallQuality,
    CallStateChanged,
    IncomingCall,
    MediaFacts,
    TlsFacts,
)

log = logging.getLogger(__name__)


@dataclass
class CallRecord:
    call_id: int
    direction: str
    remote: str
    established_at: float | None = None
    media: MediaFacts | None = None
    ended: bool = False


def security_facts(
    path: str | None, tls: TlsFacts | None, media: MediaFacts | None
) -> dict[str, Any]:
    """What protected a call, as observed on the live connection and stream."""
    return {
        "path": path,
        "signaling": signaling_facts(tls),
        "media": None
        if media is None
        else {
            "srtp": media.srtp,
            "transport": media.transport,
            "crypto_suite": media.crypto_suite,
            "keying": media.keying,
            # SDES keys travel in the SDP, which the SBC terminating TLS can read.
            "end_to_end": media.keying == "DTLS",
            "scope": "end to end" if media.keying == "DTLS" else "hop by hop to the company SBC",
            "codec": media.codec,
        },
    }


def quality_facts(quality: CallQuality | None) -> dict[str, Any] | None:
    if quality is None:
        return None
    return {
        "rx_packets": quality.rx_packets,
        "tx_packets": quality.tx_packets,
        "loss_percent": quality.loss_percent,
        "jitter_ms": quality.jitter_ms,
        "rtt_ms": quality.rtt_ms,
    }


def signaling_facts(tls: TlsFacts | None) -> dict[str, Any] | None:
    if tls is None:
        return None
    return {
        "transport": "TLS",
        "tls_version": tls.version,
        "cipher": tls.cipher,
        "server_verified": tls.verified,
        "server_cn": tls.server_cn,
    }


class CallBook:
    """The calls in progress and finished, turned into states as the engine reports them."""

    def __init__(
        self, emit: Callable[[dict[str, Any]], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._emit = emit
        self._clock = clock
        self.active: dict[int, CallRecord] = {}
        self.finished: list[CallRecord] = []

    def placed(self, call_id: int, uri: str) -> CallRecord:
        return self.active.setdefault(call_id, CallRecord(call_id, "outgoing", uri))

    def incoming(self, event: IncomingCall) -> None:
        self.active[event.call_id] = CallRecord(event.call_id, "incoming", event.remote_uri)
        self._emit({"state": "incoming", "from": event.remote_uri})

    def state_changed(
        self, event: CallStateChanged, path: str | None, tls: TlsFacts | None
    ) -> None:
        record = self.placed(event.call_id, event.remote_uri)
        if event.state == "early":
            self._emit({"state": "ringing", "uri": record.remote})
        elif event.state == "confirmed" and record.established_at is None:
            record.established_at = self._clock()
            self._emit(
                {
                    "state": "call_established",
                    "uri": record.remote,
                    "direction": record.direction,
                    "security": security_facts(path, tls, record.media),
                }
            )

    def media_active(self, event: CallMediaActive) -> bool:
        """Record what protects the media; False if it is not encrypted (hang up at once)."""
        if event.call_id in self.active:
            self.active[event.call_id].media = event.media
        if not event.media.srtp:
            # pjsua2 already refuses RTP-only offers (488); this is the second lock.
            log.error("call %d has unencrypted media", event.call_id)
        return event.media.srtp

    def ended(self, event: CallEnded) -> None:
        record = self.active.pop(event.call_id, None) or CallRecord(event.call_id, "outgoing", "")
        record.ended = True
        self.finished.append(record)
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
        self._emit(
            {
                "state": "call_ended",
                "uri": record.remote,
                "sip_code": event.code,
                "duration_s": event.duration_s,
                "quality": quality_facts(event.quality),
            }
        )

    def drop_all(self, code: str, text: str) -> None:
        """The engine is gone (nothing was sent): every call ends here, with the reason."""
        for record in list(self.active.values()):
            del self.active[record.call_id]
            record.ended = True
            self.finished.append(record)
            self._emit(
                {
                    "state": "call_ended" if record.established_at else "call_failed",
                    "uri": record.remote,
                    "code": code,
                    "reason": text,
                }
            )
