from __future__ import annotations

import pytest

from agent import reasons
from agent.sip import RegistrationChanged, TlsFacts, TransportChanged


def tls(status: int, verified: bool = False) -> TlsFacts:
    return TlsFacts("TLSv1.2", "c", verified, status, ("m",), "cn", "l", "r")


@pytest.mark.parametrize(
    ("bits", "code"),
    [
        (reasons.CERT_UNTRUSTED, "server_cert_untrusted"),
        (reasons.CERT_ISSUER_NOT_FOUND, "server_cert_untrusted"),
        (reasons.CERT_VALIDITY_PERIOD, "server_cert_expired"),
        (reasons.CERT_IDENTITY_NOT_MATCH, "server_name_mismatch"),
        (reasons.CERT_IDENTITY_NOT_MATCH | reasons.CERT_UNTRUSTED, "server_name_mismatch"),
        (reasons.CERT_REVOKED, "server_cert_revoked"),
        (1 << 20, "server_cert_invalid"),
    ],
)
def test_server_certificate_reasons(bits: int, code: str) -> None:
    reason = reasons.server_certificate(tls(bits), "sbc:5061")
    assert reason is not None and reason.code == code
    assert "sbc:5061" in reason.text


def test_verified_server_is_no_reason() -> None:
    assert reasons.server_certificate(tls(0, verified=True), "s") is None


@pytest.mark.parametrize(
    ("code", "reason", "status", "expected"),
    [
        (401, "Unauthorized", 0, "auth_failed"),
        (407, "Proxy Authentication Required", 0, "auth_failed"),
        (403, "Certificate does not match user", 0, "identity_mismatch"),
        (403, "Forbidden", 0, "forbidden"),
        (503, "End of file (PJ_EEOF)", 0, "client_cert_refused"),
        (503, "x", reasons.PJ_EEOF, "client_cert_refused"),
        (408, "Request Timeout", 0, "sbc_timeout"),
        (500, "Server Error", 0, "registration_failed"),
    ],
)
def test_registration_reasons(code: int, reason: str, status: int, expected: str) -> None:
    event = RegistrationChanged(False, code, reason, status, 300)
    assert reasons.registration_failure(event, "s", "alice", None).code == expected


def test_transport_refused_means_unreachable() -> None:
    event = TransportChanged(False, None, reasons.PJ_ECONNREFUSED, "Connection refused")
    assert reasons.transport_failure(event, "s", tls_seen=False).code == "sbc_unreachable"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (488, "srtp_required"),
        (404, "not_found"),
        (486, "busy"),
        (603, "declined"),
        (480, "unavailable"),
        (500, "call_failed"),
    ],
)
def test_call_reasons(code: int, expected: str) -> None:
    assert reasons.call_failure(code, "x").code == expected


def test_a_relay_that_is_down_is_named_and_other_503s_are_not_blamed_on_it() -> None:
    assert reasons.call_failure(503, "Media relay unavailable").code == "media_relay_down"
    assert reasons.call_failure(503, "Service Unavailable").code == "call_failed"


def test_no_reason_repeats_pjsip_jargon() -> None:
    event = RegistrationChanged(False, 503, "End of file (PJ_EEOF)", 0, 300)
    text = reasons.registration_failure(event, "s", "alice", None).text
    assert "PJ_" not in text and "End of file" not in text
