"""Calls as the supervisor tracks them, and the states and facts it reports about each."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent import mos, reasons
from agent.silence import MediaWatch
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
    internal: bool | None = None  # incoming: identity asserted by the company SBC


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
            # Where our packets go: the SBC's media relay when it anchors the call (its
            # address is the one signaling reached), else straight to the other phone.
            "sent_to": media.remote_rtp,
            "via_sbc": tls is not None and _host(media.remote_rtp) == _host(tls.remote),
        },
    }


def _host(address: str) -> str:
    """The host of "host:port" or "[v6]:port"."""
    return address.rpartition(":")[0].strip("[]")


def quality_facts(
    quality: CallQuality | None, codec: str | None, silent_in_share: float = 0.0
) -> dict[str, Any] | None:
    """The call's figures. Loss counts what never arrived, seen as gaps in the sequence or,
    when the stream stopped for a while (agent.silence), as that share of the call: a
    stream that ends early leaves no gap behind, and would otherwise read 0 %."""
    if quality is None:
        return None
    loss = quality.loss_percent
    if silent_in_share > 0:
        loss = max(loss or 0.0, round(min(100.0, 100.0 * silent_in_share), 2))
    return {
        "rx_packets": quality.rx_packets,
        "tx_packets": quality.tx_packets,
        "loss_percent": loss,
        "jitter_ms": quality.jitter_ms,
        "rtt_ms": quality.rtt_ms,
        "mos": None
        if loss is None
        else mos.estimate(codec, loss, quality.jitter_ms, quality.rtt_ms),
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


def caller_identity(remote_uri: str, asserted: str | None, domain: str) -> dict[str, Any]:
    """Who is calling, and whether the company SBC vouches for it.

    Internal means the SBC asserted an identity in our own domain (it authenticated the
    caller); anything else — an outside line, or a header claiming to be internal from
    elsewhere — is external, whatever display name the caller chose ("IT Helpdesk"...).
    """
    display = remote_uri.split("<", 1)[0].strip().strip('"') if "<" in remote_uri else ""
    uri = _uri_of(asserted) if asserted else ""
    internal = "@" in uri and uri.split("@", 1)[1].split(";", 1)[0].lower() == domain.lower()
    return {
        "caller": uri if internal else _uri_of(remote_uri),
        "display_name": display,
        "internal": internal,
    }


def _uri_of(value: str) -> str:
    """sip:user@host out of a name-addr ("Name" <sip:user@host;tag>) or a bare URI."""
    inner = value.split("<", 1)[1].split(">", 1)[0] if "<" in value else value.split(";", 1)[0]
    return inner.strip()


class CallBook:
    """The calls in progress and finished, turned into states as the engine reports them."""

    def __init__(
        self, emit: Callable[[dict[str, Any]], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._emit = emit
        self._clock = clock
        self.active: dict[int, CallRecord] = {}
        self.finished: list[CallRecord] = []
        self._media = MediaWatch()
        # The latest call as the posture report shows it (who was called stays here).
        self.last_call: dict[str, Any] | None = None

    def placed(self, call_id: int, uri: str) -> CallRecord:
        return self.active.setdefault(call_id, CallRecord(call_id, "outgoing", uri))

    def incoming(self, event: IncomingCall, domain: str) -> None:
        caller = caller_identity(event.remote_uri, event.asserted_identity, domain)
        record = CallRecord(event.call_id, "incoming", event.remote_uri)
        record.internal = caller["internal"]
        self.active[event.call_id] = record
        self._emit(
            {"state": "incoming", "call_id": event.call_id, "from": event.remote_uri, **caller}
        )

    def state_changed(
        self, event: CallStateChanged, path: str | None, tls: TlsFacts | None
    ) -> None:
        record = self.placed(event.call_id, event.remote_uri)
        if event.state == "early":
            self._emit({"state": "ringing", "call_id": record.call_id, "uri": record.remote})
        elif event.state == "confirmed" and record.established_at is None:
            record.established_at = self._clock()
            security = security_facts(path, tls, record.media)
            self.last_call = {
                "call_id": record.call_id,
                "path": path,
                "sent_to": (security["media"] or {}).get("sent_to"),
                "media_silent": [],
            }
            self._emit(
                {
                    "state": "call_established",
                    "call_id": record.call_id,
                    "uri": record.remote,
                    "direction": record.direction,
                    "security": security,
                }
            )

    def watch_media(
        self, quality: Callable[[int], CallQuality | None], paused: Callable[[int], bool]
    ) -> None:
        """Sample each established call's packet counters; say when one goes silent or
        comes back (agent.silence)."""
        now = self._clock()
        for record in list(self.active.values()):
            if record.established_at is None or record.media is None:
                continue
            sample = quality(record.call_id)
            if sample is None:
                continue
            counts = {"in": sample.rx_packets, "out": sample.tx_packets}
            for state in self._media.sample(record.call_id, now, counts, paused(record.call_id)):
                last = self.last_call
                if state["state"] == "media_silent" and last and last["call_id"] == record.call_id:
                    last["media_silent"] = sorted({*last["media_silent"], state["direction"]})
                self._emit({**state, "uri": record.remote})

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
                    "call_id": record.call_id,
                    "uri": record.remote,
                    "sip_code": event.code,
                    **reason.as_dict(),
                }
            )
            return
        silent_s = self._media.finish(record.call_id, self._clock())
        share = silent_s.get("in", 0.0) / event.duration_s if event.duration_s > 0 else 0.0
        codec = record.media.codec if record.media else None
        quality = quality_facts(event.quality, codec, share)
        if quality is not None:
            quality["silent_s"] = silent_s
        if self.last_call is not None and self.last_call["call_id"] == record.call_id:
            self.last_call.update(
                {
                    "ended_at": dt.datetime.now(dt.UTC).isoformat(),
                    "duration_s": event.duration_s,
                    **{
                        k: (quality or {}).get(k)
                        for k in ("loss_percent", "jitter_ms", "rtt_ms", "mos")
                    },
                }
            )
        self._emit(
            {
                "state": "call_ended",
                "call_id": record.call_id,
                "uri": record.remote,
                "sip_code": event.code,
                "duration_s": event.duration_s,
                "quality": quality,
            }
        )

    def drop_all(self, code: str, text: str) -> None:
        """The engine is gone (nothing was sent): every call ends here, with the reason."""
        for record in list(self.active.values()):
            del self.active[record.call_id]
            self._media.finish(record.call_id, self._clock())
            record.ended = True
            self.finished.append(record)
            self._emit(
                {
                    "state": "call_ended" if record.established_at else "call_failed",
                    "call_id": record.call_id,
                    "uri": record.remote,
                    "code": code,
                    "reason": text,
                }
            )
