"""What a process costs while nothing happens, measured side by side over one window:
resident memory, CPU seconds per minute and wake-ups (context switches of every thread,
from /proc) per second and per minute."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psutil

SETTLE_S = 3.0  # start-up (imports, first checks, pjsip's first timers) is not idling


def switches(pid: int) -> int:
    """Voluntary + involuntary context switches of every thread of `pid`."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        for line in text.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def idle_figures(pids: dict[str, int], seconds: float) -> dict[str, dict[str, Any]]:
    """Each named process's idle figures over the same `seconds`."""
    time.sleep(SETTLE_S)
    handles = {name: psutil.Process(pid) for name, pid in pids.items()}
    cpu0 = {n: sum(h.cpu_times()[:2]) for n, h in handles.items()}
    ctx0 = {n: switches(h.pid) for n, h in handles.items()}
    time.sleep(seconds)
    out = {}
    for name, h in handles.items():
        cpu = sum(h.cpu_times()[:2]) - cpu0[name]
        woken = switches(h.pid) - ctx0[name]
        out[name] = {
            "rss_mib": round(h.memory_info().rss / 2**20, 1),
            "cpu_s_per_min": round(cpu * 60 / seconds, 4),
            "wakeups_per_s": round(woken / seconds, 2),
            "switches_per_min": round(woken * 60 / seconds, 1),
            "threads": h.num_threads(),
        }
    return out
