"""The hash-chained event log: append, query, verify, tamper detection, no secrets."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.events import GENESIS, EventLog, event_for, scrub


@pytest.fixture
def log(tmp_path: Path) -> EventLog:
    return EventLog(tmp_path / "events.db")


def test_chain_links_every_record(log: EventLog) -> None:
    first = log.append("gate.refused", "warning", {"code": "tunnel_down"})
    second = log.append("gate.allowed", "info", {"path": "wireguard"})
    assert (first.seq, first.prev_hash) == (1, GENESIS)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert log.last_hash() == second.hash
    assert log.verify().ok and log.verify().count == 2


def test_the_database_refuses_updates_and_deletes(log: EventLog) -> None:
    log.append("a", "info", {})
    db = sqlite3.connect(log.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE events SET type = 'b'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM events")


def tamper(path: Path, sql: str) -> None:
    """What an attacker with file access does: drop the guard, edit, leave."""
    db = sqlite3.connect(path)
    db.executescript(
        "DROP TRIGGER events_append_only_update; DROP TRIGGER events_append_only_delete;" + sql
    )
    db.close()


@pytest.mark.parametrize(
    ("sql", "broken", "problem"),
    [
        ('UPDATE events SET fields = \'{"code":"fine"}\' WHERE seq = 3', 3, "changed"),
        ("UPDATE events SET severity = 'info' WHERE seq = 2", 2, "changed"),
        ("DELETE FROM events WHERE seq = 4", 4, "missing"),
        ("UPDATE events SET hash = 'x' WHERE seq = 5", 5, "changed"),
    ],
)
def test_tampering_is_found_and_named(tmp_path: Path, sql: str, broken: int, problem: str) -> None:
    log = EventLog(tmp_path / "events.db")
    for i in range(6):
        log.append("sip.registered", "warning" if i == 1 else "info", {"i": i})
    log.close()
    tamper(tmp_path / "events.db", sql)
    result = EventLog(tmp_path / "events.db").verify()
    assert not result.ok
    assert result.first_broken == broken
    assert problem in result.problem


def test_rewriting_a_record_and_its_hash_breaks_the_next_link(tmp_path: Path) -> None:
    from agent.events import record_hash

    log = EventLog(tmp_path / "events.db")
    for i in range(4):
        log.append("x", "info", {"i": i})
    events = list(log.query())
    forged = record_hash(events[1].prev_hash, 2, events[1].time, "x", "info", '{"i":99}')
    log.close()
    tamper(
        tmp_path / "events.db",
        f"UPDATE events SET fields = '{{\"i\":99}}', hash = '{forged}' WHERE seq = 2",
    )
    result = EventLog(tmp_path / "events.db").verify()
    assert (result.ok, result.first_broken) == (False, 3)


def test_query_filters(log: EventLog) -> None:
    log.append("gate.refused", "warning", {"code": "tunnel_down"})
    log.append("sip.registered", "info", {"account": "alice@x"})
    log.append("call.placed", "info", {"uri": "sip:bob@x"})
    assert [e.type for e in log.query(types=("sip.registered",))] == ["sip.registered"]
    assert [e.type for e in log.query(min_severity="warning")] == ["gate.refused"]
    assert [e.type for e in log.query(text="bob")] == ["call.placed"]
    assert len(list(log.query(limit=2))) == 2
    assert list(log.query(since="2999-01-01")) == []


def test_no_secret_is_ever_stored(log: EventLog) -> None:
    event = log.append(
        "device.enrolled",
        "notice",
        {
            "sip_password": "hunter2",
            "token": "one-time",
            "nested": {"private_key": "PEM"},
            "list": [{"secret": "x"}],
            "device_id": "lab-1",
        },
    )
    stored = sqlite3.connect(log.path).execute("SELECT fields FROM events").fetchone()[0]
    for secret in ("hunter2", "one-time", "PEM"):
        assert secret not in stored
    assert event.fields["device_id"] == "lab-1"
    assert json.loads(stored)["nested"]["private_key"] == "(hidden)"


def test_states_become_events() -> None:
    assert event_for({"state": "refused", "code": "tunnel_down", "time": "t"})[:2] == (
        "gate.refused",
        "warning",
    )
    assert event_for({"state": "refused", "code": "auth_failed"})[0] == "sip.auth_failed"
    assert event_for({"state": "connecting", "path": "wireguard"})[0] == "gate.allowed"
    assert event_for({"state": "something_new"})[0] == "agent.something_new"
    assert "time" not in event_for({"state": "registered", "time": "t"})[2]


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.integers() | st.text(max_size=8),
        lambda c: st.dictionaries(st.text(max_size=10), c, max_size=3) | st.lists(c, max_size=3),
        max_leaves=8,
    )
)
def test_scrub_never_crashes(value: object) -> None:
    scrub(value)


def test_retention_keeps_the_chain_verifiable_with_a_signed_checkpoint(tmp_path: Path) -> None:
    from agent import credentials
    from lab import pki

    device = pki.issue(pki.make_ca("CA"), "alice", server=False)
    other = pki.issue(pki.make_ca("CA2"), "mallory", server=False)

    def checker(cert_pem: str):  # type: ignore[no-untyped-def]
        return lambda data, sig: credentials.signed_by(cert_pem, data, sig)

    log = EventLog(tmp_path / "events.db")
    for i in range(10):
        log.append("call.placed", "info", {"i": i})
    dropped = log.prune(lambda data: credentials.sign(device.key_pem, data), keep=4)
    assert dropped == 6
    assert [e.seq for e in log.query()] == [7, 8, 9, 10]
    assert log.verify(checker(device.cert_pem)).ok
    assert log.verify(checker(device.cert_pem)).count == 4
    # A checkpoint signed by someone else is not this device's.
    result = log.verify(checker(other.cert_pem))
    assert not result.ok and "not signed" in result.problem
    # Appending goes on from the chain's end.
    assert log.append("x", "info", {}).seq == 11
    log.close()
    # Removing the checkpoint (to hide the pruning) breaks the chain at the first record.
    tamper(tmp_path / "events.db", "DELETE FROM checkpoints")
    result = EventLog(tmp_path / "events.db").verify()
    assert (result.ok, result.first_broken) == (False, 1)


def test_ordinary_deletes_stay_forbidden_after_a_prune(tmp_path: Path) -> None:
    from agent import credentials
    from lab import pki

    device = pki.issue(pki.make_ca("CA"), "alice", server=False)
    log = EventLog(tmp_path / "events.db")
    for i in range(3):
        log.append("x", "info", {"i": i})
    log.prune(lambda data: credentials.sign(device.key_pem, data), before="2999-01-01")
    assert list(log.query()) == []
    assert log.verify().ok
    assert log.append("y", "info", {}).seq == 4
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        sqlite3.connect(log.path).execute("DELETE FROM events")
