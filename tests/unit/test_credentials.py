from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from agent import credentials
from agent.keystore import Credentials
from lab import pki

CA = pki.make_ca("Unit CA")


def creds_for(cn: str, **kw: dt.datetime) -> Credentials:
    issued = pki.issue(CA, cn, server=False, **kw)
    return Credentials(issued.key_pem, issued.cert_pem + CA.cert_pem, "pw")


def test_good_credentials_pass_and_summarise() -> None:
    summary = credentials.check_device(creds_for("alice"), "alice")
    assert summary.subject_cn == "alice"
    assert summary.issuer_cn == "Unit CA"


def test_expired_certificate_gives_date_and_helpdesk() -> None:
    now = dt.datetime.now(dt.UTC)
    old = creds_for("alice", not_before=now - 10 * pki.DAY, not_after=now - pki.DAY)
    with pytest.raises(credentials.CredentialError, match=r"expired on \d{4}-\d\d-\d\d.*helpdesk"):
        credentials.check_device(old, "alice")


def test_not_yet_valid_points_at_the_clock() -> None:
    now = dt.datetime.now(dt.UTC)
    future = creds_for("alice", not_before=now + pki.DAY, not_after=now + 9 * pki.DAY)
    with pytest.raises(credentials.CredentialError, match="clock"):
        credentials.check_device(future, "alice")


def test_another_users_certificate_is_refused() -> None:
    with pytest.raises(credentials.CredentialError, match="belongs to 'bob'"):
        credentials.check_device(creds_for("bob"), "alice")


def test_key_that_does_not_match_is_refused() -> None:
    a, b = creds_for("alice"), creds_for("alice")
    with pytest.raises(credentials.CredentialError, match="does not match"):
        credentials.check_device(Credentials(b.key_pem, a.cert_pem, "pw"), "alice")


def test_pkcs12_import_and_wrong_password(tmp_path: Path) -> None:
    issued = pki.issue(CA, "alice", server=False)
    bundle = tmp_path / "alice.p12"
    bundle.write_bytes(issued.pkcs12(b"bundle-pw", [CA.cert]))
    creds = credentials.from_pkcs12(bundle, b"bundle-pw", "sip-pw")
    assert credentials.check_device(creds, "alice").subject_cn == "alice"
    assert creds.cert_pem.count("BEGIN CERTIFICATE") == 2  # the chain came along
    with pytest.raises(credentials.CredentialError, match="password is wrong"):
        credentials.from_pkcs12(bundle, b"nope", "sip-pw")


def test_pem_import_errors_name_the_file(tmp_path: Path) -> None:
    issued = pki.issue(CA, "alice", server=False)
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    key.write_text(issued.key_pem)
    cert.write_text(issued.cert_pem)
    assert credentials.from_pem_files(key, cert, "pw").cert_pem == issued.cert_pem
    with pytest.raises(credentials.CredentialError, match=r"k.pem: not a PEM certificate"):
        credentials.from_pem_files(key, key, "pw")
    with pytest.raises(credentials.CredentialError, match=r"c.pem: not a PEM private key"):
        credentials.from_pem_files(cert, cert, "pw")
    with pytest.raises(credentials.CredentialError, match=r"missing\.pem: cannot read"):
        credentials.from_pem_files(tmp_path / "missing.pem", cert, "pw")
