"""Known signals into a call and what came out the other end, judged as a listener would:
was the tone that one side played heard on the other, clearly above everything else?

Pure Python (the wave module and a Goertzel filter): a few seconds of 16 kHz audio is ~50,000
samples, which takes milliseconds.
"""

from __future__ import annotations

import math
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

RATE = 16000  # pjsua2's conference bridge clock: what its recorder writes
# One tone per direction, apart from each other and from speex's 16 kHz band edges.
TONES = {"caller": 700.0, "callee": 1300.0}


def write_tone(path: Path, hz: float, seconds: float = 2.0, rate: int = RATE) -> Path:
    """A 16-bit mono sine at half full scale (pjsua2's player loops it)."""
    frames = bytearray()
    for i in range(int(seconds * rate)):
        frames += struct.pack("<h", int(16000 * math.sin(2 * math.pi * hz * i / rate)))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(bytes(frames))
    return path


def samples(path: Path) -> tuple[list[int], int]:
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2 and wav.getnchannels() == 1, path
        raw = wav.readframes(wav.getnframes())
        return list(struct.unpack(f"<{len(raw) // 2}h", raw)), wav.getframerate()


def _power(block: list[int], hz: float, rate: int) -> float:
    """Goertzel: the power of one frequency in a block, normalised to the block's length."""
    coeff = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for x in block:
        s1, s2 = x + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / len(block) ** 2


@dataclass(frozen=True)
class Heard:
    """What a recording holds: for how many of its 100 ms blocks was `hz` clearly there."""

    seconds: float  # the whole recording
    blocks: int  # judged
    with_tone: int  # blocks where the tone is loud
    level_db: float  # the tone's median level, dB relative to full scale

    @property
    def share(self) -> float:
        return self.with_tone / self.blocks if self.blocks else 0.0


def heard(path: Path, hz: float, after_s: float = 0.0, until_s: float | None = None) -> Heard:
    """Judge a recording for `hz` from `after_s` on (until `until_s`, or its end): a block
    counts when the tone is within 30 dB of full scale (silence, noise, or the listener's
    own tone sent back instead are 50 dB and more below)."""
    everything, rate = samples(path)
    end = len(everything) if until_s is None else int(until_s * rate)
    data = everything[int(after_s * rate) : end]
    size = rate // 10
    blocks = [data[i : i + size] for i in range(0, len(data) - size + 1, size)]
    full_scale = (32768 / 2) ** 2  # power of a full-scale sine under _power's normalisation
    levels, count = [], 0
    for block in blocks:
        level = 10 * math.log10(max(_power(block, hz, rate), 1e-12) / full_scale)
        levels.append(level)
        if level > -30:
            count += 1
    levels.sort()
    median = levels[len(levels) // 2] if levels else -120.0
    return Heard(len(everything) / rate, len(blocks), count, round(median, 1))
