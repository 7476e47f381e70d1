"""Where every benchmark writes its figures: bench/results/NAME-<UTC time>.json, with the
machine it ran on (these machines are noisy; the description says which one)."""

from __future__ import annotations

import datetime as dt
import json
import platform
from pathlib import Path
from typing import Any

import psutil

RESULTS = Path(__file__).with_name("results")


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": psutil.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
    }


def write(name: str, figures: dict[str, Any], directory: Path = RESULTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"{name}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"machine": machine(), **figures}, indent=2) + "\n")
    print(f"written to {out}")
    return out
