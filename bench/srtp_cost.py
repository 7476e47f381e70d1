"""What encryption costs a call: CPU of a call with SRTP against the same call with plain
RTP, same lab, same run.

The agent itself cannot place a plain-RTP call (mandatory SRTP is one of its invariants),
so both calls are made by the pjsua2 engine under it with the agent's media settings
(lab/bare_peer.py: audio both ways through the null device, no media thread, TLS to the
SBC), SRTP mandatory (AES_CM_128_HMAC_SHA1_80 or stronger, as the agent negotiates) vs.
disabled. CPU is summed over caller and callee for the whole window.

Two readings of the same calls, for each codec:
- Directly: the calls come in pairs, one each way, the order swapped from pair to pair
  (RTP SRTP, SRTP RTP, ...), and the figure is the median of the pairs' ratios. The same
  call's CPU moves by a quarter to a third from one call to the next (in one run speex
  2.05-2.51 and G.722 1.10-1.60 s/min; with speex much of it in the encoder, whose codebook
  search took 322 samples in one 30 s call of the null device's silence and 174 in the
  next), so this reading cannot tell 1.00 from 1.10.
- From a profile of the same calls (perf, the kernel's cpu-clock sampling both processes;
  this VM has no hardware counters): the share of the SRTP call's CPU samples spent in
  libsrtp (every function of it is named srtp_*, pjmedia's SRTP callbacks too) is what
  plain RTP saves, so SRTP / RTP = 1 / (1 - share). A share inside one call does not move
  with the codec's or the machine's drift. The plain call's samples in the same functions
  (next to none) are not subtracted; what the SRTP adapter spends outside libsrtp is not
  counted (its send and receive wrappers are named like every transport's and cannot be
  told apart by name), a few copies and a lock per packet beside libsrtp's cipher and MAC.
The codec sets the ratio (encryption costs the same per packet whatever the codec spends),
so the same pairs are made with pjsua2's order as the agent has it (speex/16000 first) and
with G.722 only, the wideband codec enterprise PBXs offer, which is cheaper to run.

Run with `make bench` or `python -m bench.srtp_cost --seconds 60` (root: perf).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench import labrun, results_file
from bench.table import Row, render

BARE = [sys.executable, "-m", "lab.bare_peer"]
PERF = "perf"  # Debian's linux-perf
SAMPLE_HZ = 1999  # ~60 samples a second of a call that uses 3% of a core


def _wait_event(proc: subprocess.Popen[str], wanted: str, timeout: float = 30) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for raw in proc.stdout:
        if raw.startswith("{") and (event := json.loads(raw)).get("event") == wanted:
            return dict(event)
        if time.monotonic() > deadline:
            break
    raise RuntimeError(f"bare peer: no {wanted!r}")


def call_cpu(
    caller: str, callee: str, srtp: str, seconds: float, codec: str | None = None
) -> dict[str, Any]:
    """One connected call, profiled: CPU seconds (caller + callee) per minute, the CPU
    samples of both processes and how many of them were in libsrtp, the codec used."""
    extra = ["--codec", codec] if codec else []
    answer = subprocess.Popen(
        [*BARE, callee, "answer", str(seconds + 30), "--srtp", srtp, *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_event(answer, "ready")
        call = subprocess.Popen(
            [*BARE, caller, "call", "sip:bob@lab.guardphone.test", "--srtp", srtp, *extra,
             "--hold", str(seconds + 3)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            _wait_event(call, "confirmed")
            time.sleep(1.0)  # media up, first RTCP out
            procs = [psutil.Process(call.pid), psutil.Process(answer.pid)]
            with tempfile.TemporaryDirectory(prefix="guardphone-srtp-") as tmp:
                profile = Path(tmp) / "perf.data"
                began, before = time.monotonic(), sum(sum(p.cpu_times()[:2]) for p in procs)
                _record(profile, [call.pid, answer.pid], seconds)
                used = sum(sum(p.cpu_times()[:2]) for p in procs) - before
                window = time.monotonic() - began
                samples, in_srtp = _samples(profile)
            media = _wait_event(call, "media", timeout=seconds + 10)
            # Media really flowed both ways (50 packets a second each way).
            if min(media["rx"], media["tx"]) < 40 * seconds:
                raise RuntimeError(f"{srtp}: too little media for the window: {media}")
        finally:
            call.terminate()
            call.wait(10)
    finally:
        answer.terminate()
        answer.wait(10)
    if not samples:
        raise RuntimeError(f"perf recorded no CPU samples of the {srtp} call")
    return {
        "cpu_s_per_min": used * 60 / window,
        "window_s": window,
        "samples": samples,
        "srtp_samples": in_srtp,
        "codec": media["codec"],
    }


def _record(profile: Path, pids: list[int], seconds: float) -> None:
    """Sample both processes' CPU for the window (every thread, user and kernel)."""
    if shutil.which(PERF) is None:
        raise RuntimeError("bench-srtp: perf is not installed (make deps installs linux-perf)")
    done = subprocess.run(
        [PERF, "record", "--quiet", "--event", "cpu-clock", "--freq", str(SAMPLE_HZ),
         "--output", str(profile), "--pid", ",".join(map(str, pids)), "--",
         "sleep", str(seconds)],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"bench-srtp: perf could not sample the call: {done.stderr.strip()}")


def _samples(profile: Path) -> tuple[int, int]:
    """(all samples, samples in libsrtp) of a perf recording."""
    done = subprocess.run(
        [PERF, "script", "--input", str(profile), "--fields", "ip,sym"],
        check=True,
        capture_output=True,
        text=True,
    )
    symbols = [line.split()[1:2] for line in done.stdout.splitlines() if line.strip()]
    return len(symbols), sum(1 for s in symbols if s and s[0].startswith("srtp_"))


# The agent's own codec order (pjsua2's, speex/16000 first), then G.722 only.
CODECS: dict[str, str | None] = {"default": None, "G722": "G722"}


def measure(seconds: float, rounds: int) -> dict[str, Any]:
    state, store = labrun.start("srtp")
    cfg = {u.name: u.config for u in state.users}
    codecs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        for name, codec in CODECS.items():
            calls = codecs[name] = {"rtp": [], "srtp": []}
            for pair in range(rounds):
                for mode in ("disabled", "mandatory")[:: 1 if pair % 2 == 0 else -1]:
                    call = call_cpu(cfg["carol"], cfg["bob"], mode, seconds, codec)
                    calls["srtp" if mode == "mandatory" else "rtp"].append(call)
    finally:
        labrun.stop(state, store)
    return {"seconds_per_call": seconds, "rounds": rounds, "codecs": codecs}


def _share(call: dict[str, Any]) -> float:
    return float(call["srtp_samples"] / call["samples"])


def _srtp_ms_per_min(call: dict[str, Any]) -> float:
    """libsrtp's CPU (both ends) in milliseconds per minute of call."""
    return float(call["srtp_samples"] / SAMPLE_HZ * 1000 * 60 / call["window_s"])


def _codec_rows(calls: dict[str, list[dict[str, Any]]], n: str) -> list[Row]:
    rtp, srtp = calls["rtp"], calls["srtp"]
    codec = srtp[0]["codec"]
    cpu_rtp = [c["cpu_s_per_min"] for c in rtp]
    cpu_srtp = [c["cpu_s_per_min"] for c in srtp]
    pairs = [s / r for s, r in zip(cpu_srtp, cpu_rtp, strict=True)]
    share = statistics.median(_share(c) for c in srtp)
    ratio = 1 / (1 - share)
    return [
        Row(f"SRTP/RTP CPU, {codec}, from libsrtp's share, {n}", ratio,
            "same call, plain RTP", 1.0, "<= 1.05x peer", ratio <= 1.05),
        Row(f"  libsrtp % of the call's CPU samples, {codec}", 100 * share,
            "same functions, plain RTP", 100 * statistics.median(_share(c) for c in rtp)),
        Row(f"  libsrtp CPU ms per minute of call, {codec}",
            statistics.median(_srtp_ms_per_min(c) for c in srtp),
            "same functions, plain RTP", statistics.median(_srtp_ms_per_min(c) for c in rtp)),
        Row(f"  SRTP/RTP CPU, {codec}, direct (pairs {min(pairs):.2f}-{max(pairs):.2f})",
            statistics.median(pairs), "same call, plain RTP", 1.0),
        Row(f"  call CPU s/min, caller+callee, {codec}", statistics.median(cpu_srtp),
            "same call, plain RTP", statistics.median(cpu_rtp)),
    ]  # fmt: skip


def rows(figures: dict[str, Any]) -> list[Row]:
    n = f"{figures['rounds']}x{figures['seconds_per_call']:.0f} s"
    return [row for calls in figures["codecs"].values() for row in _codec_rows(calls, n)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each call")
    parser.add_argument("--rounds", type=int, default=3, help="pairs of calls per codec")
    args = parser.parse_args()
    figures = measure(args.seconds, args.rounds)
    print(render(rows(figures)))
    results_file.write("srtp_cost", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
