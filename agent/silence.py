"""Silence during a call: the stream's packet counters stop moving, and the user is told.

A call can be "established" with SRTP on both sides and carry nothing (a NAT that drops
the media, a relay that lost the call, keys that do not match: SRTP drops what it cannot
decrypt before the stream counts it). People notice after a few seconds of "hello?"; the
agent notices after SILENT_AFTER_S, says so in words, and says when audio is back.

Both directions are watched from the counters this laptop has: "in" when nothing arrives
(the other side cannot be heard), "out" when this laptop stops sending. What the other
side receives is watched by the other side's agent (its own "in"): with the SBC anchoring
media, the far agent's "in" is exactly "nothing of yours reached the company SBC".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SILENT_AFTER_S = 2.0

MESSAGES = {
    "in": "You can't hear them: no audio has arrived for {s:.0f} s.",
    "out": "They may not hear you: this laptop has sent no audio for {s:.0f} s.",
}


@dataclass
class _Flow:
    count: int
    moved_at: float
    silent: bool = False
    silent_s: float = 0.0  # total, over the call


@dataclass
class _Call:
    flows: dict[str, _Flow] = field(default_factory=dict)


class MediaWatch:
    """Per call, per direction: when did the packet count last move."""

    def __init__(self, silent_after_s: float = SILENT_AFTER_S) -> None:
        self.silent_after_s = silent_after_s
        self._calls: dict[int, _Call] = {}

    def sample(
        self, call_id: int, now: float, counts: dict[str, int], paused: bool
    ) -> list[dict[str, Any]]:
        """States to report for one sample of the counters ({"in": rx, "out": tx}).

        While the call is paused (on hold) no media is expected: the watch starts afresh
        when it resumes, so the wait after a resume is a full SILENT_AFTER_S again.
        """
        call = self._calls.setdefault(call_id, _Call())
        states: list[dict[str, Any]] = []
        for direction, count in counts.items():
            flow = call.flows.get(direction)
            if flow is None or paused:
                kept = flow.silent_s if flow else 0.0
                if flow is not None and flow.silent:
                    states.append(self._restored(call_id, direction, flow, now))
                call.flows[direction] = _Flow(count, now, silent_s=kept)
                continue
            if count != flow.count:
                if flow.silent:
                    states.append(self._restored(call_id, direction, flow, now))
                flow.count, flow.moved_at, flow.silent = count, now, False
            elif not flow.silent and now - flow.moved_at >= self.silent_after_s:
                flow.silent = True
                quiet = now - flow.moved_at
                states.append(
                    {
                        "state": "media_silent",
                        "call_id": call_id,
                        "direction": direction,
                        "silent_s": round(quiet, 1),
                        "reason": MESSAGES[direction].format(s=quiet),
                    }
                )
        return states

    def _restored(self, call_id: int, direction: str, flow: _Flow, now: float) -> dict[str, Any]:
        quiet = now - flow.moved_at
        flow.silent_s += quiet
        flow.silent = False
        return {
            "state": "media_restored",
            "call_id": call_id,
            "direction": direction,
            "silent_s": round(quiet, 1),
        }

    def silent_now(self, call_id: int) -> list[str]:
        call = self._calls.get(call_id)
        return [d for d, f in call.flows.items() if f.silent] if call else []

    def finish(self, call_id: int, now: float) -> dict[str, float]:
        """Seconds without media, per direction, over the whole call (forgets the call)."""
        call = self._calls.pop(call_id, None)
        if call is None:
            return {}
        return {
            d: round(f.silent_s + (now - f.moved_at if f.silent else 0.0), 1)
            for d, f in call.flows.items()
        }
