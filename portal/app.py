"""The portal's API for devices: enrollment, posture and event ingest, policy, commands.

Devices authenticate every request with their enrolled key (agent.schemas: a signature over
method, path, time, nonce and the body's digest); the nonce is stored in the database, so a
replay is refused by whichever portal process it reaches.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi import Path as PathPart
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from agent import schemas
from portal.db import (
    CommandRow,
    Device,
    EnrollToken,
    EventRow,
    Nonce,
    PolicyRow,
    engine_for,
    sessions,
    utcnow,
)
from portal.ingest import PostureWriter, SignedReport
from portal.keys import PortalKeys, verify_device
from portal.problems import problem

API_VERSION = "1"
M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PortalConfig:
    db_url: str
    state_dir: Path
    sip_domain: str


class EnrollRequest(BaseModel):
    token: str
    csr: str
    device: dict[str, str] = {}


def create_app(config: PortalConfig) -> FastAPI:
    from portal import staff  # the helpdesk side shares the app

    engine = engine_for(config.db_url)
    app = FastAPI(title="guardphone portal", version=API_VERSION)
    app.state.config = config
    app.state.sessions = sessions(engine)
    app.state.keys = PortalKeys(config.state_dir)
    app.state.posture_writer = PostureWriter(app.state.sessions)
    app.include_router(device_api)
    staff.mount(app)
    app.add_exception_handler(DataError, _unstorable)
    return app


async def _unstorable(request: Request, exc: Exception) -> JSONResponse:
    """A value the database cannot hold (PostgreSQL refuses NUL characters in text and
    JSON): it came from the client, so it is a 422 that says so, never a 500."""
    log.warning("%s %s: input the database cannot store: %s", request.method, request.url.path, exc)
    detail = "a value the database cannot store (a NUL character, or a number out of range)"
    return JSONResponse({"detail": {"error": "invalid", "detail": detail}}, status_code=422)


async def db(request: Request) -> Any:
    # An async dependency: FastAPI runs a sync generator's entry and exit in its thread pool,
    # two thread hops per request (~0.15 ms of every posture report). Opening and closing a
    # session does no I/O until it is used.
    with request.app.state.sessions() as session:
        yield session


def keys(request: Request) -> PortalKeys:
    return request.app.state.keys  # type: ignore[no-any-return]


# What every signed request reads and writes, as Core statements on the tables built once:
# the ORM's identity map and unit of work and per-request statement building cost more than
# the database work itself at the rate a fleet reports (bench/portal.py).
_DEVICES = cast(Table, Device.__table__)
_SIGNER = select(_DEVICES.c.id, _DEVICES.c.user, _DEVICES.c.cert_pem).where(
    _DEVICES.c.id == bindparam("device")
)
_NEW_NONCE = insert(cast(Table, Nonce.__table__))


@dataclass(frozen=True)
class Signer:
    """The enrolled device that signed a request: what its endpoints need to know of it."""

    id: str
    user: str


def signed_headers(request: Request) -> tuple[str, str, str, str]:
    """The signing device, time, nonce and signature of a request, or 401 if any is missing
    or the time is too far from now."""
    h = request.headers
    device_id, when, nonce = h.get(schemas.H_DEVICE), h.get(schemas.H_TIME), h.get(schemas.H_NONCE)
    signature = h.get(schemas.H_SIGNATURE)
    if not (device_id and when and nonce and signature) or len(nonce) > 64:
        raise problem(401, "signature_required", "device requests must be signed")
    try:
        sent = dt.datetime.fromisoformat(when)
    except ValueError:
        raise problem(401, "bad_time", when) from None
    if sent.tzinfo is None or abs((utcnow() - sent).total_seconds()) > schemas.MAX_SKEW_S:
        raise problem(401, "stale_request", "the request's time is too far from now")
    return device_id, when, nonce, signature


async def device(request: Request, session: Session = Depends(db)) -> Signer:  # noqa: B008
    """The enrolled device that signed this request, or 401."""
    device_id, when, nonce, signature = signed_headers(request)
    found = session.execute(_SIGNER, {"device": device_id}).first()
    if found is None:
        raise problem(401, "unknown_device", device_id)
    body = await request.body()
    signed = schemas.signed_request_bytes(request.method, request.url.path, when, nonce, body)
    if not verify_device(found.cert_pem, signed, signature):
        raise problem(401, "bad_signature", "not signed by this device's key")
    # The nonce is written in the request's own transaction (one commit per request; every
    # device endpoint commits): a second request with it fails here, or at that commit,
    # whichever portal process gets it.
    try:
        session.execute(_NEW_NONCE, {"device_id": device_id, "nonce": nonce})
    except IntegrityError:
        session.rollback()
        raise problem(409, "replayed", "this request was already received") from None
    return Signer(found.id, found.user)


device_api = APIRouter(prefix="/v1")


@device_api.post("/enroll")
def enroll(
    body: EnrollRequest,
    request: Request,
    session: Session = Depends(db),  # noqa: B008
) -> JSONResponse:
    digest = hashlib.sha256(body.token.encode()).hexdigest()
    token = session.get(EnrollToken, digest)
    now = utcnow()
    if token is None or token.used_at is not None or _aware(token.expires_at) < now:
        return JSONResponse({"error": "token_invalid"}, status_code=401)
    try:
        chain = keys(request).issue(token.user, body.csr)
    except ValueError as exc:
        return JSONResponse({"error": "csr_invalid", "detail": str(exc)}, status_code=400)
    device_id = "dev-" + secrets.token_hex(8)
    # Spend the token atomically: of two racing requests (any portal process) one wins.
    spent = session.execute(
        update(EnrollToken)
        .where(EnrollToken.token_sha256 == digest, EnrollToken.used_at.is_(None))
        .values(used_at=now, device_id=device_id)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        return JSONResponse({"error": "token_invalid"}, status_code=401)
    session.add(
        Device(
            id=device_id,
            user=token.user,
            hostname=body.device.get("hostname", "")[:255],
            agent_version=body.device.get("agent_version", "")[:32],
            cert_pem=chain,
        )
    )
    session.commit()
    answer = schemas.EnrollAnswer(
        certificate_chain=chain,
        device_id=device_id,
        sip={
            "user": token.user,
            "domain": request.app.state.config.sip_domain,
            "password": token.sip_password,
        },
        policy_key=keys(request).policy_public_pem,
    )
    return JSONResponse(answer.model_dump())


class RenewRequest(BaseModel):
    csr: str


@device_api.post("/renew")
async def renew(
    request: Request,
    me: Signer = Depends(device),  # noqa: B008 - signed by the current key
    session: Session = Depends(db),  # noqa: B008
) -> JSONResponse:
    """A fresh certificate for a fresh key, before the current one ends; from now on the
    device signs with the new key."""
    body = _parse(RenewRequest, await request.body())
    try:
        chain = keys(request).issue(me.user, body.csr)
    except ValueError as exc:
        session.commit()  # the request's nonce
        return JSONResponse({"error": "csr_invalid", "detail": str(exc)}, status_code=400)
    row = session.get(Device, me.id)
    assert row is not None
    row.cert_pem = chain
    session.commit()
    return JSONResponse({"certificate_chain": chain, "device_id": me.id})


@device_api.post("/posture")
async def posture(request: Request) -> dict[str, Any]:
    # Signature, nonce and report are judged and stored together with the other reports
    # arriving meanwhile (portal.ingest).
    device_id, when, nonce, signature = signed_headers(request)
    body = await request.body()
    signed = SignedReport(device_id, when, nonce, signature, request.url.path, body)
    writer: PostureWriter = request.app.state.posture_writer
    return await writer.submit(signed)


@device_api.post("/events")
async def events(
    request: Request,
    me: Signer = Depends(device),  # noqa: B008
    session: Session = Depends(db),  # noqa: B008
) -> dict[str, Any]:
    batch = _parse(schemas.EventBatch, await request.body())
    if batch.device_id != me.id:
        session.commit()  # the request's nonce
        raise problem(403, "other_device", "events of another device")
    nonce = request.headers[schemas.H_NONCE]
    for attempt in range(3):  # another process may be storing the same batch right now
        if attempt:
            session.add(Nonce(device_id=me.id, nonce=nonce))  # the rollback took it too
        seqs = [e.seq for e in batch.events]
        have = set(
            session.scalars(
                select(EventRow.seq).where(EventRow.device_id == me.id, EventRow.seq.in_(seqs))
            )
        )
        fresh = [e for e in batch.events if e.seq not in have]
        session.add_all(EventRow(device_id=me.id, **e.model_dump()) for e in fresh)
        try:
            session.commit()
            break
        except IntegrityError:
            session.rollback()
    else:
        raise problem(503, "busy", "try again")
    return {
        "accepted": len(fresh),
        "duplicates": len(batch.events) - len(fresh),
        "acked_through": max(seqs, default=0),
    }


@device_api.get("/policy")
def policy(
    request: Request,
    me: Signer = Depends(device),  # noqa: B008
    session: Session = Depends(db),  # noqa: B008
) -> Response:
    session.commit()  # the request's nonce
    row = session.scalars(select(PolicyRow).order_by(PolicyRow.version.desc()).limit(1)).first()
    if row is None:
        return JSONResponse({"error": "no_policy"}, status_code=404)
    etag = f'"{row.version}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    signed = schemas.SignedPolicy(policy=schemas.Policy(**row.document), signature=row.signature)
    return JSONResponse(signed.model_dump(), headers={"ETag": etag})


@device_api.get("/commands")
def commands(
    me: Signer = Depends(device),  # noqa: B008
    session: Session = Depends(db),  # noqa: B008
) -> list[dict[str, Any]]:
    session.commit()  # the request's nonce
    rows = session.scalars(
        select(CommandRow)
        .where(CommandRow.device_id == me.id, CommandRow.done_at.is_(None))
        .order_by(CommandRow.id)
    )
    return [
        schemas.SignedCommand(command=command_of(row), signature=row.signature).model_dump()
        for row in rows
    ]


@device_api.post("/commands/{command_id}/done")
def command_done(
    command_id: Annotated[int, PathPart(ge=1, le=2**63 - 1)],  # what a BIGINT column holds
    me: Signer = Depends(device),  # noqa: B008
    session: Session = Depends(db),  # noqa: B008
) -> dict[str, Any]:
    row = session.get(CommandRow, command_id)
    if row is None or row.device_id != me.id:
        session.commit()  # the request's nonce
        raise problem(404, "no_such_command", str(command_id))
    row.done_at = row.done_at or utcnow()
    session.commit()
    return {"done": command_id}


def command_of(row: CommandRow) -> schemas.Command:
    return schemas.Command(
        id=row.id,
        device_id=row.device_id,
        kind=row.kind,  # type: ignore[arg-type]
        issued_at=row.issued_at,
        reason=row.reason,
    )


def issue_command(
    session: Session, portal_keys: PortalKeys, device_id: str, kind: str, reason: str, by: str
) -> CommandRow:
    """A signed command for a device (the signature covers its id, so it is made after the
    row has one)."""
    row = CommandRow(
        device_id=device_id,
        kind=kind,
        reason=reason,
        issued_at=utcnow().isoformat(),
        issued_by=by,
        signature="",
    )
    session.add(row)
    session.flush()
    row.signature = portal_keys.sign(command_of(row).model_dump())
    session.commit()
    return row


def publish_policy(session: Session, portal_keys: PortalKeys, **fields: Any) -> schemas.Policy:
    """A new policy version, signed; versions only grow."""
    newest = session.scalars(select(PolicyRow.version).order_by(PolicyRow.version.desc())).first()
    document = schemas.Policy(
        version=(newest or 0) + 1, issued_at=utcnow().isoformat(), **fields
    ).model_dump()
    session.add(
        PolicyRow(
            version=document["version"], document=document, signature=portal_keys.sign(document)
        )
    )
    session.commit()
    return schemas.Policy(**document)


def _parse(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise problem(422, "invalid", str(exc.errors()[:3])) from None


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
