"""The security event log: SQLite (WAL), append-only, every record hash-chained to the one
before, so a changed or missing record is found by `verify`.

An event is committed (synchronous=FULL) before the step it records is acted upon; it never
holds a secret (fields whose names look like one are stored as "(hidden)").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
SEVERITIES = ("info", "notice", "warning", "critical")
_SECRET_NAME = re.compile(r"password|passwd|secret|token|private|key_pem|psk", re.IGNORECASE)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq       INTEGER PRIMARY KEY,
    time      TEXT NOT NULL,
    type      TEXT NOT NULL,
    severity  TEXT NOT NULL,
    fields    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE INDEX IF NOT EXISTS events_type ON events(type);
CREATE TRIGGER IF NOT EXISTS events_append_only_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TABLE IF NOT EXISTS retention (id INTEGER PRIMARY KEY CHECK (id = 1), pruning INTEGER);
INSERT OR IGNORE INTO retention VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS events_append_only_delete BEFORE DELETE ON events
    WHEN (SELECT pruning FROM retention WHERE id = 1) IS NOT 1
    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TABLE IF NOT EXISTS checkpoints (
    seq       INTEGER PRIMARY KEY,  -- the last record dropped by retention
    hash      TEXT NOT NULL,        -- its hash: the next record's prev_hash
    time      TEXT NOT NULL,
    signature TEXT NOT NULL         -- by the device key, over checkpoint_message()
);
"""


def checkpoint_message(seq: int, digest: str, time: str) -> bytes:
    return f"guardphone-checkpoint\n{seq}\n{digest}\n{time}".encode()


# The agent's states (what `--json` prints) and the event each one is logged as.
STATE_EVENTS: dict[str, tuple[str, str]] = {
    "checking": ("agent.checking", "info"),
    "connecting": ("gate.allowed", "info"),
    "refused": ("gate.refused", "warning"),
    "registered": ("sip.registered", "info"),
    "unregistered": ("sip.unregistered", "notice"),
    "calling": ("call.placed", "info"),
    "incoming": ("call.incoming", "info"),
    "ringing": ("call.ringing", "info"),
    "call_established": ("call.established", "info"),
    "call_ended": ("call.ended", "info"),
    "call_failed": ("call.failed", "notice"),
    "media_silent": ("call.media_silent", "warning"),
    "media_restored": ("call.media_restored", "notice"),
    "resumed": ("agent.resumed", "info"),
    "sip.unsolicited": ("sip.unsolicited", "warning"),
    "config.changed": ("config.changed", "notice"),
    "config_rejected": ("config.rejected", "warning"),
    "cert.expiring": ("cert.expiring", "warning"),
    "enrolling": ("device.enrolling", "info"),
    "enrolled": ("device.enrolled", "notice"),
    "renewing": ("cert.renewing", "info"),
    "renewed": ("cert.renewed", "notice"),
    "renewal_failed": ("cert.renewal_failed", "warning"),
    "call_blocked": ("call.blocked", "warning"),
    "fraud_suspended": ("fraud.suspended", "critical"),
    "emergency_call": ("call.emergency", "notice"),
    "fraud_alert": ("fraud.alert", "warning"),
    "fraud_resumed": ("fraud.resumed", "notice"),
    "portal_command": ("portal.command", "notice"),
    "update_recommended": ("agent.update_recommended", "warning"),
}


def event_for(state: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(type, severity, fields) for one of the agent's states."""
    name = str(state["state"])
    type_, severity = STATE_EVENTS.get(name, (f"agent.{name}", "info"))
    if name == "refused" and state.get("code") == "auth_failed":
        type_ = "sip.auth_failed"
    fields = {k: v for k, v in state.items() if k not in ("state", "time")}
    return type_, severity, fields


@dataclass(frozen=True)
class Event:
    seq: int
    time: str
    type: str
    severity: str
    fields: dict[str, Any]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "type": self.type,
            "severity": self.severity,
            "fields": self.fields,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class Verification:
    ok: bool
    count: int
    first_broken: int | None = None
    problem: str = ""


def record_hash(
    prev_hash: str, seq: int, time: str, type_: str, severity: str, fields_json: str
) -> str:
    body = json.dumps([seq, time, type_, severity, fields_json], separators=(",", ":"))
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def scrub(value: Any) -> Any:
    """Never a secret in the log: values under secret-looking names are hidden."""
    if isinstance(value, dict):
        return {
            str(k): "(hidden)" if _SECRET_NAME.search(str(k)) and v is not None else scrub(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


class EventLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # The tray app appends from its worker thread too; the lock keeps one writer.
        self._db = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # committed means on disk
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def append(
        self, type_: str, severity: str, fields: dict[str, Any], time: str | None = None
    ) -> Event:
        if severity not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r}")
        fields_json = json.dumps(scrub(fields), sort_keys=True, separators=(",", ":"), default=str)
        time = time or dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
        with self._lock:
            return self._append(type_, severity, fields_json, time)

    def _append(self, type_: str, severity: str, fields_json: str, time: str) -> Event:
        self._db.execute("BEGIN IMMEDIATE")  # one writer at a time: the chain has no forks
        try:
            last = self._tip()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            digest = record_hash(prev, seq, time, type_, severity, fields_json)
            self._db.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                (seq, time, type_, severity, fields_json, prev, digest),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return Event(seq, time, type_, severity, json.loads(fields_json), prev, digest)

    def _tip(self) -> tuple[int, str] | None:
        """The chain's end: the newest record, or the checkpoint if retention took them all."""
        for table in ("events", "checkpoints"):
            row = self._db.execute(f"SELECT seq, hash FROM {table} ORDER BY seq DESC LIMIT 1")  # noqa: S608 - fixed names
            found = row.fetchone()
            if found:
                return int(found[0]), str(found[1])
        return None

    def last_hash(self) -> str:
        tip = self._tip()
        return tip[1] if tip else GENESIS

    def verify(self, check_signature: Callable[[bytes, str], bool] | None = None) -> Verification:
        """Walk the chain from the last retention checkpoint (its signature checked when a
        verifier is given); name the first record that does not fit."""
        prev, expected, count = GENESIS, 1, 0
        checkpoint = self._db.execute(
            "SELECT seq, hash, time, signature FROM checkpoints ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if checkpoint is not None:
            seq, digest, time, signature = checkpoint
            if check_signature is not None and not check_signature(
                checkpoint_message(seq, digest, time), signature
            ):
                return Verification(
                    False, 0, seq, "its retention checkpoint is not signed by this device"
                )
            prev, expected = digest, seq + 1
        for seq, time, type_, severity, fields_json, prev_hash, digest in self._db.execute(
            "SELECT seq, time, type, severity, fields, prev_hash, hash FROM events ORDER BY seq"
        ):
            if seq != expected:
                return Verification(False, count, expected, f"record {expected} is missing")
            if prev_hash != prev:
                return Verification(False, count, seq, "does not follow the record before it")
            if record_hash(prev, seq, time, type_, severity, fields_json) != digest:
                return Verification(False, count, seq, "its content was changed")
            prev, expected, count = digest, expected + 1, count + 1
        return Verification(True, count)

    def prune(
        self, sign: Callable[[bytes], str], keep: int | None = None, before: str | None = None
    ) -> int:
        """Drop the oldest records — all but the newest `keep`, or those older than `before`
        (ISO time) — leaving a signed checkpoint of the last dropped hash so the chain stays
        verifiable. Returns how many were dropped."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if keep is not None:
                last = self._db.execute(
                    "SELECT seq, hash, time FROM events ORDER BY seq DESC LIMIT 1 OFFSET ?",
                    (keep,),
                ).fetchone()
            else:
                last = self._db.execute(
                    "SELECT seq, hash, time FROM events WHERE time < ? ORDER BY seq DESC LIMIT 1",
                    (before,),
                ).fetchone()
            if last is None:
                self._db.execute("ROLLBACK")
                return 0
            seq, digest, time = last
            self._db.execute("UPDATE retention SET pruning = 1 WHERE id = 1")
            dropped = self._db.execute("DELETE FROM events WHERE seq <= ?", (seq,)).rowcount
            self._db.execute("UPDATE retention SET pruning = 0 WHERE id = 1")
            self._db.execute(
                "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?)",
                (seq, digest, time, sign(checkpoint_message(seq, digest, time))),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return int(dropped)

    def query(
        self,
        since: str | None = None,
        until: str | None = None,
        types: tuple[str, ...] = (),
        min_severity: str | None = None,
        text: str | None = None,
        limit: int = 1000,
        newest_first: bool = False,
        after_seq: int | None = None,
    ) -> Iterator[Event]:
        where: list[str] = []
        args: list[Any] = []
        if after_seq is not None:
            where.append("seq > ?")
            args.append(after_seq)
        if since:
            where.append("time >= ?")
            args.append(since)
        if until:
            where.append("time < ?")
            args.append(until)
        if types:
            where.append(f"type IN ({','.join('?' * len(types))})")
            args.extend(types)
        if min_severity:
            allowed = SEVERITIES[SEVERITIES.index(min_severity) :]
            where.append(f"severity IN ({','.join('?' * len(allowed))})")
            args.extend(allowed)
        if text:
            where.append("(type LIKE ? OR fields LIKE ?)")
            args.extend([f"%{text}%", f"%{text}%"])
        sql = "SELECT seq, time, type, severity, fields, prev_hash, hash FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?" if newest_first else " ORDER BY seq LIMIT ?"
        args.append(limit)
        for row in self._db.execute(sql, args):
            yield Event(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6])
