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
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, config.account.user)]))
        .sign(key, hashes.SHA256())
    )
    body = {
        "token": token,
        "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
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
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    try:
        sip = answer["sip"]
        creds = keystore.Credentials(
            key_pem, str(answer["certificate_chain"]), str(sip["password"])
        )
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
    return Enrolled(config.account.user, str(answer.get("device_id", "")), summary)


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
    url: str, ca_pem: str, pins: tuple[str, ...], body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """POST JSON over HTTPS; the server's key must match a pin before anything is sent."""
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
        conn.request("POST", parts.path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        raw = response.read(1_000_000)
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = {}
        return response.status, answer if isinstance(answer, dict) else {}
    except OSError as exc:
        raise EnrollError("portal_unreachable", f"The portal connection failed ({exc}).") from None
    finally:
        conn.close()
