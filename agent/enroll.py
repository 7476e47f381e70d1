"""Enrollment with a one-time token (contract: docs/enrollment.md).

The device makes its own key, sends only a CSR and the token to the portal — over HTTPS with
the portal's key pinned, checked before a byte of the request leaves — and puts what comes
back (chain, SIP credentials) and its key straight into the keychain. Nothing touches disk.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent import credentials, keystore
from agent.config import AgentConfig
from agent.material import read_ca
from tunnel.sbc import spki_pin

ENROLLMENT_TOKEN = "enrollment-token"  # noqa: S105 - an entry name, not a token
TOKEN_USED = "enrollment-token-used"  # noqa: S105 - holds the SHA-256 of the spent token
DEVICE_ID = "portal-device-id"
POLICY_KEY = "portal-policy-key"
TIMEOUT_S = 10.0


class EnrollError(RuntimeError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Enrolled:
    user: str
    device_id: str
    summary: credentials.CertSummary


def enroll(config: AgentConfig, store: keystore.SecretStore, token: str, hostname: str) -> Enrolled:
    portal = config.portal
    if portal is None:
        raise EnrollError("no_portal", "No portal is configured: ask IT for the enrollment setup.")
    key, csr_pem = _new_key_and_csr(config.account.user)
    body = {
        "token": token,
        "csr": csr_pem,
        "device": {"hostname": hostname, "agent_version": "0.1.0"},
    }
    status, answer = post_pinned(
        portal.url.rstrip("/") + "/v1/enroll", read_ca(portal.ca_file), portal.spki_pins, body
    )
    if status == 401:
        raise EnrollError(
            "token_invalid",
            "The portal did not accept this enrollment token (unknown, already used or "
            "expired): ask the helpdesk for a new one.",
        )
    if status != 200:
        raise EnrollError("enroll_failed", f"The portal refused the enrollment ({status}).")
    try:
        sip = answer["sip"]
        creds = keystore.Credentials(key, str(answer["certificate_chain"]), str(sip["password"]))
        if sip["user"] != config.account.user or sip["domain"] != config.account.domain:
            raise EnrollError(
                "identity_mismatch",
                f"The portal enrolled this device as {sip['user']}@{sip['domain']}, but it is "
                f"configured for {config.account_id}: nothing was stored.",
            )
        summary = credentials.check_device(creds, config.account.user)
    except (KeyError, TypeError, credentials.CredentialError) as exc:
        if isinstance(exc, EnrollError):
            raise
        raise EnrollError("response_invalid", f"The portal's answer is unusable ({exc}).") from None
    keystore.save_credentials(store, config.keychain_service, config.account_id, creds)
    account = config.account_id
    store.set(config.keychain_service, keystore.entry_name(account, TOKEN_USED), _digest(token))
    store.delete(config.keychain_service, keystore.entry_name(account, ENROLLMENT_TOKEN))
    # Who the portal knows this device as, and the key its policies and commands carry.
    if answer.get("device_id"):
        store.set(
            config.keychain_service,
            keystore.entry_name(account, DEVICE_ID),
            str(answer["device_id"]),
        )
    if answer.get("policy_key"):
        store.set(
            config.keychain_service,
            keystore.entry_name(account, POLICY_KEY),
            str(answer["policy_key"]),
        )
    return Enrolled(config.account.user, str(answer.get("device_id", "")), summary)


def renew(config: AgentConfig, store: keystore.SecretStore) -> Enrolled:
    """A fresh key and certificate before the old one ends, authenticated by the old one."""
    portal = config.portal
    if portal is None:
        raise EnrollError("no_portal", "No portal is configured: renewal is not possible.")
    current = keystore.load_credentials(store, config.keychain_service, config.account_id)
    key, csr_pem = _new_key_and_csr(config.account.user)
    url = portal.url.rstrip("/") + "/v1/renew"
    account = config.account_id
    device_id = store.get(config.keychain_service, keystore.entry_name(account, DEVICE_ID))
    if not device_id:
        raise EnrollError(
            "renew_unavailable",
            "This device was not enrolled through the portal: ask the helpdesk to re-enroll it.",
        )
    from agent import report  # requests signed with the current device key

    body = json.dumps({"csr": csr_pem}).encode()
    headers = report.signed_headers(current.key_pem, device_id, "POST", "/v1/renew", body)
    status, _, answer = request_pinned(
        url, read_ca(portal.ca_file), portal.spki_pins, "POST", body, headers
    )
    if status != 200:
        raise EnrollError("renew_refused", f"The portal did not renew the certificate ({status}).")
    try:
        creds = keystore.Credentials(key, str(answer["certificate_chain"]), current.sip_password)
        summary = credentials.check_device(creds, config.account.user)
    except (KeyError, TypeError, credentials.CredentialError) as exc:
        raise EnrollError("response_invalid", f"The portal's answer is unusable ({exc}).") from None
    keystore.save_credentials(store, config.keychain_service, config.account_id, creds)
    return Enrolled(config.account.user, str(answer.get("device_id", "")), summary)


RENEW_BEFORE_S = 30 * 86400.0  # renew this long before the certificate ends


def renew_if_due(
    config: AgentConfig,
    store: keystore.SecretStore,
    cert_pem: str,
    emit: Callable[[dict[str, Any]], None],
    now: float | None = None,
) -> bool:
    """Renew when the certificate ends within 30 days and a portal is configured. True if a
    new certificate is in the keychain; a failure is reported, not fatal (the old one works)."""
    ends = credentials.summarize(cert_pem).not_after.timestamp()
    if config.portal is None or ends - (now or time.time()) > RENEW_BEFORE_S:
        return False
    emit({"state": "renewing", "portal": config.portal.url})
    try:
        done = renew(config, store)
    except EnrollError as exc:
        emit({"state": "renewal_failed", "code": exc.code, "reason": str(exc)})
        return False
    emit({"state": "renewed", "certificate_expires": done.summary.not_after.isoformat()})
    return True


def _new_key_and_csr(user: str) -> tuple[str, str]:
    """A fresh ECDSA P-256 key (PEM, for the keychain only) and a CSR for it."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return key_pem, csr.public_bytes(serialization.Encoding.PEM).decode()


def staged_token(config: AgentConfig, store: keystore.SecretStore) -> str | None:
    """The token to enroll with: one waiting in the keychain, or the one MDM put in the
    managed configuration, moved into the keychain first. A token already spent is None."""
    service, account = config.keychain_service, config.account_id
    waiting = store.get(service, keystore.entry_name(account, ENROLLMENT_TOKEN))
    if waiting:
        return waiting
    managed = config.portal.enrollment_token if config.portal else None
    if not managed or store.get(service, keystore.entry_name(account, TOKEN_USED)) == _digest(
        managed
    ):
        return None
    store.set(service, keystore.entry_name(account, ENROLLMENT_TOKEN), managed)
    return managed


def enroll_if_possible(
    config: AgentConfig, store: keystore.SecretStore, emit: Callable[[dict[str, Any]], None]
) -> bool:
    """First run on a managed device: enroll with the staged token, if there is one.
    False when there is none; EnrollError when the enrollment fails."""
    token = staged_token(config, store)
    if token is None or config.portal is None:
        return False
    emit({"state": "enrolling", "portal": config.portal.url})
    done = enroll(config, store, token, socket.gethostname())
    emit(
        {
            "state": "enrolled",
            "device_id": done.device_id,
            "certificate_expires": done.summary.not_after.isoformat(),
        }
    )
    return True


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def post_pinned(
    url: str,
    ca_pem: str,
    pins: tuple[str, ...],
    body: dict[str, Any],
) -> tuple[int, dict[str, Any]]:
    """POST JSON over HTTPS; the server's key must match a pin before anything is sent."""
    status, _, answer = request_pinned(url, ca_pem, pins, "POST", json.dumps(body).encode(), {})
    return status, answer if isinstance(answer, dict) else {}


def request_pinned(
    url: str,
    ca_pem: str,
    pins: tuple[str, ...],
    method: str,
    body: bytes,
    headers: dict[str, str],
) -> tuple[int, dict[str, str], Any]:
    """One HTTPS request (status, headers, JSON answer); the server's key must match a pin
    before anything is sent. Raises EnrollError when the portal is not reachable or not ours."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=ca_pem)
    conn = http.client.HTTPSConnection(host, port, timeout=TIMEOUT_S, context=ctx)
    try:
        try:
            conn.connect()
        except ssl.SSLCertVerificationError:
            raise EnrollError(
                "portal_cert_untrusted",
                f"The server at {host}:{port} is not the company portal (its certificate is "
                "not trusted): nothing was sent.",
            ) from None
        except (TimeoutError, OSError) as exc:
            raise EnrollError(
                "portal_unreachable", f"The portal at {host}:{port} cannot be reached ({exc})."
            ) from None
        assert conn.sock is not None
        der = conn.sock.getpeercert(binary_form=True)
        if not der or spki_pin(x509.load_der_x509_certificate(der)) not in pins:
            raise EnrollError(
                "portal_pin_mismatch",
                f"The server at {host}:{port} has a valid certificate but not the key your "
                "company pinned (an interception proxy?): nothing was sent.",
            )
        sent = {"Content-Type": "application/json", **headers}
        conn.request(method, parts.path, body if method != "GET" else None, sent)
        response = conn.getresponse()
        raw = response.read(10_000_000)
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = {}
        return response.status, {k.lower(): v for k, v in response.getheaders()}, answer
    except OSError as exc:
        raise EnrollError("portal_unreachable", f"The portal connection failed ({exc}).") from None
    finally:
        conn.close()
