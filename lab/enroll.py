"""The lab's minimal enrollment endpoint (docs/enrollment.md), until the portal exists.

Runs as its own process (`python -m lab.enroll DIR PORT`), HTTPS with a lab-CA certificate.
Its secrets (one-time tokens and the SIP passwords they hand out) arrive as JSON on stdin,
and the lab CA key is read from the lab directory to sign the CSRs. Every request is logged
(method, path, outcome; never the token) so tests can see what reached it.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


class Enrollment:
    """Tokens -> identities; each token works once."""

    def __init__(self, directory: Path, secrets: dict[str, Any]) -> None:
        self.ca_cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
        self.ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
        self.domain = secrets["domain"]
        self.tokens: dict[str, dict[str, str]] = secrets["tokens"]  # token -> {user, password}
        self.lock = threading.Lock()

    def enroll(self, token: str, csr_pem: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            identity = self.tokens.pop(token, None)
        if identity is None:
            return 401, {"error": "token_invalid"}
        code, answer = self.issue(identity["user"], csr_pem)
        if code != 200:
            with self.lock:
                self.tokens[token] = identity  # the token was not spent on a broken request
            return code, answer
        answer["sip"] = {
            "user": identity["user"],
            "domain": self.domain,
            "password": identity["password"],
        }
        return code, answer

    def renew(self, peer: dict[str, Any] | None, csr_pem: str) -> tuple[int, dict[str, Any]]:
        """Renewal is authenticated by the current device certificate (mutual TLS)."""
        names = dict(item[0] for item in (peer or {}).get("subject", ()))
        user = names.get("commonName")
        if not user:
            return 401, {"error": "client_certificate_required"}
        return self.issue(str(user), csr_pem)

    def issue(self, user: str, csr_pem: str) -> tuple[int, dict[str, Any]]:
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
            if not csr.is_signature_valid:
                raise ValueError("bad signature")
        except ValueError as exc:
            return 400, {"error": "csr_invalid", "detail": str(exc)}
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "guardphone lab"),
                        x509.NameAttribute(NameOID.COMMON_NAME, user),
                    ]
                )
            )
            .issuer_name(self.ca_cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self.ca_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        chain = "".join(
            c.public_bytes(serialization.Encoding.PEM).decode() for c in (cert, self.ca_cert)
        )
        return 200, {"certificate_chain": chain, "device_id": f"lab-{cert.serial_number:x}"[:20]}


def serve(directory: Path, port: int, secrets: dict[str, Any]) -> None:
    enrollment = Enrollment(directory, secrets)
    log = (directory / "enroll.log").open("a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            try:
                body = json.loads(self.rfile.read(min(length, 65536)))
                if self.path == "/v1/enroll":
                    code, answer = enrollment.enroll(str(body["token"]), str(body["csr"]))
                elif self.path == "/v1/renew":
                    peer = self.connection.getpeercert()
                    code, answer = enrollment.renew(peer, str(body["csr"]))
                else:
                    code, answer = 404, {"error": "not_found"}
            except (ValueError, KeyError, TypeError):
                code, answer = 400, {"error": "bad_request"}
            log.write(f"POST {self.path} {code}\n")
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt: str, *args: Any) -> None:
            pass  # our own log above never shows the request body

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(directory / "portal.pem", directory / "portal.key")
    # Enrollment needs no client certificate; renewal is authenticated by the current one.
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(directory / "ca.pem")
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.stdin.readline()))
