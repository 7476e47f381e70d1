"""The portal's keys, kept in its state directory (0600): the device CA that signs enrolled
devices' CSRs (the SBC trusts it), and the policy key that signs policies and commands (the
agent receives its public half at enrollment and trusts nothing unsigned)."""

from __future__ import annotations

import base64
import datetime as dt
import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.schemas import canonical

CA_CERT, CA_KEY, POLICY_KEY = "device-ca.pem", "device-ca.key", "policy.key"
DEVICE_CERT_DAYS = 365


class KeyError_(RuntimeError):
    pass


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def init_state(
    state: Path, ca_cert_pem: bytes | None = None, ca_key_pem: bytes | None = None
) -> None:
    """Create what is missing: a device CA (or the organisation's, given), a policy key."""
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not (state / CA_CERT).exists():
        if ca_cert_pem is None or ca_key_pem is None:
            ca_key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "guardphone device CA")])
            now = dt.datetime.now(dt.UTC)
            ca_cert_pem = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(ca_key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .sign(ca_key, hashes.SHA256())
                .public_bytes(serialization.Encoding.PEM)
            )
            ca_key_pem = ca_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        (state / CA_CERT).write_bytes(ca_cert_pem)
        _write_secret(state / CA_KEY, ca_key_pem)
    if not (state / POLICY_KEY).exists():
        key = ec.generate_private_key(ec.SECP256R1())
        _write_secret(
            state / POLICY_KEY,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )


class PortalKeys:
    def __init__(self, state: Path) -> None:
        try:
            self.ca_cert = x509.load_pem_x509_certificate((state / CA_CERT).read_bytes())
            self._ca_key = serialization.load_pem_private_key((state / CA_KEY).read_bytes(), None)
            self._policy_key = serialization.load_pem_private_key(
                (state / POLICY_KEY).read_bytes(), None
            )
        except (OSError, ValueError) as exc:
            raise KeyError_(f"portal keys in {state} are missing or unreadable: {exc}") from exc
        assert isinstance(self._policy_key, ec.EllipticCurvePrivateKey)
        self.policy_public_pem = (
            self._policy_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def issue(self, user: str, csr_pem: str) -> str:
        """The device certificate for `user` (the token decided who; the CSR's subject is
        ignored), followed by the CA. Raises ValueError for a CSR that does not verify."""
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        if not csr.is_signature_valid:
            raise ValueError("the CSR's signature does not verify")
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
            .issuer_name(self.ca_cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=DEVICE_CERT_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self._ca_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        return "".join(
            c.public_bytes(serialization.Encoding.PEM).decode() for c in (cert, self.ca_cert)
        )

    def sign(self, document: object) -> str:
        assert isinstance(self._policy_key, ec.EllipticCurvePrivateKey)
        signature = self._policy_key.sign(canonical(document), ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode()


def verify_device(cert_pem: str, data: bytes, signature: str) -> bool:
    """Whether the enrolled device's key made `signature` over `data`."""
    public = x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return False
    try:
        public.verify(base64.b64decode(signature, validate=True), data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True
