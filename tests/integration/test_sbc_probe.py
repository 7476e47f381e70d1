"""tunnel.sbc.probe against the real lab SBC (and two small misbehaving TLS servers)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from agent import keystore
from lab import pki, sbc
from tunnel.sbc import ProbeTarget, probe, spki_pin

pytestmark = [pytest.mark.kamailio, pytest.mark.keychain]


@pytest.fixture(scope="module")
def good_pin(lab: Any) -> str:
    return spki_pin(x509.load_pem_x509_certificate((Path(lab.directory) / "sbc.pem").read_bytes()))


def target(
    lab: Any,
    store: Any,
    host: str = sbc.GOOD,
    port: int | None = None,
    pins: tuple[str, ...] = (),
    device: pki.Issued | None = None,
    user: str = "alice",
) -> ProbeTarget:
    if device is None:
        creds = keystore.load_credentials(store, "guardphone", f"alice@{lab.domain}")
        cert, key = creds.cert_pem, creds.key_pem
    else:
        cert, key = device.cert_pem, device.key_pem
    return ProbeTarget(
        host, port or lab.port, lab.domain, user, Path(lab.ca_file).read_text(), cert, key, pins
    )


def test_good_sbc_with_pin(lab: Any, store: Any, good_pin: str) -> None:
    result = probe(target(lab, store, pins=(good_pin,)))
    assert (result.ok, result.code, result.pin_match) == (True, "ok", True)
    assert result.tls_version in ("TLSv1.2", "TLSv1.3")
    assert result.latency_ms is not None and result.latency_ms < 1000


def test_pin_rotation_accepts_either_pin(lab: Any, store: Any, good_pin: str) -> None:
    other = "sha256/" + "A" * 43 + "="
    assert probe(target(lab, store, pins=(other, good_pin))).ok


@pytest.mark.parametrize(
    ("host", "code"),
    [
        (sbc.ROGUE, "server_cert_untrusted"),
        (sbc.NAME_MISMATCH, "server_name_mismatch"),
        (sbc.EXPIRED, "server_cert_expired"),
    ],
)
def test_bad_server_certificates(lab: Any, store: Any, host: str, code: str) -> None:
    result = probe(target(lab, store, host=host))
    assert (result.ok, result.code) == (False, code)


def test_wrong_pin(lab: Any, store: Any) -> None:
    result = probe(target(lab, store, pins=("sha256/" + "B" * 43 + "=",)))
    assert (result.ok, result.code, result.pin_match) == (False, "pin_mismatch", False)
    assert "interception" in result.detail


def test_client_certificate_from_rogue_ca(lab: Any, store: Any) -> None:
    rogue = pki.make_ca("Rogue")
    result = probe(target(lab, store, device=pki.issue(rogue, "alice", server=False)))
    assert (result.ok, result.code) == (False, "client_cert_refused")


def test_certificate_of_another_user_is_rejected(lab: Any, store: Any, lab_ca: pki.Issued) -> None:
    result = probe(target(lab, store, device=pki.issue(lab_ca, "bob", server=False)))
    assert (result.ok, result.code) == (False, "sbc_rejected")
    assert "403" in result.detail


def test_unreachable(lab: Any, store: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    result = probe(target(lab, store, port=free))
    assert (result.ok, result.code) == (False, "sbc_unreachable")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for c in conns:
        c.close()
    server.close()


def test_timeout(lab: Any, store: Any, silent_server: int) -> None:
    result = probe(target(lab, store, port=silent_server), timeout_s=0.5)
    assert (result.ok, result.code) == (False, "sbc_timeout")


@pytest.fixture
def tls11_server(lab: Any, lab_ca: pki.Issued, tmp_path: Path) -> Iterator[int]:
    """A server that speaks only TLS 1.1 (an old SBC)."""
    leaf = pki.issue(lab_ca, "old-sbc", server=True, ips=("127.0.0.1",))
    (tmp_path / "c.pem").write_text(leaf.cert_pem)
    (tmp_path / "k.pem").write_text(leaf.key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        try:
            ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            pass
        finally:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    thread.join(5)
    server.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_older_than_1_2(lab: Any, store: Any, tls11_server: int) -> None:
    result = probe(target(lab, store, port=tls11_server))
    assert (result.ok, result.code) == (False, "tls_too_old")
