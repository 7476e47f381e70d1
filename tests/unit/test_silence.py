"""Silence in an established call is noticed, said in words, and cleared when audio is back."""

from __future__ import annotations

from typing import Any

from agent.calls import CallBook
from agent.silence import MediaWatch
from agent.sip import CallEnded, CallMediaActive, CallQuality, CallStateChanged, MediaFacts

SRTP = MediaFacts(True, "RTP/SAVP", "AES_CM_128_HMAC_SHA1_80", "SDES", "PCMA", "l", "r")


def test_nothing_arriving_for_two_seconds_is_silence_in_and_its_return_is_said() -> None:
    watch = MediaWatch()
    flowing = {"in": 0, "out": 0}
    states: list[dict[str, Any]] = []
    for tenth in range(60):  # 6 s, sampled every 0.1 s
        now = tenth / 10
        if now < 1.0 or now >= 4.0:
            flowing["in"] += 5  # audio from them, except between 1 s and 4 s
        flowing["out"] += 5
        states += watch.sample(7, now, dict(flowing), paused=False)
    assert [(s["state"], s["direction"]) for s in states] == [
        ("media_silent", "in"),
        ("media_restored", "in"),
    ]
    silent, restored = states
    assert silent["reason"].startswith("You can't hear them")
    assert 2.0 <= silent["silent_s"] < 2.2  # said within one sample of the 2 s
    assert restored["silent_s"] == 3.1  # from the last packet seen (0.9 s) to the next
    assert watch.finish(7, 6.0) == {"in": 3.1, "out": 0.0}


def test_sending_nothing_is_silence_out_and_hold_is_not_silence() -> None:
    watch = MediaWatch()
    states: list[dict[str, Any]] = []
    for tenth in range(70):
        now = tenth / 10
        held = 1.0 <= now < 4.0  # on hold: neither side sends, and nothing is said
        states += watch.sample(1, now, {"in": 0 if held else tenth, "out": 0}, paused=held)
    # After the hold the watch starts afresh: silence out is said 2 s after the resume.
    assert [(s["state"], s["direction"]) for s in states] == [("media_silent", "out")]
    assert states[0]["reason"].startswith("They may not hear you")
    # A silence still going on when the call ends counts up to the end.
    assert watch.finish(1, 7.0)["out"] == 3.1  # counted from the last sample on hold
    assert watch.finish(1, 7.0) == {}


def test_loss_is_never_zero_when_nothing_arrived() -> None:
    assert CallQuality(0, 300, 0, None, None).loss_percent == 100.0
    assert CallQuality(0, 0, 0, None, None).loss_percent is None
    assert CallQuality(97, 100, 3, 1.0, 2.0).loss_percent == 3.0


def test_call_book_reports_silence_and_the_call_ended_carries_it_with_a_mos() -> None:
    states: list[dict[str, Any]] = []
    now = [0.0]
    book = CallBook(states.append, clock=lambda: now[0])
    book.placed(0, "sip:bob@lab.test")
    book.media_active(CallMediaActive(0, SRTP))
    book.state_changed(
        CallStateChanged(0, "confirmed", 200, "OK", "sip:bob@lab.test"), "sbc_mtls", None
    )
    counters = {0: CallQuality(0, 0, 0, None, None)}
    for step in range(31):  # 3 s of a call in which only we send
        now[0] = step / 10
        counters[0] = CallQuality(0, step * 5, 0, None, None)
        book.watch_media(counters.get, lambda _: False)
    silent = [s for s in states if s["state"] == "media_silent"]
    assert len(silent) == 1 and silent[0]["direction"] == "in"
    assert silent[0]["uri"] == "sip:bob@lab.test"
    book.ended(CallEnded(0, 200, "OK", 3.0, counters[0]))
    quality = states[-1]["quality"]
    assert quality["loss_percent"] == 100.0 and quality["mos"] == 1.0
    assert quality["silent_s"]["in"] == 3.0
    assert book.last_call is not None
    assert book.last_call["media_silent"] == ["in"] and book.last_call["mos"] == 1.0


def test_a_stream_that_stopped_early_is_loss_not_zero() -> None:
    """Packets 1..150 arrive, then nothing for the last 6 s of a 9 s call: no gap in the
    sequence, yet two thirds of the call was not heard."""
    states: list[dict[str, Any]] = []
    now = [0.0]
    book = CallBook(states.append, clock=lambda: now[0])
    book.placed(0, "sip:bob@lab.test")
    book.media_active(CallMediaActive(0, SRTP))
    book.state_changed(CallStateChanged(0, "confirmed", 200, "OK", "sip:bob@lab.test"), None, None)
    for step in range(91):
        now[0] = step / 10
        rx = min(step, 30) * 5  # the stream stops at 3 s
        book.watch_media({0: CallQuality(rx, step * 5, 0, 1.0, 2.0)}.get, lambda _: False)
    book.ended(CallEnded(0, 200, "OK", 9.0, CallQuality(150, 450, 0, 1.0, 2.0)))
    quality = states[-1]["quality"]
    assert quality["loss_percent"] == 66.67
    assert quality["mos"] < 2.0
