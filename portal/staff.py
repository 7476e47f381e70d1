"""The helpdesk and admin side: login with a password AND a TOTP code (MFA is always on),
stateless signed session cookies (any portal process can check them), the device list and
the page that answers "why can't this person call?", and the admin actions.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from portal import app as api
from portal.db import Device, EnrollToken, EventRow, Staff, utcnow

COOKIE = "guardphone_session"
SESSION_S = 8 * 3600
SESSION_KEY = "session.key"
PAGE = 50
ROLES = ("helpdesk", "admin")
MAX_FAILED_LOGINS = 5  # then the account waits LOCKOUT_S (guessing TOTP codes takes long)
LOCKOUT_S = 15 * 60
_hasher = PasswordHasher()
_pages = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html"]),
)


@dataclass(frozen=True)
class Who:
    name: str
    role: str
    csrf: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def mount(app: FastAPI) -> None:
    path = app.state.config.state_dir / SESSION_KEY
    if not path.exists():
        api_keys_dir = path.parent
        api_keys_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    app.state.session_key = path.read_bytes()
    app.include_router(router)


def add_staff(session: Session, name: str, password: str, role: str) -> str:
    """A helpdesk or admin account; returns the TOTP secret to put in an authenticator app."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 12:
        raise ValueError("the password must have at least 12 characters")
    secret = pyotp.random_base32()
    session.merge(
        Staff(name=name, password_hash=_hasher.hash(password), totp_secret=secret, role=role)
    )
    session.commit()
    return secret


def add_token(
    session: Session, user: str, sip_password: str, hours: int = 72, token: str | None = None
) -> str:
    """A one-time enrollment token for `user` (only its digest is stored); `token` lets a
    provisioning script (the lab) choose it."""
    token = token or secrets.token_urlsafe(24)
    session.add(
        EnrollToken(
            token_sha256=hashlib.sha256(token.encode()).hexdigest(),
            user=user,
            sip_password=sip_password,
            expires_at=utcnow() + dt.timedelta(hours=hours),
        )
    )
    session.commit()
    return token


# -- sessions --------------------------------------------------------------------------


def _sign(key: bytes, payload: dict[str, Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload, sort_keys=True).encode()).decode()
    mac = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def _unsign(key: bytes, value: str) -> dict[str, Any] | None:
    # compare_digest on str raises for non-ASCII (a 500 for a crafted cookie): bytes here,
    # and in every comparison below.
    body, _, mac = value.rpartition(".")
    good = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    if not body or not hmac.compare_digest(mac.encode(), good.encode()):
        return None
    payload: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body))
    return payload if payload.get("exp", 0) > time.time() else None


def who(request: Request) -> Who | None:
    payload = _unsign(request.app.state.session_key, request.cookies.get(COOKIE, ""))
    if payload is None:
        return None
    return Who(payload["name"], payload["role"], payload["csrf"])


def staff_only(request: Request) -> Who:
    found = who(request)
    if found is None:
        raise HTTPException(401, {"error": "login_required"})
    return found


def admin_only(me: Who = Depends(staff_only)) -> Who:  # noqa: B008
    if not me.admin:
        raise HTTPException(403, {"error": "admin_only"})
    return me


router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
def login_page(error: str = "") -> str:
    return _pages.get_template("login.html").render(error=error, me=None)


@router.post("/login")
def login(
    request: Request,
    name: str = Form(...),
    password: str = Form(...),
    code: str = Form(...),
    session: Session = Depends(api.db),  # noqa: B008
) -> RedirectResponse:
    person = session.get(Staff, name)
    now = utcnow()
    if person is not None and person.locked_until is not None:
        until = person.locked_until
        if (until if until.tzinfo else until.replace(tzinfo=dt.UTC)) > now:
            return RedirectResponse(
                "/login?error=Too+many+failed+attempts:+try+again+in+15+minutes.",
                status_code=303,
            )
    ok = False
    if person is not None:
        try:
            ok = _hasher.verify(person.password_hash, password)
        except VerificationError:
            ok = False
    # The code of the previous, current or next 30 s step, and never one already used.
    step = int(time.time() // 30)
    matched = None
    if person is not None:
        totp = pyotp.TOTP(person.totp_secret)
        matched = next((s for s in (step - 1, step, step + 1) if _matches(totp, code, s)), None)
    if not ok or person is None or matched is None or matched <= person.totp_last_step:
        if person is not None:  # the count is in the database: every process sees it
            person.failed_logins += 1
            if person.failed_logins >= MAX_FAILED_LOGINS:
                person.locked_until = now + dt.timedelta(seconds=LOCKOUT_S)
                person.failed_logins = 0
            session.commit()
        return RedirectResponse("/login?error=Wrong+name,+password+or+code.", status_code=303)
    person.totp_last_step = matched
    person.failed_logins = 0
    session.commit()
    cookie = _sign(
        request.app.state.session_key,
        {
            "name": person.name,
            "role": person.role,
            "csrf": secrets.token_urlsafe(16),
            "exp": time.time() + SESSION_S,
        },
    )
    out = RedirectResponse("/helpdesk", status_code=303)
    out.set_cookie(COOKIE, cookie, max_age=SESSION_S, httponly=True, secure=True, samesite="strict")
    return out


def _matches(totp: pyotp.TOTP, code: str, step: int) -> bool:
    return hmac.compare_digest(totp.generate_otp(step).encode(), code.strip().encode())


@router.post("/logout")
def logout() -> RedirectResponse:
    out = RedirectResponse("/login", status_code=303)
    out.delete_cookie(COOKIE)
    return out


# -- the helpdesk's reading -------------------------------------------------------------


def find_devices(
    session: Session, q: str = "", noncompliant: bool = False, offset: int = 0
) -> list[Device]:
    query = select(Device).order_by(Device.user, Device.id)
    if q:
        like = f"%{q}%"
        query = query.where(
            or_(Device.user.ilike(like), Device.hostname.ilike(like), Device.id.ilike(like))
        )
    if noncompliant:
        query = query.where(or_(Device.compliant.is_(False), Device.compliant.is_(None)))
    return list(session.scalars(query.offset(offset).limit(PAGE)))


def device_view(session: Session, device: Device) -> dict[str, Any]:
    events = session.scalars(
        select(EventRow)
        .where(
            EventRow.device_id == device.id,
            EventRow.severity.in_(("warning", "error", "critical", "notice")),
        )
        .order_by(EventRow.seq.desc())
        .limit(20)
    )
    posture = device.posture or {}
    return {
        "id": device.id,
        "user": device.user,
        "hostname": device.hostname,
        "enrolled_at": device.enrolled_at.isoformat(),
        "last_seen": device.last_seen.isoformat() if device.last_seen else None,
        "agent_version": device.agent_version,
        "compliant": device.compliant,
        "problems": [p for p in device.problems.split("; ") if p],
        "posture": posture,
        "checks": posture.get("checks", []),
        "failing": [c for c in posture.get("checks", []) if c.get("result") == "fail"],
        "events": [
            {
                "seq": e.seq,
                "time": e.time,
                "type": e.type,
                "severity": e.severity,
                "fields": e.fields,
            }
            for e in events
        ],
    }


@router.get("/v1/devices")
def list_devices(
    q: Annotated[str, Query(max_length=200)] = "",
    noncompliant: bool = False,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    me: Who = Depends(staff_only),  # noqa: B008
    session: Session = Depends(api.db),  # noqa: B008
) -> list[dict[str, Any]]:
    return [
        {
            "id": d.id,
            "user": d.user,
            "hostname": d.hostname,
            "compliant": d.compliant,
            "problems": d.problems,
            "last_seen": d.last_seen.isoformat() if d.last_seen else None,
        }
        for d in find_devices(session, q, noncompliant, offset)
    ]


@router.get("/v1/devices/{device_id}")
def get_device(
    device_id: str,
    me: Who = Depends(staff_only),  # noqa: B008
    session: Session = Depends(api.db),  # noqa: B008
) -> dict[str, Any]:
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(404, {"error": "no_such_device"})
    return device_view(session, device)


@router.get("/helpdesk", response_class=HTMLResponse, response_model=None)
def devices_page(
    request: Request,
    q: Annotated[str, Query(max_length=200)] = "",
    noncompliant: bool = False,
    session: Session = Depends(api.db),  # noqa: B008
) -> HTMLResponse | RedirectResponse:
    me = who(request)
    if me is None:
        return RedirectResponse("/login", status_code=303)
    rows = find_devices(session, q, noncompliant)
    return HTMLResponse(
        _pages.get_template("devices.html").render(me=me, rows=rows, q=q, noncompliant=noncompliant)
    )


@router.get("/helpdesk/devices/{device_id}", response_class=HTMLResponse, response_model=None)
def device_page(
    device_id: str,
    request: Request,
    session: Session = Depends(api.db),  # noqa: B008
) -> HTMLResponse | RedirectResponse:
    me = who(request)
    if me is None:
        return RedirectResponse("/login", status_code=303)
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(404, {"error": "no_such_device"})
    view = device_view(session, device)
    return HTMLResponse(_pages.get_template("device.html").render(me=me, d=view))


# -- admin actions ----------------------------------------------------------------------


@router.post("/helpdesk/devices/{device_id}/commands")
def command_form(
    device_id: str,
    request: Request,
    kind: str = Form(...),
    csrf: str = Form(...),
    me: Who = Depends(admin_only),  # noqa: B008
    session: Session = Depends(api.db),  # noqa: B008
) -> RedirectResponse:
    if not hmac.compare_digest(csrf.encode(), me.csrf.encode()):
        raise HTTPException(403, {"error": "csrf"})
    _command(request, session, device_id, kind, "from the helpdesk page", me)
    return RedirectResponse(f"/helpdesk/devices/{device_id}", status_code=303)


class _Admin(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored


class CommandRequest(_Admin):
    kind: Literal["suspend", "resume", "reenroll", "report_now"]
    reason: str = Field(default="", max_length=500)


class PolicyRequest(_Admin):
    """A new policy: what is not given takes the default (as in agent.schemas.Policy)."""

    min_agent_version: str = Field(default="0.0.0", pattern=r"^[0-9]+(\.[0-9]+){0,3}$")
    below_min_version: Literal["refuse", "warn"] = "warn"
    report_interval_s: int = Field(default=900, ge=60, le=86400)


class TokenRequest(_Admin):
    user: str = Field(min_length=1, max_length=128)
    sip_password: str = Field(min_length=1, max_length=256)
    hours: int = Field(default=72, ge=1, le=720)


@router.post("/v1/admin/devices/{device_id}/commands")
def command_api(
    device_id: str,
    body: CommandRequest,
    request: Request,
    me: Who = Depends(admin_only),  # noqa: B008
    session: Session = Depends(api.db),  # noqa: B008
) -> dict[str, Any]:
    row = _command(request, session, device_id, body.kind, body.reason, me)
    return {"id": row.id, "kind": row.kind}


def _command(
    request: Request, session: Session, device_id: str, kind: str, reason: str, me: Who
) -> Any:
    if kind not in ("suspend", "resume", "reenroll", "report_now"):
        raise HTTPException(422, {"error": "invalid", "detail": f"unknown command {kind!r}"})
    if session.get(Device, device_id) is None:
        raise HTTPException(404, {"error": "no_such_device"})
    return api.issue_command(session, api.keys(request), device_id, kind, reason, me.name)


@router.post("/v1/admin/policy")
def new_policy(
    body: PolicyRequest,
    request: Request,
    me: Who = Depends(admin_only),  # noqa: B008
    session: Session = Depends(api.db),  # noqa: B008
) -> dict[str, Any]:
    return api.publish_policy(session, api.keys(request), **body.model_dump()).model_dump()


@router.post("/v1/admin/tokens")
def new_token(
    body: TokenRequest,
    me: Who = Depends(admin_only),  # noqa: B008
    session: Session = Depends(api.db),  # noqa: B008
) -> dict[str, str]:
    token = add_token(session, body.user, body.sip_password, body.hours)
    return {"token": token}
