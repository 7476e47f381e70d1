"""Calls as the supervisor tracks them, and the facts it reports about each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.sip import CallQuality, MediaFacts, TlsFacts


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
