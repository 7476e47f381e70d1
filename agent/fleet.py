"""The agent's link to the portal, on its own thread: posture reports and events go out from
a durable outbox (in order, through days offline, with backoff and jitter); the signed policy
and signed commands come back. The supervisor hands in what only it knows (the VoIP facts)
and takes commands out; nothing here touches SIP.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import keystore, posture, report, schemas
from agent.config import AgentConfig
from agent.enroll import DEVICE_ID, POLICY_KEY, EnrollError, request_pinned
from agent.events import EventLog
from agent.material import read_ca

log = logging.getLogger(__name__)
AGENT_VERSION = "0.1.0"
EVENT_BATCH = 500
BACKOFF_MAX_S = 900.0
STOP_WAIT_S = 30.0

Send = Callable[[str, bytes, str], tuple[int, dict[str, str], Any]]  # method, body, path


@dataclass
class LinkStatus:
    state: str = "idle"  # idle | ok | retrying | not_enrolled
    last_error: str = ""
    last_contact: str = ""
    queued: int = 0


class Outbox:
    """What waits for the portal, in order, in a SQLite file next to the event log."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "path TEXT, body BLOB)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT)")
        self._lock = threading.Lock()

    def put(self, path: str, body: bytes) -> None:
        with self._lock:
            self._db.execute("INSERT INTO outbox (path, body) VALUES (?, ?)", (path, body))

    def first(self) -> tuple[int, str, bytes] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, path, body FROM outbox ORDER BY id LIMIT 1"
            ).fetchone()
        return (int(row[0]), str(row[1]), bytes(row[2])) if row else None

    def done(self, item_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def get(self, key: str, default: str = "") -> str:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def set(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))

    def close(self) -> None:
        self._db.close()


class FleetLink:
    def __init__(
        self,
        config: AgentConfig,
        store: keystore.SecretStore,
        event_log: Path,
        send: Send | None = None,
        host_facts: Callable[[], posture.HostFacts] = posture.linux,
        poll_s: float = 30.0,
    ) -> None:
        account, service = config.account_id, config.keychain_service
        self.device_id = store.get(service, keystore.entry_name(account, DEVICE_ID))
        policy_key = store.get(service, keystore.entry_name(account, POLICY_KEY))
        creds = keystore.load_credentials(store, service, account) if self.device_id else None
        self.enrolled = bool(self.device_id and policy_key and creds and config.portal)
        self.config = config
        self.status = LinkStatus(state="idle" if self.enrolled else "not_enrolled")
        self.commands: queue.Queue[schemas.Command] = queue.Queue()
        self.voip: dict[str, Any] = {}  # set by the supervisor, on its thread, as a whole
        self._store = store
        self._event_log = event_log
        self._host_facts = host_facts
        self._outbox = Outbox(event_log.with_name(event_log.stem + "-portal-outbox.db"))
        stored = self._outbox.get("policy")
        current = schemas.Policy.model_validate_json(stored) if stored else None
        self.keeper = report.PolicyKeeper(policy_key or "", current)
        self._send = send or self._https
        self._wake = threading.Event()
        self._stopping = False
        self._report_due = True
        self._seen_commands: set[int] = set()
        self.poll_s = poll_s
        self._thread: threading.Thread | None = None

    # -- the supervisor's side ------------------------------------------------------------

    def start(self) -> None:
        if self.enrolled and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="portal", daemon=True)
            self._thread.start()

    def report_now(self) -> None:
        self._report_due = True
        self._wake.set()

    def poke(self) -> None:
        self._wake.set()

    def acknowledge(self, command_id: int) -> None:
        self._outbox.put(f"/v1/commands/{command_id}/done", b"")
        self._wake.set()

    def stop(self, timeout_s: float = STOP_WAIT_S) -> None:
        """Let the link's thread finish what it is doing (a posture collection can take a
        few seconds) before the process goes on: a thread still running C code while the
        interpreter shuts down can crash it (seen as SIGSEGV at exit in CI)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("the portal link did not stop within %.0f s", timeout_s)
                return  # its outbox stays open for it; the process is ending anyway
        self._outbox.close()

    @property
    def policy(self) -> schemas.Policy | None:
        return self.keeper.current

    # -- the link's thread ------------------------------------------------------------------

    def _loop(self) -> None:
        """Sync every `poll_s` (commands must not wait for the next report); a report every
        `report_interval_s` of the policy; after a failure, back off with jitter."""
        failures = 0
        next_report = time.monotonic()
        while not self._stopping:
            now = time.monotonic()
            if now >= next_report:
                self._report_due = True
                next_report = now + (self.policy.report_interval_s if self.policy else 900)
            try:
                self.sync()
                failures, wait = 0, self.poll_s
            except (EnrollError, OSError, ValueError, keystore.KeychainError) as exc:
                failures += 1
                self.status.state, self.status.last_error = "retrying", str(exc)
                wait = min(BACKOFF_MAX_S, 2.0**failures) * random.uniform(0.5, 1.5)  # noqa: S311 - jitter
            self._wake.wait(max(0.05, min(wait, next_report - time.monotonic())))
            self._wake.clear()

    def sync(self) -> None:
        """One round: queue a report if due, deliver the outbox, send new events, fetch the
        policy and the commands. Raises on the first failure (the rest waits, in order)."""
        if self._report_due and not self._stopping:
            self._report_due = False
            self._outbox.put("/v1/posture", report.body_of(self.build_report().model_dump()))
        while (item := self._outbox.first()) is not None:
            item_id, path, body = item
            status, _, answer = self._send("POST", body, path)
            if status >= 500 or status in (401, 429):
                raise EnrollError("portal_error", f"the portal answered {status} to {path}")
            if status >= 400:  # refused for good (e.g. a replay): it will never be accepted
                log.warning("portal refused %s: %s %s", path, status, answer)
            self._outbox.done(item_id)
        for step in (self._send_events, self._fetch_policy, self._fetch_commands):
            if self._stopping:
                return
            step()
        self.status.state, self.status.last_error = "ok", ""
        self.status.last_contact = dt.datetime.now(dt.UTC).isoformat()
        self._outbox.set("last_contact", self.status.last_contact)
        self.status.queued = self._outbox.count()

    def build_report(self) -> schemas.PostureReport:
        host = self._host_facts()
        voip = dict(self.voip)
        return schemas.PostureReport(
            device_id=self.device_id or "",
            account=self.config.account_id,
            time=dt.datetime.now(dt.UTC).isoformat(),
            agent_version=AGENT_VERSION,
            os=host.os,
            disk=host.disk,
            firewall_active=host.firewall_active,
            screen_lock=host.screen_lock,
            **voip,
        )

    def _send_events(self) -> None:
        cursor = int(self._outbox.get("events_sent", "0"))
        events = EventLog(self._event_log)
        try:
            batch = [e.as_dict() for e in events.query(limit=EVENT_BATCH, after_seq=cursor)]
        finally:
            events.close()
        if not batch:
            return
        body = report.body_of({"device_id": self.device_id, "events": batch})
        status, _, answer = self._send("POST", body, "/v1/events")
        if status != 200:
            raise EnrollError("portal_error", f"the portal answered {status} to the events")
        self._outbox.set("events_sent", str(int(answer.get("acked_through", cursor))))

    def _fetch_policy(self) -> None:
        etag = self._outbox.get("policy_etag")
        status, headers, answer = self._send(
            "GET", b"", "/v1/policy" + (f"#{etag}" if etag else "")
        )
        if status in (304, 404):
            return
        if status != 200:
            raise EnrollError("portal_error", f"the portal answered {status} to the policy")
        try:
            policy = self.keeper.offer(answer)
        except (report.PolicyRefused, ValueError) as exc:
            log.warning("policy refused: %s", exc)
            self.status.last_error = str(exc)
            return
        self._outbox.set("policy", policy.model_dump_json())
        self._outbox.set("policy_etag", headers.get("etag", ""))

    def _fetch_commands(self) -> None:
        status, _, answer = self._send("GET", b"", "/v1/commands")
        if status != 200 or not isinstance(answer, list):
            raise EnrollError("portal_error", f"the portal answered {status} to the commands")
        for item in answer:
            signed = schemas.SignedCommand.model_validate(item)
            command = signed.command
            ok = report.signed_by_portal(
                self.keeper.policy_key_pem, command.model_dump(), signed.signature
            )
            if not ok or command.device_id != self.device_id:
                log.warning("ignored a command not signed by the portal for this device")
                continue
            if command.id not in self._seen_commands:
                self._seen_commands.add(command.id)
                self.commands.put(command)

    def _https(self, method: str, body: bytes, path: str) -> tuple[int, dict[str, str], Any]:
        portal = self.config.portal
        assert portal is not None and self.device_id
        path, _, etag = path.partition("#")
        # The key is read from the keychain for each request: a renewal replaces it.
        creds = keystore.load_credentials(
            self._store, self.config.keychain_service, self.config.account_id
        )
        headers = report.signed_headers(creds.key_pem, self.device_id, method, path, body)
        if etag:
            headers["If-None-Match"] = etag
        url = portal.url.rstrip("/") + path
        return request_pinned(url, read_ca(portal.ca_file), portal.spki_pins, method, body, headers)


def summary(link: FleetLink) -> dict[str, Any]:
    """For `guardphone status` (read from the outbox; nothing is sent): whether this device
    reports to the portal, what waits, the policy in force, the last successful contact."""
    if not link.enrolled:
        return {"state": "not enrolled through the portal"}
    events = EventLog(link._event_log)
    try:
        newest = next(iter(events.query(limit=1, newest_first=True)), None)
    finally:
        events.close()
    sent = int(link._outbox.get("events_sent", "0"))
    policy = link.policy
    return {
        "device_id": link.device_id,
        "queued_reports": link._outbox.count(),
        "events_not_yet_sent": max(0, (newest.seq if newest else 0) - sent),
        "policy_version": policy.version if policy else None,
        "min_agent_version": policy.min_agent_version if policy else None,
        "last_contact": link._outbox.get("last_contact") or "never",
    }
