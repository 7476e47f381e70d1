"""The portal's device API, on SQLite and PostgreSQL: enrollment with single-use expiring
tokens, signed posture and event ingest (replays and other devices refused, batches
idempotent), signed policy with ETag, and signed commands."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pyotp

from agent import report, schemas
from agent.enroll import _new_key_and_csr
from portal import staff
from portal.db import EnrollToken


def token_for(portal: Any, user: str = "alice", hours: int = 1) -> str:
    with portal.sessions() as session:
        return staff.add_token(session, user, "sip-secret-123", hours)


def enroll(portal: Any, user: str = "alice") -> tuple[str, str, dict[str, Any]]:
    key_pem, csr = _new_key_and_csr(user)
    answer = portal.post("/v1/enroll", json={"token": token_for(portal, user), "csr": csr})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return body["device_id"], key_pem, body


def signed(portal: Any, method: str, path: str, device: str, key: str, doc: Any = None) -> Any:
    body = report.body_of(doc) if doc is not None else b""
    headers = report.signed_headers(key, device, method, path, body)
    return portal.request(method, path, content=body, headers=headers)


def posture(device: str, when: dt.datetime | None = None, **changes: Any) -> dict[str, Any]:
    doc = schemas.PostureReport(
        device_id=device,
        account="alice@corp.example",
        time=(when or dt.datetime.now(dt.UTC)).isoformat(),
        agent_version="0.1.0",
        disk=schemas.DiskFacts(root_encrypted=True, home_encrypted=True),
        firewall_active=True,
        screen_lock=True,
        os=schemas.OsFacts(name="Debian", version="12", pending_security_updates=0),
        srtp_mandatory=True,
        sip=schemas.SipFacts(registered=True, plaintext_listener=False),
    ).model_dump()
    doc.update(changes)
    return doc


def test_enrollment_token_works_once_and_expires(portal: Any) -> None:
    device, _, body = enroll(portal)
    assert device.startswith("dev-") and body["sip"] == {
        "user": "alice",
        "domain": "corp.example",
        "password": "sip-secret-123",
    }
    assert "BEGIN PUBLIC KEY" in body["policy_key"]
    assert body["certificate_chain"].count("BEGIN CERTIFICATE") == 2
    # The same token again: refused. An expired one: refused.
    token = token_for(portal)
    _, csr = _new_key_and_csr("alice")
    assert portal.post("/v1/enroll", json={"token": token, "csr": csr}).status_code == 200
    again = portal.post("/v1/enroll", json={"token": token, "csr": csr})
    assert again.status_code == 401 and again.json() == {"error": "token_invalid"}
    expired = token_for(portal, hours=-1)
    assert portal.post("/v1/enroll", json={"token": expired, "csr": csr}).status_code == 401
    bad = portal.post("/v1/enroll", json={"token": token_for(portal), "csr": "not a csr"})
    assert bad.status_code == 400 and bad.json()["error"] == "csr_invalid"
    with portal.sessions() as session:  # only digests are stored, never the token itself
        assert all(
            len(t.token_sha256) == 64 and t.token_sha256 != token
            for t in session.query(EnrollToken)
        )


def test_signed_posture_is_stored_and_replays_and_impostors_are_refused(portal: Any) -> None:
    device, key, _ = enroll(portal)
    other, other_key, _ = enroll(portal, "bob")
    doc = posture(device)
    body = report.body_of(doc)
    headers = report.signed_headers(key, device, "POST", "/v1/posture", body)
    first = portal.post("/v1/posture", content=body, headers=headers)
    assert first.status_code == 200 and first.json()["compliant"] is True
    # The very same request again (same nonce): a replay.
    assert portal.post("/v1/posture", content=body, headers=headers).status_code == 409
    # A fresh signature over the same (old) report: not newer than the last one.
    assert signed(portal, "POST", "/v1/posture", device, key, doc).status_code == 409
    # Bob's key claiming to be alice's device; bob reporting about alice's device.
    assert (
        signed(portal, "POST", "/v1/posture", device, other_key, posture(device)).status_code == 401
    )
    assert (
        signed(portal, "POST", "/v1/posture", other, other_key, posture(device)).status_code == 403
    )
    # A body changed after signing.
    headers = report.signed_headers(
        key, device, "POST", "/v1/posture", report.body_of(posture(device))
    )
    tampered = report.body_of(posture(device, firewall_active=True, screen_lock=False))
    assert portal.post("/v1/posture", content=tampered, headers=headers).status_code == 401
    # Too old a request time.
    stale = report.signed_headers(key, device, "POST", "/v1/posture", body)
    stale[schemas.H_TIME] = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    assert portal.post("/v1/posture", content=body, headers=stale).status_code == 401
    # Unknown facts are not compliant, and say so.
    late = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    answer = signed(
        portal, "POST", "/v1/posture", device, key, posture(device, late, firewall_active=None)
    )
    assert answer.json() == {
        "accepted": True,
        "compliant": False,
        "problems": ["host firewall: unknown"],
    }


def test_event_batches_are_idempotent_by_device_and_sequence(portal: Any) -> None:
    device, key, _ = enroll(portal)
    events = [
        {
            "seq": i,
            "time": f"2026-11-26T10:00:0{i}+00:00",
            "type": "call.placed",
            "severity": "info",
            "fields": {"uri": f"sip:{i}@x"},
            "prev_hash": "0" * 64,
            "hash": f"{i:064d}",
        }
        for i in range(1, 6)
    ]
    batch = {"device_id": device, "events": events[:3]}
    assert signed(portal, "POST", "/v1/events", device, key, batch).json() == {
        "accepted": 3,
        "duplicates": 0,
        "acked_through": 3,
    }
    again = {"device_id": device, "events": events[1:]}  # resent after a lost answer
    assert signed(portal, "POST", "/v1/events", device, key, again).json() == {
        "accepted": 2,
        "duplicates": 2,
        "acked_through": 5,
    }
    other, other_key, _ = enroll(portal, "bob")
    foreign = {"device_id": device, "events": events}
    assert signed(portal, "POST", "/v1/events", other, other_key, foreign).status_code == 403


def test_policy_is_signed_versioned_and_cached_by_etag(portal: Any) -> None:
    device, key, answer = enroll(portal)
    assert signed(portal, "GET", "/v1/policy", device, key).status_code == 404  # none yet
    with portal.sessions() as session:
        from portal.app import publish_policy

        keys = portal.app.state.keys
        publish_policy(session, keys, min_agent_version="0.2.0", below_min_version="refuse")
        publish_policy(session, keys, min_agent_version="0.3.0")
    got = signed(portal, "GET", "/v1/policy", device, key)
    assert got.status_code == 200 and got.headers["etag"] == '"2"'
    keeper = report.PolicyKeeper(answer["policy_key"])
    assert keeper.offer(got.json()).min_agent_version == "0.3.0"
    headers = report.signed_headers(key, device, "GET", "/v1/policy", b"")
    assert portal.get("/v1/policy", headers={**headers, "If-None-Match": '"2"'}).status_code == 304
    # A policy changed in transit, and an older one than the one in force, are refused.
    forged = got.json()
    forged["policy"]["below_min_version"] = "warn"
    forged["policy"]["min_agent_version"] = "0.0.1"
    try:
        keeper.offer(forged)
        raise AssertionError("a forged policy was accepted")
    except report.PolicyRefused as exc:
        assert "not signed" in str(exc)
    with portal.sessions() as session:
        from portal.db import PolicyRow

        first = session.get(PolicyRow, 1)
        old = {"policy": first.document, "signature": first.signature}
    try:
        keeper.offer(old)
        raise AssertionError("an older policy was accepted")
    except report.PolicyRefused as exc:
        assert "older than the one in force" in str(exc)
    assert keeper.current is not None and keeper.current.version == 2


def test_commands_are_signed_listed_until_done_and_only_for_their_device(portal: Any) -> None:
    device, key, answer = enroll(portal)
    other, other_key, _ = enroll(portal, "bob")
    with portal.sessions() as session:
        from portal.app import issue_command

        issue_command(session, portal.app.state.keys, device, "suspend", "fraud alert", "it-admin")
    pending = signed(portal, "GET", "/v1/commands", device, key).json()
    assert [c["command"]["kind"] for c in pending] == ["suspend"]
    command = pending[0]
    assert report.signed_by_portal(answer["policy_key"], command["command"], command["signature"])
    tampered = {**command["command"], "kind": "resume"}
    assert not report.signed_by_portal(answer["policy_key"], tampered, command["signature"])
    assert signed(portal, "GET", "/v1/commands", other, other_key).json() == []
    cid = command["command"]["id"]
    assert signed(portal, "POST", f"/v1/commands/{cid}/done", other, other_key).status_code == 404
    assert signed(portal, "POST", f"/v1/commands/{cid}/done", device, key).status_code == 200
    assert signed(portal, "GET", "/v1/commands", device, key).json() == []


def test_staff_need_password_and_a_fresh_totp_code(portal: Any) -> None:
    with portal.sessions() as session:
        secret = staff.add_staff(session, "hanna", "correct horse battery", "helpdesk")
    assert portal.get("/v1/devices").status_code == 401
    code = pyotp.TOTP(secret).now()
    wrong = portal.post(
        "/login",
        data={"name": "hanna", "password": "wrong password!", "code": code},
        follow_redirects=False,
    )
    assert wrong.status_code == 303 and "error" in wrong.headers["location"]
    no_code = portal.post(
        "/login", data={"name": "hanna", "password": "correct horse battery", "code": "000000"},
        follow_redirects=False,
    )  # fmt: skip
    assert "error" in no_code.headers["location"]
    ok = portal.post(
        "/login", data={"name": "hanna", "password": "correct horse battery", "code": code},
        follow_redirects=False,
    )  # fmt: skip
    assert ok.headers["location"] == "/helpdesk"
    assert portal.get("/v1/devices").status_code == 200
    # The same code cannot be used twice (someone who saw it over a shoulder).
    portal.cookies.clear()
    replay = portal.post(
        "/login", data={"name": "hanna", "password": "correct horse battery", "code": code},
        follow_redirects=False,
    )  # fmt: skip
    assert "error" in replay.headers["location"]
    # A helpdesk person may read but not act.
    assert portal.post("/v1/admin/policy", json={}).status_code == 401
    with portal.sessions() as session:
        try:
            staff.add_staff(session, "short", "tooshort", "admin")
            raise AssertionError("a short password was accepted")
        except ValueError as exc:
            assert "12 characters" in str(exc)


def test_openapi_document_is_checked_in_and_current() -> None:
    from pathlib import Path

    from portal.__main__ import openapi

    stored = json.loads((Path(__file__).parents[2] / "portal" / "openapi.json").read_text())
    assert stored == json.loads(json.dumps(openapi())), "run `python -m portal openapi`"


def test_renewal_is_signed_with_the_current_key_and_the_new_key_takes_over(portal: Any) -> None:
    device, old_key, _ = enroll(portal)
    new_key, csr = _new_key_and_csr("alice")
    renewed = signed(portal, "POST", "/v1/renew", device, old_key, {"csr": csr})
    assert renewed.status_code == 200 and renewed.json()["device_id"] == device
    from agent import credentials, keystore

    creds = keystore.Credentials(new_key, renewed.json()["certificate_chain"], "pw")
    assert credentials.check_device(creds, "alice").subject_cn == "alice"  # key matches cert
    # From now on only the new key is this device.
    assert (
        signed(portal, "POST", "/v1/posture", device, old_key, posture(device)).status_code == 401
    )
    assert (
        signed(portal, "POST", "/v1/posture", device, new_key, posture(device)).status_code == 200
    )
    _, bob_key, _ = enroll(portal, "bob")
    _, bob_csr = _new_key_and_csr("bob")
    stolen = signed(portal, "POST", "/v1/renew", device, bob_key, {"csr": bob_csr})
    assert stolen.status_code == 401  # bob's key cannot renew alice's device


def login(portal: Any, name: str, password: str, code: str) -> str:
    answer = portal.post(
        "/login", data={"name": name, "password": password, "code": code}, follow_redirects=False
    )
    return str(answer.headers["location"])


def test_five_failed_logins_lock_the_account_even_with_the_right_code_after(portal: Any) -> None:
    with portal.sessions() as session:
        secret = staff.add_staff(session, "olga", "correct horse battery", "admin")
    for _ in range(5):
        assert "error" in login(portal, "olga", "guessing......", "000000")
    # Now even the right password and code are refused for a while.
    right = login(portal, "olga", "correct horse battery", pyotp.TOTP(secret).now())
    assert "Too+many+failed+attempts" in right
    assert portal.get("/v1/devices").status_code == 401


def test_the_helpdesk_role_reads_but_cannot_act(portal: Any) -> None:
    device, _, _ = enroll(portal)
    with portal.sessions() as session:
        secret = staff.add_staff(session, "hanna", "correct horse battery", "helpdesk")
    assert login(portal, "hanna", "correct horse battery", pyotp.TOTP(secret).now()) == "/helpdesk"
    assert portal.get(f"/v1/devices/{device}").status_code == 200  # may read
    for path, body in (
        ("/v1/admin/policy", {"min_agent_version": "0.0.1"}),
        (f"/v1/admin/devices/{device}/commands", {"kind": "suspend"}),
        ("/v1/admin/tokens", {"user": "mallory", "sip_password": "x"}),
    ):
        refused = portal.post(path, json=body)
        assert refused.status_code == 403 and refused.json()["detail"]["error"] == "admin_only"
    page = portal.get(f"/helpdesk/devices/{device}")
    assert "Suspend calls" not in page.text  # no admin buttons on the helpdesk's page
