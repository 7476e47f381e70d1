"""How a call sounded, as a mean opinion score estimated from what the stream measured.

ITU-T G.107's E-model with its default values for everything a softphone cannot observe
(room noise, sidetone, echo loss: they sum to R = 93.2 for a perfect narrowband call), and
the three things it can: packet loss (through the codec's equipment impairment Ie and its
loss robustness Bpl, from G.113 Appendix I where it lists the codec), one-way delay (half
the RTCP round trip, plus the jitter buffer and the packet time), and the loss burstiness
taken as random (BurstR = 1). The score is an estimate for the helpdesk ("the call was
poor, and the network is why"), not a listening test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

R_DEFAULT = 93.2  # Ro - Is with G.107's default parameters
PACKET_MS = 20.0  # pjsua's ptime for every codec the agent offers


@dataclass(frozen=True)
class Impairment:
    ie: float  # equipment impairment at zero loss
    bpl: float  # packet-loss robustness (higher: copes better)


# G.113 Appendix I values (G.711 with packet-loss concealment); codecs it does not list
# are placed beside their nearest listed peer, and said so.
CODECS: dict[str, Impairment] = {
    "pcmu": Impairment(0.0, 25.1),
    "pcma": Impairment(0.0, 25.1),
    "g722": Impairment(0.0, 25.1),  # wideband scored on the narrowband scale: conservative
    "speex": Impairment(11.0, 12.0),  # not in G.113: iLBC's neighbourhood at 15 kbit/s
    "opus": Impairment(5.0, 20.0),  # not in G.113: better than iLBC, below G.711
}
UNKNOWN_CODEC = Impairment(11.0, 10.0)


def delay_impairment(one_way_ms: float) -> float:
    """Idd of G.107 (7-27): nothing below 100 ms, then growing with the delay's log."""
    if one_way_ms <= 100.0:
        return 0.0
    x: float = math.log2(one_way_ms / 100.0)
    return float(25.0 * ((1 + x**6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2))


def loss_impairment(codec: Impairment, loss_percent: float) -> float:
    """Ie,eff of G.107 (7-29) with random loss."""
    loss = max(0.0, min(100.0, loss_percent))
    return codec.ie + (95.0 - codec.ie) * loss / (loss + codec.bpl)


def r_to_mos(r: float) -> float:
    """G.107 Annex B."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6


def estimate(
    codec: str | None, loss_percent: float, jitter_ms: float | None, rtt_ms: float | None
) -> float:
    """MOS (1.0-4.5, two decimals) of a call. An unknown round trip counts as none: the
    score then only reflects loss, jitter and the packet time."""
    if loss_percent >= 100.0:
        return 1.0  # nothing was heard: the floor, whatever the formula's tail says
    impairment = CODECS.get((codec or "").split("/")[0].lower(), UNKNOWN_CODEC)
    # pjmedia's adaptive jitter buffer holds about two jitters' worth of audio.
    one_way = (rtt_ms or 0.0) / 2 + 2 * (jitter_ms or 0.0) + PACKET_MS
    r = R_DEFAULT - delay_impairment(one_way) - loss_impairment(impairment, loss_percent)
    return round(r_to_mos(r), 2)
