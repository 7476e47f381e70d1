"""`guardphone-portal serve`: how many processes it runs, and refusing nonsense."""

from __future__ import annotations

import os
import subprocess
import sys

from portal.__main__ import default_workers


def test_sqlite_gets_one_process_and_postgresql_two_per_core() -> None:
    # SQLite has one writer: a second process only waits for its lock (bench/portal.py).
    assert default_workers("sqlite:////var/lib/guardphone-portal/portal.db") == 1
    cores = os.cpu_count() or 1
    assert default_workers("postgresql+psycopg://portal@db/portal") == 2 * cores


def test_zero_workers_is_refused_with_the_reason() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "portal", "serve", "--db", "sqlite:///nowhere.db",
         "--state", "/nonexistent", "--domain", "corp.example", "--tls-cert", "/nonexistent",
         "--tls-key", "/nonexistent", "--workers", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert "--workers must be at least 1" in out.stderr
