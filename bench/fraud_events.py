"""Fraud decision time, durable event appends, and a filtered query over 1,000,000 events,
each against a peer measured in the same run:
- the guard's decision vs. libphonenumber's bare parse + type lookup (the floor under it);
- EventLog.append (hash chain, one transaction per event, synchronous=FULL) vs. a plain
  INSERT with the same durability settings;
- EventLog.query (type + time range) vs. the same SELECT on a table without the chain.
Prints a table and writes JSON with the machine's description to bench/results/.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import phonenumbers

from agent.events import GENESIS, EventLog, record_hash
from agent.fraud import FraudGuard, Policy
from bench import results_file
from bench.table import Row, render

NUMBERS = [
    "+1 212 555 0100",
    "+44 20 7946 0018",
    "+1 900 555 0199",
    "0900 1234567",
    "+49 1805 123456",
    "911",
    "+7 495 123 4567",
    "+33 1 42 68 53 00",
]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def fraud(n: int, tmp: Path) -> dict[str, float]:
    guard = FraudGuard(
        Policy(
            region="US",
            international_per_window=10**9,
            suspend_after_blocks=10**9,
            sequential_run=10**6,
        ),
        tmp / "fraud.db",
    )
    ours, floor = [], []
    for i in range(n):
        number = NUMBERS[i % len(NUMBERS)]
        t0 = time.perf_counter()
        guard.check(number)
        ours.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        parsed = phonenumbers.parse(number.replace("0900", "+49900"), "US")
        phonenumbers.number_type(parsed)
        floor.append((time.perf_counter() - t0) * 1000)
    return {
        "p50": percentile(ours, 0.5),
        "p99": percentile(ours, 0.99),
        "peer_p50": percentile(floor, 0.5),
        "peer_p99": percentile(floor, 0.99),
    }


def appends(n: int, tmp: Path) -> dict[str, float]:
    log = EventLog(tmp / "append.db")
    t0 = time.perf_counter()
    for i in range(n):
        log.append("call.placed", "info", {"uri": f"sip:{i}@x"})
    ours = n / (time.perf_counter() - t0)
    db = sqlite3.connect(tmp / "plain.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE e (seq INTEGER PRIMARY KEY, time TEXT, type TEXT, fields TEXT)")
    t0 = time.perf_counter()
    for i in range(n):
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO e (time, type, fields) VALUES (?, ?, ?)",
            (dt.datetime.now(dt.UTC).isoformat(), "call.placed", json.dumps({"i": i})),
        )
        db.execute("COMMIT")
    peer = n / (time.perf_counter() - t0)
    return {"ours_per_s": ours, "peer_per_s": peer}


def query(n: int, tmp: Path) -> dict[str, float]:
    path = tmp / "big.db"
    EventLog(path).close()  # the schema, indexes and triggers
    db = sqlite3.connect(path, isolation_level=None)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    types = ["sip.registered", "call.placed", "call.ended", "gate.allowed", "call.blocked"]
    rows, prev = [], GENESIS
    for seq in range(1, n + 1):
        when = (start + dt.timedelta(seconds=seq * 3)).isoformat(timespec="microseconds")
        kind = types[seq % len(types)]
        fields = json.dumps({"uri": f"sip:{seq}@lab"}, separators=(",", ":"))
        digest = record_hash(prev, seq, when, kind, "info", fields)
        rows.append((seq, when, kind, "info", fields, prev, digest))
        prev = digest
    db.execute("BEGIN")
    db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    db.execute("COMMIT")
    db.execute("CREATE TABLE plain AS SELECT seq, time, type, fields FROM events")
    db.execute("CREATE INDEX plain_time ON plain(time)")
    db.execute("ANALYZE")
    log = EventLog(path)
    # One day in the middle of the log (with fewer events, a quarter of it).
    span = dt.timedelta(seconds=n * 3)
    first = start + span / 2
    since = first.isoformat(timespec="microseconds")
    until = (first + min(dt.timedelta(days=1), span / 4)).isoformat(timespec="microseconds")
    ours, peer = [], []
    for _ in range(20):
        t0 = time.perf_counter()
        found = list(log.query(since=since, until=until, types=("call.blocked",), limit=10**6))
        ours.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        plain = db.execute(
            "SELECT * FROM plain WHERE time >= ? AND time < ? AND type = ?",
            (since, until, "call.blocked"),
        ).fetchall()
        peer.append((time.perf_counter() - t0) * 1000)
    assert len(found) == len(plain) > 0
    return {
        "median_ms": statistics.median(ours),
        "worst_ms": max(ours),
        "peer_median_ms": statistics.median(peer),
        "rows": len(found),
    }


def measure(n_events: int, decisions: int = 5000, n_appends: int = 2000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        f = fraud(decisions, tmp)
        a = appends(n_appends, tmp)
        q = query(n_events, tmp)
    return {"fraud_decision_ms": f, "appends": a, "query": {**q, "events": n_events}}


def rows(figures: dict[str, Any]) -> list[Row]:
    f, a, q = figures["fraud_decision_ms"], figures["appends"], figures["query"]
    parse = "libphonenumber parse + type"
    return [
        Row("fraud decision p99, ms", f["p99"], parse, f["peer_p99"], "< 1 ms", f["p99"] < 1.0),
        Row("fraud decision p50, ms", f["p50"], parse, f["peer_p50"]),
        Row("durable event appends / s (hash chain)", a["ours_per_s"],
            "plain INSERT, same durability", a["peer_per_s"]),
        Row(f"filtered query over {q['events']:,} events, ms median", q["median_ms"],
            "same SELECT, no chain", q["peer_median_ms"]),
    ]  # fmt: skip


def main() -> int:
    n_events = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    figures = measure(n_events)
    print(render(rows(figures)))
    results_file.write("fraud_events", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
