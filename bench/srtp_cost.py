"""What encryption costs a call: CPU of a call with SRTP against the same call with plain
RTP, same lab, same run.

The agent itself cannot place a plain-RTP call (mandatory SRTP is one of its invariants),
so both calls are made by the pjsua2 engine under it with the agent's media settings
(lab/bare_peer.py: G.711 through the null device both ways, no media thread, TLS to the
SBC), SRTP mandatory (AES_CM_128_HMAC_SHA1_80 or stronger, as the agent negotiates) vs.
disabled. CPU is summed over caller and callee for the whole window. The calls alternate
(RTP, SRTP, RTP, …) so machine noise hits both alike.

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
        for _ in range(rounds):
            rtp.append(call_cpu(cfg["carol"], cfg["bob"], "disabled", seconds))
            srtp.append(call_cpu(cfg["carol"], cfg["bob"], "mandatory", seconds))
    finally:
        labrun.stop(state, store)
    return {
        "seconds_per_call": seconds,
        "rounds": rounds,
        "rtp_cpu_s_per_min": rtp,
        "srtp_cpu_s_per_min": srtp,
    }


def rows(figures: dict[str, Any]) -> list[Row]:
    # Medians over interleaved rounds: one 60 s call each way moved the ratio between 1.02
    # and 1.07 from run to run, which is the whole question.
    rtp = statistics.median(figures["rtp_cpu_s_per_min"])
    srtp = statistics.median(figures["srtp_cpu_s_per_min"])
    calls = f"median of {figures['rounds']} x {figures['seconds_per_call']:.0f} s"
    return [
        Row(f"call CPU s/min, SRTP, caller+callee ({calls})", srtp, "same call, plain RTP", rtp,
            "<= 1.05x peer", srtp <= 1.05 * rtp),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each call")
    parser.add_argument("--rounds", type=int, default=1, help="calls each way")
    args = parser.parse_args()
    figures = measure(args.seconds, args.rounds)
    print(render(rows(figures)))
    results_file.write("srtp_cost", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
