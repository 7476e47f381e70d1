"""Posture reports written in batches: every report that arrived while the last batch was
being written goes into the next, in one transaction and the same few database round trips.

A report's own work is small beside the round trips around it (the signer's row, the nonce,
the report, the device, the commit), and each is a wait on the database with nothing else to
do. So a portal process hands each signed report to one writer thread and goes on reading
requests; the writer takes every report waiting, checks each signature against its device's
certificate, and writes them together. A lone report is written at once, as a batch of one;
under load the batches grow by themselves. A batch the database refuses is written again one
report at a time, so a report it cannot store fails alone and the others are kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from agent import schemas
from portal import compliance
from portal.db import Device, Nonce, PolicyRow, PostureRow, utcnow
from portal.keys import verify_device
from portal.problems import problem

log = logging.getLogger(__name__)

# Reports per transaction at most: enough that a loaded process commits a few hundred times a
# second rather than a thousand, small enough that a batch's rows stay a short transaction.
MAX_BATCH = 64

_DEVICES = cast(Table, Device.__table__)
_NONCES = cast(Table, Nonce.__table__)
_POLICIES = cast(Table, PolicyRow.__table__)
_SIGNERS = select(
    _DEVICES.c.id,
    _DEVICES.c.cert_pem,
    _DEVICES.c.last_report_time,
    select(func.max(_POLICIES.c.version)).scalar_subquery().label("policy_version"),
).where(_DEVICES.c.id.in_(bindparam("ids", expanding=True)))
_NEW_POSTURE = insert(cast(Table, PostureRow.__table__))
_DEVICE_REPORTED = update(_DEVICES).where(_DEVICES.c.id == bindparam("device"))
_POLICY_DOCUMENT = select(_POLICIES.c.document).where(_POLICIES.c.version == bindparam("v"))


@dataclass(frozen=True)
class SignedReport:
    """A posture request whose signature headers are present and fresh, not yet verified."""

    device_id: str
    when: str
    nonce: str
    signature: str
    path: str
    body: bytes

    def signed_bytes(self) -> bytes:
        return schemas.signed_request_bytes("POST", self.path, self.when, self.nonce, self.body)


Outcome = dict[str, Any] | Exception


class PostureWriter:
    """One per portal process: `submit` from the event loop, the writing in one thread."""

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self._sessions = sessions
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="posture-writer")
        self._waiting: list[tuple[SignedReport, asyncio.Future[dict[str, Any]]]] = []
        self._writing = False
        self._policies: dict[int, schemas.Policy] = {}  # parsed once per version and process

    async def submit(self, report: SignedReport) -> dict[str, Any]:
        """The answer to this report, or the HTTPException that says why it was refused."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._waiting.append((report, answer))
        if not self._writing:
            self._writing = True
            self._drainer = loop.create_task(self._drain())  # kept: a task needs a reference
        return await answer

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                reports = [report for report, _ in batch]
                try:
                    outcomes = await loop.run_in_executor(self._thread, self._write, reports)
                    if len(outcomes) != len(batch):
                        raise RuntimeError(f"{len(batch)} reports, {len(outcomes)} outcomes")
                except Exception as exc:  # the writer itself broke: every report hears it
                    log.exception("the posture writer failed: this batch's reports are refused")
                    outcomes = [exc] * len(batch)
                for (_, answer), outcome in zip(batch, outcomes, strict=True):
                    if answer.done():  # its client went away
                        continue
                    if isinstance(outcome, Exception):
                        answer.set_exception(outcome)
                    else:
                        answer.set_result(outcome)
        finally:
            self._writing = False

    def _write(self, batch: list[SignedReport]) -> list[Outcome]:
        try:
            with self._sessions() as session:
                outcomes = self._judge_and_write(session, batch)
                session.commit()
                return outcomes
        except SQLAlchemyError as exc:
            if len(batch) == 1:
                return [exc]  # the app's handlers turn it into its answer (422 for bad data)
            return [self._write([report])[0] for report in batch]

    def _judge_and_write(self, session: Session, batch: list[SignedReport]) -> list[Outcome]:
        ids = sorted({report.device_id for report in batch})
        signers = {row.id: row for row in session.execute(_SIGNERS, {"ids": ids})}
        outcomes: list[Outcome] = [problem(500, "unjudged")] * len(batch)
        verified = []
        for i, signed in enumerate(batch):
            signer = signers.get(signed.device_id)
            if signer is None:
                outcomes[i] = problem(401, "unknown_device", signed.device_id)
            elif not verify_device(signer.cert_pem, signed.signed_bytes(), signed.signature):
                outcomes[i] = problem(401, "bad_signature", "not signed by this device's key")
            else:
                verified.append(i)
        if not verified:
            return outcomes
        # Every signed request's nonce is kept, whatever the report's fate: the same request
        # is not judged twice. One that was already there (another request, another process,
        # or earlier in this batch) does not come back.
        nonces = [{"device_id": batch[i].device_id, "nonce": batch[i].nonce} for i in verified]
        kept = self._insert_new(session).values(nonces)
        returned = session.execute(kept.returning(_NONCES.c.device_id, _NONCES.c.nonce))
        fresh = {(row.device_id, row.nonce) for row in returned}
        newest = {id_: signer.last_report_time for id_, signer in signers.items()}
        reports, devices = [], {}
        for i in verified:
            signed = batch[i]
            if (signed.device_id, signed.nonce) not in fresh:
                outcomes[i] = problem(409, "replayed", "this request was already received")
                continue
            fresh.discard((signed.device_id, signed.nonce))
            try:
                report = schemas.PostureReport.model_validate_json(signed.body)
            except ValidationError as exc:
                outcomes[i] = problem(422, "invalid", str(exc.errors()[:3]))
                continue
            if report.device_id != signed.device_id:
                outcomes[i] = problem(403, "other_device", "a report about another device")
                continue
            if newest[signed.device_id] and report.time <= newest[signed.device_id]:
                outcomes[i] = problem(409, "replayed", "not newer than the last report")
                continue
            newest[signed.device_id] = report.time
            policy_version = signers[signed.device_id].policy_version
            found = compliance.problems(report, self._policy(session, policy_version))
            document = report.model_dump()
            reports.append(
                {"device_id": signed.device_id, "report": document, "signature": signed.signature}
            )
            devices[signed.device_id] = {  # a device's newest report of the batch
                "device": signed.device_id,
                "posture": document,
                "last_report_time": report.time,
                "last_seen": utcnow(),
                "agent_version": report.agent_version,
                "compliant": not found,
                "problems": "; ".join(found),
            }
            outcomes[i] = {"accepted": True, "compliant": not found, "problems": found}
        if reports:
            session.execute(_NEW_POSTURE, reports)
            # In the order of their ids: two processes' batches touching the same devices
            # lock them in the same order, never waiting on each other in a circle.
            session.execute(_DEVICE_REPORTED, [devices[id_] for id_ in sorted(devices)])
        return outcomes

    @staticmethod
    def _insert_new(session: Session) -> Any:
        """INSERT that leaves out rows already there (both databases say it alike)."""
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        return dialect.insert(_NONCES).on_conflict_do_nothing()

    def _policy(self, session: Session, newest: int | None) -> schemas.Policy | None:
        """The newest policy, by its version read with this batch (another portal process may
        have published one); the document is parsed once per version."""
        if newest is None:
            return None
        if newest not in self._policies:
            document = session.execute(_POLICY_DOCUMENT, {"v": newest}).scalar_one()
            self._policies.clear()  # only the newest is ever needed again
            self._policies[newest] = schemas.Policy(**document)
        return self._policies[newest]
