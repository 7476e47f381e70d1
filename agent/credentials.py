"""Device credentials: reading what IT hands out, and checking them before any use.

`guardphone credentials import` reads PEM files or a PKCS#12 bundle into memory, checks that
key and certificate belong together and name the SIP user, and stores them in the keychain.
It never copies the files. The same checks run before every start, so an expired or wrong
certificate is refused locally, before anything is sent.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from agent.keystore import Credentials


class CredentialError(ValueError):
    """The credentials are unusable; the message says which and why."""


@dataclass(frozen=True)
class CertSummary:
    subject_cn: str
    issuer_cn: str
    not_before: dt.datetime
    not_after: dt.datetime
    serial: str


def summarize(cert_pem: str) -> CertSummary:
    cert = _first_cert(cert_pem)
    return CertSummary(
        subject_cn=_cn(cert.subject),
        issuer_cn=_cn(cert.issuer),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=format(cert.serial_number, "x"),
    )


def fingerprint(cert_pem: str) -> str:
    """SHA-256 fingerprint of the certificate, as AA:BB:… (what helpdesk tools show)."""
    digest = _first_cert(cert_pem).fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


def sign(key_pem: str, data: bytes) -> str:
    """An ECDSA-SHA256 signature by the device key, base64 (retention checkpoints)."""
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CredentialError("The device key is not an ECDSA key.")
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def signed_by(cert_pem: str, data: bytes, signature: str) -> bool:
    """Whether `signature` over `data` was made by the key of this device certificate."""
    public = _first_cert(cert_pem).public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return False
    try:
        public.verify(base64.b64decode(signature), data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def check_device(creds: Credentials, sip_user: str, now: dt.datetime | None = None) -> CertSummary:
    """Refuse credentials that could not work or would impersonate someone else."""
    now = now or dt.datetime.now(dt.UTC)
    cert = _first_cert(creds.cert_pem)
    summary = summarize(creds.cert_pem)
    if now > summary.not_after:
        raise CredentialError(
            f"Your device certificate expired on {summary.not_after:%Y-%m-%d %H:%M} UTC: "
            f"contact the helpdesk to re-enroll this device (serial {summary.serial})."
        )
    if now < summary.not_before:
        raise CredentialError(
            f"Your device certificate is not valid before {summary.not_before:%Y-%m-%d %H:%M} "
            "UTC: check this computer's clock."
        )
    if summary.subject_cn != sip_user:
        raise CredentialError(
            f"The device certificate in the keychain belongs to '{summary.subject_cn}', "
            f"but this account is '{sip_user}': import the right certificate."
        )
    try:
        key = serialization.load_pem_private_key(creds.key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise CredentialError(
            "The device key in the keychain is not a readable private key."
        ) from None
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise CredentialError("The device key in the keychain does not match its certificate.")
    return summary


def from_pem_files(key_file: Path, cert_file: Path, sip_password: str) -> Credentials:
    key_pem = _read(key_file)
    cert_pem = _read(cert_file)
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except TypeError:
        raise CredentialError(f"{key_file}: the key is encrypted; use a PKCS#12 bundle") from None
    except ValueError:
        raise CredentialError(f"{key_file}: not a PEM private key") from None
    try:
        certs = x509.load_pem_x509_certificates(cert_pem.encode())
    except ValueError:
        raise CredentialError(f"{cert_file}: not a PEM certificate") from None
    return Credentials(_key_pem(key), _chain_pem(certs), sip_password)


def from_pkcs12(bundle: Path, password: bytes, sip_password: str) -> Credentials:
    try:
        data = bundle.read_bytes()
    except OSError as exc:
        raise CredentialError(f"{bundle}: cannot read ({exc.strerror})") from None
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password or None)
    except ValueError:
        raise CredentialError(
            f"{bundle}: not a PKCS#12 bundle, or the bundle password is wrong"
        ) from None
    if key is None or cert is None:
        raise CredentialError(f"{bundle}: the bundle holds no private key and certificate")
    return Credentials(_key_pem(key), _chain_pem([cert, *extra]), sip_password)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialError(f"{path}: cannot read ({getattr(exc, 'strerror', exc)})") from None


def _key_pem(key: object) -> str:
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _chain_pem(certs: list[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def _first_cert(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificates(pem.encode())[0]
    except (ValueError, IndexError):
        raise CredentialError("The device certificate in the keychain is not readable.") from None


def _cn(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""
