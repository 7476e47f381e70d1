"""What encryption costs a call: CPU of a call with SRTP against the same call with plain
RTP, same lab, same run.

The agent itself cannot place a plain-RTP call (mandatory SRTP is one of its invariants),
so both calls are made by the pjsua2 engine under it with the agent's media settings
(lab/bare_peer.py: G.711 through the null device both ways, no media thread, TLS to the
SBC), SRTP mandatory (AES_CM_128_HMAC_SHA1_80 or stronger, as the agent negotiates) vs.
disabled. CPU is summed over caller and callee for the whole window. The calls come in
pairs, one each way, the order swapped from pair to pair (RTP SRTP, SRTP RTP, …), and the
figure is the median of the pairs' ratios: on this VM the same call's CPU moves by a third
from minute to minute (1.28-1.86 s/min), far more than encryption could cost, and a pair's
two calls share most of that drift.

Run with `make bench` or `python -m bench.srtp_cost --seconds 60`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

import psutil

from bench import labrun, results_file
from bench.table import Row, render

BARE = [sys.executable, "-m", "lab.bare_peer"]


def _wait_event(proc: subprocess.Popen[str], wanted: str, timeout: float = 30) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for raw in proc.stdout:
        if raw.startswith("{") and (event := json.loads(raw)).get("event") == wanted:
            return dict(event)
        if time.monotonic() > deadline:
            break
    raise RuntimeError(f"bare peer: no {wanted!r}")


def call_cpu(caller: str, callee: str, srtp: str, seconds: float) -> float:
    """CPU seconds (caller + callee) per minute of one connected call."""
    answer = subprocess.Popen(
        [*BARE, callee, "answer", str(seconds + 30), "--srtp", srtp],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_event(answer, "ready")
        call = subprocess.Popen(
            [
                *BARE,
                caller,
                "call",
                "sip:bob@lab.guardphone.test",
                "--srtp",
                srtp,
                "--hold",
                str(seconds + 2),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_event(call, "confirmed")
            time.sleep(1.0)  # media up, first RTCP out
            procs = [psutil.Process(call.pid), psutil.Process(answer.pid)]
            before = sum(sum(p.cpu_times()[:2]) for p in procs)
            time.sleep(seconds)
            used = sum(sum(p.cpu_times()[:2]) for p in procs) - before
            media = _wait_event(call, "media", timeout=seconds + 10)
            # Media really flowed both ways (G.711: 50 packets a second each way).
            if min(media["rx"], media["tx"]) < 40 * seconds:
                raise RuntimeError(f"{srtp}: too little media for the window: {media}")
        finally:
            call.terminate()
            call.wait(10)
    finally:
        answer.terminate()
        answer.wait(10)
    return used * 60 / seconds


def measure(seconds: float, rounds: int) -> dict[str, Any]:
    state, store = labrun.start("srtp")
    cfg = {u.name: u.config for u in state.users}
    rtp, srtp = [], []
    try:
        for pair in range(rounds):
            for mode in ("disabled", "mandatory")[:: 1 if pair % 2 == 0 else -1]:
                cpu = call_cpu(cfg["carol"], cfg["bob"], mode, seconds)
                (srtp if mode == "mandatory" else rtp).append(cpu)
    finally:
        labrun.stop(state, store)
    return {
        "seconds_per_call": seconds,
        "rounds": rounds,
        "rtp_cpu_s_per_min": rtp,
        "srtp_cpu_s_per_min": srtp,
    }


def rows(figures: dict[str, Any]) -> list[Row]:
    rtp, srtp = figures["rtp_cpu_s_per_min"], figures["srtp_cpu_s_per_min"]
    ratio = statistics.median(s / r for s, r in zip(srtp, rtp, strict=True))
    calls = f"{figures['rounds']} pairs x {figures['seconds_per_call']:.0f} s"
    return [
        Row(f"call CPU, SRTP / plain RTP, median of {calls} (ratio)", ratio,
            "same call, plain RTP", 1.0, "<= 1.05x peer", ratio <= 1.05),
        Row("call CPU s/min, caller+callee, SRTP (median)", statistics.median(srtp),
            "same call, plain RTP", statistics.median(rtp)),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each call")
    parser.add_argument("--rounds", type=int, default=5, help="pairs of calls, one each way")
    args = parser.parse_args()
    figures = measure(args.seconds, args.rounds)
    print(render(rows(figures)))
    results_file.write("srtp_cost", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
