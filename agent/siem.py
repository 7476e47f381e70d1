"""Forwarding the event log to the organisation's SIEM: at least once, in order, resumed.

The event log itself is the outbox: each destination keeps the seq of the last event it
took (stored next to the events, advanced only after a send succeeded), so a crash, a kill
-9 or days without the receiver lose nothing, and order is the log's order. Formats: syslog
RFC 5424 (over UDP, or TCP/TLS with RFC 5425/6587 octet counting), CEF, JSON lines.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import select
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.events import Event

log = logging.getLogger(__name__)

SYSLOG_SEVERITY = {"info": 6, "notice": 5, "warning": 4, "critical": 2}
CEF_SEVERITY = {"info": 3, "notice": 5, "warning": 7, "critical": 10}
FACILITY_AUTHPRIV = 10
ENTERPRISE_ID = 32473  # the documentation enterprise number (RFC 5612)
BACKOFF_S = (1.0, 5.0, 30.0, 120.0)


@dataclass(frozen=True)
class Target:
    name: str
    transport: str  # udp | tcp | tls | https
    host: str
    port: int
    format: str = "rfc5424"  # rfc5424 | cef | json (https always sends JSON lines)
    ca_pem: str | None = None
    path: str = "/"  # https only


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def rfc5424(event: Event, hostname: str, procid: int) -> str:
    pri = FACILITY_AUTHPRIV * 8 + SYSLOG_SEVERITY.get(event.severity, 6)
    time_ = event.time.replace("+00:00", "Z")
    sd = (
        f'[guardphone@{ENTERPRISE_ID} seq="{event.seq}" type="{_sd_escape(event.type)}" '
        f'hash="{event.hash}" prev="{event.prev_hash}"]'
    )
    msgid = event.type.replace(".", "_")[:32]
    body = json.dumps(event.fields, sort_keys=True, separators=(",", ":"))
    return f"<{pri}>1 {time_} {hostname} guardphone {procid} {msgid} {sd} {body}"


def _cef_escape(value: str, header: bool) -> str:
    value = value.replace("\\", "\\\\")
    return value.replace("|", "\\|") if header else value.replace("=", "\\=").replace("\n", " ")


def cef(event: Event) -> str:
    ext = {
        "rt": event.time,
        "cn1": str(event.seq),
        "cn1Label": "seq",
        "cs1": event.hash,
        "cs1Label": "hash",
        "msg": json.dumps(event.fields, sort_keys=True, separators=(",", ":")),
    }
    extension = " ".join(f"{k}={_cef_escape(v, header=False)}" for k, v in ext.items())
    name = _cef_escape(event.type, header=True)
    return (
        f"CEF:0|guardphone|agent|0.1.0|{name}|{name}|"
        f"{CEF_SEVERITY.get(event.severity, 3)}|{extension}"
    )


def render(event: Event, target: Target, hostname: str, procid: int) -> str:
    if target.format == "cef":
        return cef(event)
    if target.format == "json":
        return json.dumps(event.as_dict(), sort_keys=True)
    return rfc5424(event, hostname, procid)


class Forwarder:
    """Sends what each target has not taken yet, in order; keeps the cursors in the log db."""

    def __init__(
        self,
        db_path: Path,
        targets: tuple[Target, ...],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = sqlite3.connect(db_path, isolation_level=None, timeout=10)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS siem_cursor (target TEXT PRIMARY KEY, last_seq INTEGER "
            "NOT NULL, last_error TEXT, failures INTEGER NOT NULL DEFAULT 0)"
        )
        self.targets = targets
        self._clock = clock
        self._retry_at: dict[str, float] = {}
        self._sockets: dict[str, socket.socket] = {}
        self._hostname = socket.gethostname() or "-"

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._db.close()

    def status(self) -> list[dict[str, Any]]:
        newest = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        rows = []
        for target in self.targets:
            last, error, _ = self._cursor(target)
            rows.append(
                {
                    "target": target.name,
                    "transport": target.transport,
                    "format": target.format,
                    "delivered_seq": last,
                    "lag": newest - last,
                    "last_error": error,
                    "state": "ok" if not error else "retrying",
                }
            )
        return rows

    def flush(self, batch: int = 500) -> int:
        """Send pending events to every target that is not backing off; how many were sent."""
        sent = 0
        for target in self.targets:
            if self._clock() < self._retry_at.get(target.name, 0.0):
                continue
            sent += self._flush_one(target, batch)
        return sent

    def _cursor(self, target: Target) -> tuple[int, str | None, int]:
        row = self._db.execute(
            "SELECT last_seq, last_error, failures FROM siem_cursor WHERE target = ?",
            (target.name,),
        ).fetchone()
        return (int(row[0]), row[1], int(row[2])) if row else (0, None, 0)

    def _flush_one(self, target: Target, batch: int) -> int:
        last, _, failures = self._cursor(target)
        rows = self._db.execute(
            "SELECT seq, time, type, severity, fields, prev_hash, hash FROM events "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (last, batch),
        ).fetchall()
        events = [Event(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in rows]
        if target.transport == "https" and events:
            try:
                self._post(target, events)
            except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
                self._failed(target, last, failures, exc)
                return 0
            self._save(target, events[-1].seq, None, 0)  # the batch was acknowledged
            return len(events)
        sent = 0
        for event in events:
            try:
                self._send(target, render(event, target, self._hostname, _pid()))
            except (OSError, ssl.SSLError) as exc:
                self._drop_socket(target)
                self._failed(target, event.seq - 1, failures, exc)
                return sent
            sent += 1
            self._save(target, event.seq, None, 0)  # advanced only after the send
        return sent

    def _failed(self, target: Target, last: int, failures: int, exc: Exception) -> None:
        failures += 1
        delay = BACKOFF_S[min(failures - 1, len(BACKOFF_S) - 1)]
        self._retry_at[target.name] = self._clock() + delay
        self._save(target, last, f"{type(exc).__name__}: {exc}", failures)
        log.warning("SIEM %s: %s (retry in %.0f s)", target.name, exc, delay)

    def _post(self, target: Target, events: list[Event]) -> None:
        """JSON lines over HTTPS, one batch per request; only a 2xx counts as delivered."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_verify_locations(cadata=target.ca_pem)
        conn = http.client.HTTPSConnection(target.host, target.port, timeout=5, context=ctx)
        try:
            body = "".join(json.dumps(e.as_dict(), sort_keys=True) + "\n" for e in events)
            conn.request("POST", target.path, body, {"Content-Type": "application/x-ndjson"})
            response = conn.getresponse()
            response.read()
            if not 200 <= response.status < 300:
                raise http.client.HTTPException(f"HTTP {response.status}")
        finally:
            conn.close()

    def _save(self, target: Target, last: int, error: str | None, failures: int) -> None:
        self._db.execute(
            "INSERT INTO siem_cursor VALUES (?, ?, ?, ?) ON CONFLICT(target) DO UPDATE SET "
            "last_seq = excluded.last_seq, last_error = excluded.last_error, "
            "failures = excluded.failures",
            (target.name, last, error, failures),
        )

    def _send(self, target: Target, message: str) -> None:
        data = message.encode()
        sock = self._socket(target)
        if target.transport == "udp":
            sock.send(data)
        else:  # RFC 5425 / RFC 6587 octet counting
            sock.sendall(f"{len(data)} ".encode() + data)

    def _socket(self, target: Target) -> socket.socket:
        sock = self._sockets.get(target.name)
        if sock is not None and target.transport != "udp" and _peer_closed(sock):
            # A syslog receiver never talks back: readable means it hung up. Reconnect now
            # rather than write into a dead connection and lose what we wrote.
            self._drop_socket(target)
            sock = None
        if sock is not None:
            return sock
        if target.transport == "udp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.connect((target.host, target.port))
        else:
            sock = socket.create_connection((target.host, target.port), timeout=2.0)
            if target.transport == "tls":
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_2
                ctx.load_verify_locations(cadata=target.ca_pem)
                sock = ctx.wrap_socket(sock, server_hostname=target.host)
        self._sockets[target.name] = sock
        return sock

    def _drop_socket(self, target: Target) -> None:
        sock = self._sockets.pop(target.name, None)
        if sock is not None:
            sock.close()


def _peer_closed(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def _pid() -> int:
    return os.getpid()


class BackgroundForwarder:
    """Runs a Forwarder on its own thread, so a slow or absent SIEM never delays the agent
    (the pjsua2 thread must react to a lost path within a second). `poke` after each event."""

    def __init__(self, db_path: Path, targets: tuple[Target, ...]) -> None:
        self._db_path = db_path
        self._targets = targets
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="siem", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 2.0) -> None:
        """One last flush (bounded), then stop; what is left goes out on the next run."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout_s)

    def _loop(self) -> None:
        forwarder = Forwarder(self._db_path, self._targets)  # its own SQLite connection
        try:
            while True:
                self._wake.wait(timeout=BACKOFF_S[1])  # also retries after a backoff
                self._wake.clear()
                # Read before flushing: the last flush must start after stop() was asked,
                # or events logged just before it (the final "unregistered") wait a run.
                stopping = self._stopping
                forwarder.flush()
                if stopping:
                    return
        finally:
            forwarder.close()
