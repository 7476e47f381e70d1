"""Enrollment with a one-time token against the lab's endpoint (docs/enrollment.md)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent import keystore
from tests.integration.test_no_leaks import scan
from tests.services import agent, run_agent, run_cli

pytestmark = [pytest.mark.kamailio, pytest.mark.keychain]


def enroll(config: Path, token: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli(str(config), "enroll", env=env, stdin=token + "\n")


@pytest.fixture
def dave(lab: Any, store: Any, tmp_path: Path) -> Any:
    """dave's config, with a keychain service of this test (so nothing leaks between tests)."""
    directory = Path(lab.directory)
    data = json.loads((directory / "agents" / "dave.json").read_text())
    data["keychain_service"] = f"guardphone-enroll-{tmp_path.name[-12:]}"
    config = tmp_path / "dave.json"
    config.write_text(json.dumps(data))
    yield config, data
    keystore.delete_credentials(store, data["keychain_service"], "dave@lab.guardphone.test")


def token_of(lab: Any, index: int = 0) -> str:
    """dave's one-time tokens: each test spends its own."""
    return str(json.loads((Path(lab.directory) / "enroll-tokens.json").read_text())["dave"][index])


def posts(lab: Any) -> list[str]:
    """The enrollment and renewal requests the lab's portal received ("METHOD PATH STATUS",
    from its request log; a registered agent's reports and polls are left out)."""
    log = Path(lab.directory) / "portal.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return [
        f"{m.group(1)} {m.group(2)} {m.group(3)}"
        for m in re.finditer(r'"(GET|POST) (\S+) HTTP/[\d.]+" (\d{3})', text)
        if m.group(2) in ("/v1/enroll", "/v1/renew")
    ]


def test_enroll_once_then_register_then_token_is_spent(
    lab: Any, dave: Any, env: dict[str, str], store: Any, secret_service: Any
) -> None:
    config, data = dave
    code, lines, _ = run_agent(config, "register", "--once", env=env)
    assert code == 1 and "not enrolled" in lines[-1]["reason"]

    done = enroll(config, token_of(lab), env)
    assert done.returncode == 0, done.stderr
    assert "Enrolled dave@lab.guardphone.test" in done.stdout
    creds = keystore.load_credentials(store, data["keychain_service"], "dave@lab.guardphone.test")
    assert creds.key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert creds.cert_pem.count("BEGIN CERTIFICATE") == 2

    bob = next(u.config for u in lab.users if u.name == "bob")
    with agent(bob, "answer", "--count", "1", env=env) as answering:
        answering.wait_for("registered")
        code, lines, stderr = run_agent(
            config, "call", "sip:bob@lab.guardphone.test", "--hangup-after", "0.5", env=env
        )
    assert code == 0, stderr
    assert [line["state"] for line in lines][2] == "registered"
    assert any(line["state"] == "call_established" for line in lines)

    again = enroll(config, token_of(lab), env)
    assert again.returncode == 1
    assert "did not accept this enrollment token" in again.stderr
    assert posts(lab)[-2:] == ["POST /v1/enroll 200", "POST /v1/enroll 401"]

    # The new key lives in the keychain and in memory only.
    der_body = "".join(creds.key_pem.strip().splitlines()[1:-1]).encode()[:64]
    needles = [der_body, creds.sip_password.encode()]
    skip = (Path(secret_service.env["XDG_DATA_HOME"]), Path(lab.directory))
    assert scan(Path("/tmp"), needles, skip) == []
    assert scan(config.parent, needles, skip) == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"spki_pins": ["sha256/" + "E" * 43 + "="]}, "not the key your company pinned"),
        ({"ca_file": "ROGUE"}, "not the company portal"),
    ],
    ids=["wrong-pin", "untrusted-portal"],
)
def test_wrong_portal_is_refused_and_the_token_never_leaves(
    lab: Any, dave: Any, env: dict[str, str], change: dict[str, Any], words: str
) -> None:
    config, data = dave
    if change.get("ca_file") == "ROGUE":
        change = {"ca_file": lab.rogue_ca_file}
    data["portal"].update(change)
    config.write_text(json.dumps(data))
    before = posts(lab)
    done = enroll(config, "a-token-that-must-not-leave", env)
    assert done.returncode == 1
    assert words in done.stderr and "nothing was sent" in done.stderr
    assert posts(lab) == before  # the endpoint never saw a request


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="a managed file must belong to root")
def test_first_run_on_a_managed_device_enrolls_with_the_mdm_token(
    lab: Any, dave: Any, env: dict[str, str], store: Any, tmp_path: Path
) -> None:
    from agent import managed

    config, data = dave
    token = token_of(lab, 1)
    managed_file = tmp_path / "managed.json"
    managed_file.write_text(json.dumps({"locked": True, "portal": {"enrollment_token": token}}))
    managed_file.chmod(0o644)
    menv = {**env, managed.OVERRIDE_ENV: str(managed_file)}
    service, account = data["keychain_service"], "dave@lab.guardphone.test"

    code, lines, stderr = run_agent(config, "register", "--once", env=menv)
    assert code == 0, stderr
    states = [line["state"] for line in lines]
    assert states[:4] == ["checking", "enrolling", "enrolled", "connecting"]
    assert "registered" in states
    assert token not in json.dumps(lines)
    assert store.get(service, f"{account}/enrollment-token") is None  # spent and gone
    assert store.get(service, f"{account}/enrollment-token-used") not in (None, token)

    # The token stays in the managed file, but it is never used (or shown) again.
    code, lines, _ = run_agent(config, "register", "--once", env=menv)
    assert code == 0 and "enrolling" not in [line["state"] for line in lines]
    shown = run_cli(str(config), "settings", "--json", env=menv, check=True).stdout
    assert token not in shown and '"(hidden)"' in shown


def test_certificate_is_renewed_with_a_fresh_key_before_it_ends(
    lab: Any, dave: Any, env: dict[str, str], store: Any
) -> None:
    import datetime as dt

    from cryptography import x509

    from lab import pki

    config, data = dave
    service, account = data["keychain_service"], "dave@lab.guardphone.test"
    assert enroll(config, token_of(lab, 2), env).returncode == 0
    enrolled = keystore.load_credentials(store, service, account)

    # Ten days left: the kind of certificate renewal exists for.
    directory = Path(lab.directory)
    ca = pki.load_ca(directory)
    now = dt.datetime.now(dt.UTC)
    old = pki.issue(
        ca, "dave", server=False, not_before=now - pki.DAY, not_after=now + 10 * pki.DAY
    )
    keystore.save_credentials(
        store,
        service,
        account,
        keystore.Credentials(old.key_pem, old.cert_pem, enrolled.sip_password),
    )
    # ...as if the portal had issued it: the portal knows this device by that certificate.
    from portal import db
    from portal.db import Device

    engine = db.engine_for(f"sqlite:///{directory / 'portal.db'}")
    device_id = store.get(service, keystore.entry_name(account, "portal-device-id"))
    with db.sessions(engine)() as session:
        row = session.get(Device, device_id)
        assert row is not None
        row.cert_pem = old.cert_pem
        session.commit()
    engine.dispose()

    code, lines, stderr = run_agent(config, "register", "--once", env=env)
    assert code == 0, stderr
    states = [line["state"] for line in lines]
    assert states[:3] == ["checking", "renewing", "renewed"]
    assert "registered" in states and "cert.expiring" not in states
    renewed = keystore.load_credentials(store, service, account)
    assert renewed.key_pem not in (old.key_pem, enrolled.key_pem)  # a fresh key
    assert renewed.sip_password == enrolled.sip_password
    days = x509.load_pem_x509_certificate(renewed.cert_pem.encode()).not_valid_after_utc - now
    assert days.days >= 364
    assert posts(lab)[-1] == "POST /v1/renew 200"

    # Not due: nothing is renewed.
    code, lines, _ = run_agent(config, "register", "--once", env=env)
    assert code == 0 and "renewing" not in [line["state"] for line in lines]
