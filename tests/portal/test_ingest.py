"""Posture reports arriving together are written in one transaction and still judged one by
one (portal.ingest), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from fastapi import HTTPException
from sqlalchemy import event, func, select
from sqlalchemy.exc import DataError

from agent import report, schemas
from portal.db import Device, Nonce, PostureRow
from portal.ingest import PostureWriter, SignedReport
from tests.portal.test_api import enroll, posture


def signed_report(device: str, key: str, doc: Any) -> SignedReport:
    body = doc if isinstance(doc, bytes) else report.body_of(doc)
    h = report.signed_headers(key, device, "POST", "/v1/posture", body)
    return SignedReport(
        device, h[schemas.H_TIME], h[schemas.H_NONCE], h[schemas.H_SIGNATURE], "/v1/posture", body
    )


def submit_together(writer: PostureWriter, reports: list[SignedReport]) -> list[Any]:
    async def all_at_once() -> list[Any]:
        return await asyncio.gather(*(writer.submit(r) for r in reports), return_exceptions=True)

    return asyncio.run(all_at_once())


def refusal(outcome: Any) -> tuple[int, str]:
    assert isinstance(outcome, HTTPException), outcome
    return outcome.status_code, outcome.detail["error"]


def test_reports_arriving_together_share_a_transaction_and_keep_their_own_verdicts(
    portal: Any,
) -> None:
    alice, alice_key, _ = enroll(portal, "alice")
    bob, bob_key, _ = enroll(portal, "bob")
    now = dt.datetime.now(dt.UTC)
    first, second = now + dt.timedelta(seconds=1), now + dt.timedelta(seconds=2)
    bobs = signed_report(bob, bob_key, posture(bob, first))
    batch = [
        signed_report(alice, alice_key, posture(alice, first)),
        signed_report(alice, alice_key, posture(alice, second, screen_lock=False)),
        bobs,
        bobs,  # the same request twice in one batch: the second is a replay
        signed_report("dev-unknown", bob_key, posture(bob, second)),
        signed_report(alice, bob_key, posture(alice, second)),  # bob's key for alice's device
        signed_report(bob, bob_key, posture(alice, second)),  # bob reporting about alice
        signed_report(bob, bob_key, b'{"device_id": 1}'),  # signed, but not a report
        signed_report(alice, alice_key, posture(alice, first)),  # older than its predecessor
    ]
    engine = portal.sessions.kw["bind"]
    commits = []
    event.listen(engine, "commit", lambda _conn: commits.append(1))
    outcomes = submit_together(portal.app.state.posture_writer, batch)

    assert len(commits) == 1  # nine requests, one transaction
    assert outcomes[0] == {"accepted": True, "compliant": True, "problems": []}
    assert outcomes[1] == {"accepted": True, "compliant": False, "problems": ["screen lock: off"]}
    assert outcomes[2]["accepted"] is True
    assert [refusal(o) for o in outcomes[3:]] == [
        (409, "replayed"),
        (401, "unknown_device"),
        (401, "bad_signature"),
        (403, "other_device"),
        (422, "invalid"),
        (409, "replayed"),  # not newer than the last report
    ]
    with portal.sessions() as session:
        assert session.scalar(select(func.count()).select_from(PostureRow)) == 3
        # A device shows its newest report of the batch.
        row = session.get(Device, alice)
        assert row is not None
        assert (row.last_report_time, row.compliant) == (second.isoformat(), False)
        # Every request whose signature was good left its nonce, refused or not.
        assert session.scalar(select(func.count()).select_from(Nonce)) == 6


def test_a_lone_report_is_written_at_once(portal: Any) -> None:
    alice, alice_key, _ = enroll(portal, "alice")
    outcome = submit_together(
        portal.app.state.posture_writer, [signed_report(alice, alice_key, posture(alice))]
    )
    assert outcome == [{"accepted": True, "compliant": True, "problems": []}]


# SQLite stores NUL characters; PostgreSQL's text cannot.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_report_the_database_cannot_store_fails_alone(portal: Any) -> None:
    alice, alice_key, _ = enroll(portal, "alice")
    bob, bob_key, _ = enroll(portal, "bob")
    outcomes = submit_together(
        portal.app.state.posture_writer,
        [
            signed_report(alice, alice_key, posture(alice)),
            signed_report(bob, bob_key, posture(bob, agent_version="0.1\x00")),
        ],
    )
    assert outcomes[0]["accepted"] is True
    assert isinstance(outcomes[1], DataError)  # the app answers it 422 (test_api_properties)
    with portal.sessions() as session:
        assert session.scalars(select(PostureRow.device_id)).all() == [alice]
        assert session.scalar(select(func.count()).select_from(Nonce)) == 1
