"""Plain-language reasons for refusals and failures, from what the SIP engine observed.

Each reason has a stable `code` (for scripts, posture and the helpdesk) and a sentence an
employee in a hotel can act on. pjsip's own words ("503 End of file") never reach the user.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.sip import RegistrationChanged, TlsFacts, TransportChanged

# pj_ssl_cert_verify_flag_t bits (pj/ssl_sock.h)
CERT_ISSUER_NOT_FOUND = 1
CERT_UNTRUSTED = 2
CERT_VALIDITY_PERIOD = 4
CERT_INVALID_PURPOSE = 16
CERT_ISSUER_MISMATCH = 32
CERT_REVOKED = 128
CERT_IDENTITY_NOT_MATCH = 1 << 30

GENERIC_CONNECTION_FAILURE = "sbc_connection_lost"

PJ_EEOF = 70016  # PJ_ERRNO_START_STATUS + 16: the peer closed the connection
PJ_ETIMEDOUT = 70009  # PJ_ERRNO_START_STATUS + 9
PJ_ECONNREFUSED = 120111  # PJ_STATUS_FROM_OS(ECONNREFUSED)


@dataclass(frozen=True)
class Reason:
    code: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "reason": self.text}


def server_certificate(tls: TlsFacts, server: str) -> Reason | None:
    """Why the SBC's certificate was not accepted, or None if it was."""
    if tls.verified:
        return None
    bits = tls.verify_status
    if bits & CERT_IDENTITY_NOT_MATCH:
        return Reason(
            "server_name_mismatch",
            f"The server at {server} presented a certificate for another name "
            f"({tls.server_cn or 'unnamed'}): it is not the company SBC, so nothing was sent.",
        )
    if bits & CERT_VALIDITY_PERIOD:
        return Reason(
            "server_cert_expired",
            f"The SBC at {server} presented an expired (or not yet valid) certificate, "
            "so nothing was sent. Tell the helpdesk: the SBC certificate needs renewing.",
        )
    if bits & (CERT_ISSUER_NOT_FOUND | CERT_UNTRUSTED | CERT_ISSUER_MISMATCH):
        return Reason(
            "server_cert_untrusted",
            f"The server at {server} presented a certificate not issued by your company's "
            "CA (someone may be intercepting this network), so nothing was sent.",
        )
    if bits & CERT_REVOKED:
        return Reason("server_cert_revoked", f"The SBC certificate at {server} is revoked.")
    if bits & CERT_INVALID_PURPOSE:
        return Reason(
            "server_cert_invalid",
            f"The certificate at {server} is not a server certificate, so nothing was sent.",
        )
    messages = "; ".join(tls.verify_messages) or "unknown error"
    return Reason(
        "server_cert_invalid",
        f"The SBC certificate at {server} failed verification ({messages}), so nothing was sent.",
    )


def transport_failure(event: TransportChanged, server: str, tls_seen: bool) -> Reason:
    """The TLS connection to the SBC went down or never came up."""
    if event.tls is not None:
        cert = server_certificate(event.tls, server)
        if cert is not None:
            return cert
    if event.error == PJ_ECONNREFUSED or "refused" in event.error_text.lower():
        return Reason(
            "sbc_unreachable",
            f"Nothing answers at {server}: the company SBC cannot be reached from this network.",
        )
    if tls_seen and event.error == PJ_EEOF:
        return client_certificate_refused(server)
    return Reason(
        GENERIC_CONNECTION_FAILURE,
        f"The connection to the SBC at {server} failed ({event.error_text or 'no detail'}).",
    )


def client_certificate_refused(server: str) -> Reason:
    return Reason(
        "client_cert_refused",
        f"The SBC at {server} closed the connection while checking this device's "
        "certificate: it does not accept it (not issued by the company CA, revoked or "
        "expired). Contact the helpdesk to re-enroll this device.",
    )


def registration_failure(
    event: RegistrationChanged, server: str, user: str, tls: TlsFacts | None
) -> Reason:
    """Why the REGISTER was not accepted."""
    code = event.code
    if code in (401, 407):
        return Reason(
            "auth_failed",
            f"The SBC rejected the SIP password for {user}. Ask the helpdesk to reset it, "
            "then import it again with `guardphone credentials import`.",
        )
    if code == 403:
        if "certificate" in event.reason.lower():
            return Reason(
                "identity_mismatch",
                f"The SBC refused: this device's certificate does not belong to {user}.",
            )
        return Reason("forbidden", f"The SBC refused registration for {user} (403 Forbidden).")
    eof = event.status == PJ_EEOF or "PJ_EEOF" in event.reason
    if code == 503 and eof and (tls is None or tls.verified):
        # pjsip reports a client certificate refused by the server only as 503 "End of file":
        # the SBC accepted the TCP connection and hung up during or right after the handshake.
        return client_certificate_refused(server)
    if code == 408 or event.status == PJ_ETIMEDOUT:
        return Reason("sbc_timeout", f"The SBC at {server} did not answer in time.")
    if code == 503 and tls is None:
        return Reason(
            "sbc_unreachable",
            f"Could not set up a secure connection to the SBC at {server}.",
        )
    return Reason("registration_failed", f"The SBC refused registration ({code} {event.reason}).")


def call_failure(code: int, reason: str) -> Reason:
    if code == 488:
        return Reason(
            "srtp_required",
            "The other side offered or accepted only unencrypted media (no SRTP), so the "
            "call was refused.",
        )
    if code == 404:
        return Reason("not_found", "That number or address is not known to the company SBC.")
    if code in (486, 600):
        return Reason("busy", "The person you called is busy.")
    if code in (480, 408):
        return Reason("unavailable", "The person you called is not available right now.")
    if code == 603:
        return Reason("declined", "The call was declined.")
    if code == 503 and "media relay" in reason.lower():
        return Reason(
            "media_relay_down",
            "The company SBC's media relay did not answer, so the call was not connected "
            "(it would have had no sound). Try again in a minute; if it keeps failing, tell IT.",
        )
    return Reason("call_failed", f"The call failed ({code} {reason}).")


class Refused(Exception):
    """The agent will not (or could not) register or call; `reason` says why."""

    def __init__(self, reason: Reason, reported: bool = False) -> None:
        super().__init__(reason.text)
        self.reason = reason
        self.reported = reported  # already emitted as a "refused" state
