"""The hosted-SBC path check: mutual TLS to the SBC, its key pinned, then a SIP OPTIONS.

The handshake alone proves little: with TLS 1.3 a server that rejects our certificate says so
only on the first read. So the probe sends OPTIONS over the connection and needs the SBC's
200 before it calls the path up. Every failure has its own code:
sbc_unreachable, sbc_timeout, tls_too_old, server_cert_untrusted, server_name_mismatch,
server_cert_expired, pin_mismatch, client_cert_refused, client_cert_revoked, sbc_rejected.

The device key reaches OpenSSL through an anonymous in-memory file (memfd), never a path on
disk: Python's ssl module only loads keys by file name.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

# OpenSSL X509_V_ERR_* codes
_EXPIRED = {9, 10}  # not yet valid, expired
_NAME = {62, 64}  # hostname mismatch, IP address mismatch
_CLIENT_REFUSED_ALERTS = (
    "unknown ca",
    "bad certificate",
    "certificate required",
    "certificate unknown",
    "access denied",
    "unsupported certificate",
    "certificate revoked",
    "certificate expired",
)


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    code: str  # "ok" or a failure code
    detail: str
    tls_version: str | None = None
    cipher: str | None = None
    pin_match: bool | None = None
    latency_ms: float | None = None


@dataclass(frozen=True, repr=False)
class ProbeTarget:
    host: str
    port: int
    domain: str
    user: str
    ca_pem: str
    cert_pem: str
    key_pem: str
    spki_pins: tuple[str, ...]  # "sha256/BASE64"; empty = no pinning configured
    dscp: int | None = None  # mark the probe like the SIP signaling it stands for

    def __repr__(self) -> str:
        return f"ProbeTarget({self.host}:{self.port}, <redacted>)"


def spki_pin(cert: x509.Certificate) -> str:
    """The pin of a certificate's public key: sha256/ + base64(SHA-256(SubjectPublicKeyInfo))."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256/" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


def _connect(target: ProbeTarget, timeout_s: float) -> socket.socket:
    family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if target.dscp is not None and family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, target.dscp << 2)
        sock.settimeout(timeout_s)
        sock.connect((target.host, target.port))
    except BaseException:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def memory_file(name: str, data: bytes) -> Iterator[str]:
    """A path to `data` that lives only in memory (memfd): for APIs that want key files."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _context(target: ProbeTarget) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=target.ca_pem)
    with (
        memory_file("guardphone-cert", target.cert_pem.encode()) as cert,
        memory_file("guardphone-key", target.key_pem.encode()) as key,
    ):
        ctx.load_cert_chain(cert, key)
    return ctx


def probe(target: ProbeTarget, timeout_s: float = 3.0) -> ProbeResult:
    """Check the SBC path end to end; never raises for network or TLS trouble."""
    where = f"{target.host}:{target.port}"
    started = time.monotonic()
    try:
        raw = _connect(target, timeout_s)
    except TimeoutError:
        return ProbeResult(False, "sbc_timeout", f"The SBC at {where} did not answer in time.")
    except OSError as exc:
        return ProbeResult(
            False, "sbc_unreachable", f"The SBC at {where} cannot be reached ({exc.strerror})."
        )
    with raw:
        try:
            tls = _context(target).wrap_socket(raw, server_hostname=target.host)
        except ssl.SSLCertVerificationError as exc:
            return _server_cert_failure(exc, where)
        except ssl.SSLError as exc:
            return _tls_failure(exc, where)
        except TimeoutError:
            return ProbeResult(False, "sbc_timeout", f"The TLS handshake with {where} timed out.")
        except OSError:
            return _client_refused(where)
        with tls:
            der = tls.getpeercert(binary_form=True)
            pin = spki_pin(x509.load_der_x509_certificate(der)) if der else ""
            pin_match = pin in target.spki_pins if target.spki_pins else None
            version, cipher = tls.version(), (tls.cipher() or ("",))[0]
            if pin_match is False:
                return ProbeResult(
                    False,
                    "pin_mismatch",
                    f"The SBC at {where} has a valid certificate but not the key your company "
                    f"pinned ({pin}): it may be an interception proxy, so nothing was sent.",
                    tls_version=version,
                    cipher=cipher,
                    pin_match=False,
                )
            result = _options_round_trip(tls, target, where)
    latency = round((time.monotonic() - started) * 1000, 2)
    return ProbeResult(result.ok, result.code, result.detail, version, cipher, pin_match, latency)


def _options_round_trip(tls: ssl.SSLSocket, target: ProbeTarget, where: str) -> ProbeResult:
    host, port = tls.getsockname()[:2]
    tag = secrets.token_hex(6)
    request = (
        f"OPTIONS sip:{target.domain} SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS {host}:{port};branch=z9hG4bK-gp{tag};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{target.user}@{target.domain}>;tag={tag}\r\n"
        f"To: <sip:{target.domain}>\r\n"
        f"Call-ID: probe-{tag}@guardphone\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "User-Agent: guardphone-probe\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    try:
        tls.sendall(request.encode())
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = tls.recv(4096)
            if not chunk:
                return _client_refused(where)
            reply += chunk
    except TimeoutError:
        return ProbeResult(False, "sbc_timeout", f"The SBC at {where} did not answer OPTIONS.")
    except ssl.SSLError as exc:
        return _tls_failure(exc, where)
    except OSError:
        return _client_refused(where)
    status = reply.split(b"\r\n", 1)[0].decode(errors="replace")
    parts = status.split(" ", 2)
    if len(parts) >= 2 and parts[1] == "200":
        return ProbeResult(True, "ok", f"The SBC at {where} accepted this device.")
    return ProbeResult(False, "sbc_rejected", f"The SBC at {where} answered {status!r}.")


def _server_cert_failure(exc: ssl.SSLCertVerificationError, where: str) -> ProbeResult:
    if exc.verify_code in _EXPIRED:
        return ProbeResult(
            False,
            "server_cert_expired",
            f"The SBC at {where} presented an expired (or not yet valid) certificate, so "
            "nothing was sent. Tell the helpdesk: the SBC certificate needs renewing.",
        )
    if exc.verify_code in _NAME:
        return ProbeResult(
            False,
            "server_name_mismatch",
            f"The server at {where} presented a certificate for another name: it is not the "
            "company SBC, so nothing was sent.",
        )
    return ProbeResult(
        False,
        "server_cert_untrusted",
        f"The server at {where} presented a certificate not issued by your company's CA "
        "(someone may be intercepting this network), so nothing was sent.",
    )


def _tls_failure(exc: ssl.SSLError, where: str) -> ProbeResult:
    text = str(exc).lower()
    if "certificate revoked" in text:
        return ProbeResult(
            False,
            "client_cert_revoked",
            f"The SBC at {where} says this device's certificate has been revoked: calls are "
            "paused. Contact the helpdesk to re-enroll this device.",
        )
    if any(alert in text for alert in _CLIENT_REFUSED_ALERTS):
        return _client_refused(where)
    if "protocol version" in text or "unsupported protocol" in text or "no protocols" in text:
        return ProbeResult(
            False,
            "tls_too_old",
            f"The server at {where} only speaks TLS older than 1.2, which guardphone refuses.",
        )
    if "eof" in text:
        return _client_refused(where)
    return ProbeResult(False, "tls_failed", f"TLS with {where} failed ({exc.reason}).")


def _client_refused(where: str) -> ProbeResult:
    return ProbeResult(
        False,
        "client_cert_refused",
        f"The SBC at {where} refused this device's certificate (not issued by the company "
        "CA, revoked or expired). Contact the helpdesk to re-enroll this device.",
    )
