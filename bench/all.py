"""`make bench`: every benchmark in one run, one table, written with the machine's
description to bench/results/bench-<UTC time>.json (and .txt, the table as printed).

Each figure stands next to a peer measured in the same run (these machines are noisy):
baresip and Linphone's desktop app, bare pjsua2, the same call without SRTP, the kernel's own
notice of a link change, the bare database. `--quick` runs each benchmark once, tiny, so
`make test` proves none of them has rotted (the figures of a quick run mean nothing).

Needs what the benchmarks need: root (network namespaces), a Secret Service and a display
(`make bench` provides both), baresip-core and linphone-desktop (`make deps`).
"""

from __future__ import annotations

import argparse
import compileall
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import (
    fail_closed,
    fraud_events,
    portal,
    register_call,
    results_file,
    softphones,
    srtp_cost,
    tray_idle,
)
from bench.table import Row, render


@dataclass(frozen=True)
class Step:
    name: str
    full: Callable[[], dict[str, Any]]
    quick: Callable[[], dict[str, Any]]
    rows: Callable[[dict[str, Any]], list[Row]]
    needs_root: bool = False
    needs_display: bool = False


STEPS = [
    Step("softphones", lambda: softphones.measure(15, 60), lambda: softphones.measure(1, 1),
         softphones.rows),
    Step("register_call", lambda: register_call.measure(15), lambda: register_call.measure(1),
         register_call.rows),
    Step("fail_closed", lambda: fail_closed.measure(50, 3), lambda: fail_closed.measure(1, 1),
         fail_closed.rows, needs_root=True),
    Step("srtp_cost", lambda: srtp_cost.measure(60, 3), lambda: srtp_cost.measure(5, 1),
         srtp_cost.rows),
    Step("tray_idle", lambda: tray_idle.measure(60), lambda: tray_idle.measure(2),
         tray_idle.rows, needs_display=True),
    Step("fraud_events", lambda: fraud_events.measure(1_000_000),
         lambda: fraud_events.measure(2_000, decisions=200, n_appends=100), fraud_events.rows),
    Step("portal", lambda: portal.measure(10),
         lambda: portal.measure(1, devices=500, rounds=4), portal.rows),
]  # fmt: skip


def compile_sources() -> None:
    """Byte-compile the source tree: the product as installed is compiled (pip does it).

    Where PYTHONDONTWRITEBYTECODE is set, the editable install would otherwise compile every
    module of ours from source at each start (~40 ms of "process start -> registered").
    """
    root = Path(__file__).resolve().parent.parent
    for package in ("agent", "tunnel", "ui", "lab"):
        compileall.compile_dir(root / package, quiet=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one tiny run of each (smoke)")
    parser.add_argument("--results", type=Path, default=results_file.RESULTS)
    parser.add_argument("--only", nargs="*", help="run only these benchmarks")
    args = parser.parse_args()
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces)")
    if not os.environ.get("DISPLAY"):
        missing.append("a display")
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        missing.append("a Secret Service session")
    if missing:
        print(f"bench: needs {', '.join(missing)}: run it with `make bench`", file=sys.stderr)
        return 2
    compile_sources()
    figures: dict[str, Any] = {}
    rows: list[Row] = []
    failed = []
    for step in STEPS:
        if args.only and step.name not in args.only:
            continue
        print(f"== {step.name}", flush=True)
        started = time.monotonic()
        try:
            got = (step.quick if args.quick else step.full)()
        except Exception as exc:  # one broken benchmark must not lose the others' figures
            traceback.print_exc()
            failed.append(step.name)
            figures[step.name] = {"error": f"{type(exc).__name__}: {str(exc)[:2000]}"}
            continue
        figures[step.name] = {**got, "seconds_taken": round(time.monotonic() - started, 1)}
        rows += step.rows(got)
    table = render(rows)
    if failed:
        table += f"\nFAILED (no figures): {', '.join(failed)}"
    print(table)
    out = results_file.write(
        "bench",
        {"quick": args.quick, "figures": figures, "table": [r.as_dict() for r in rows]},
        args.results,
    )
    out.with_suffix(".txt").write_text(table + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
