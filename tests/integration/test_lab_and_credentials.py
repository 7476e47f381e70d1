"""`guardphone lab up|down` and `guardphone credentials import`, run as users run them."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest

from agent import keystore
from lab import lab as lab_mod
from lab import pki, sbc
from tests.services import GUARDPHONE, free_port, run_agent

pytestmark = [pytest.mark.kamailio, pytest.mark.keychain]


def gp(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GUARDPHONE, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_lab_up_json_is_idempotent_and_down_stops_by_pid(
    tmp_path: Path, env: dict[str, str], store: Any, lab: Any
) -> None:
    port = str(free_port((sbc.GOOD, sbc.NAME_MISMATCH, sbc.EXPIRED, sbc.ROGUE)))
    directory = tmp_path / "lab"
    # Its own keychain service: this lab must not touch the session lab's users.
    service = ["--keychain-service", "guardphone-lab-cli-test"]
    first = gp("lab", "up", "--dir", str(directory), "--port", port, *service, "--json", env=env)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert [u["name"] for u in data["users"]] == ["alice", "bob", "carol"]
    for user in data["users"]:
        assert user["uri"] == f"sip:{user['name']}@lab.guardphone.test"
        assert json.loads(Path(user["config"]).read_text())["account"]["user"] == user["name"]
    pid = lab_mod.read_state(directory).kamailio_pid  # type: ignore[union-attr]
    assert psutil.pid_exists(pid)

    again = gp("lab", "up", "--dir", str(directory), "--port", port, *service, "--json", env=env)
    assert again.returncode == 0
    assert lab_mod.read_state(directory).kamailio_pid == pid  # type: ignore[union-attr]

    # The SBC never holds a plain password, only HA1; no device key is on disk.
    kam = (directory / "kamailio.cfg").read_text()
    assert "$sht(ha1=>alice)" in kam
    password = store.get("guardphone-lab-cli-test", "alice@lab.guardphone.test/sip-password")
    assert password and password not in kam
    assert not list((directory / "agents").glob("*.key"))

    down = gp("lab", "down", "--dir", str(directory), env=env)
    assert down.returncode == 0 and "stopped" in down.stdout
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.wait_procs([psutil.Process(pid)], timeout=5)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert store.get("guardphone-lab-cli-test", "alice@lab.guardphone.test/device-key") is None
    # The session lab's alice is untouched by this second lab coming and going.
    assert store.get(lab.keychain_service, "alice@lab.guardphone.test/device-key") is not None
    assert "was not running" in gp("lab", "down", "--dir", str(directory), env=env).stdout


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
def test_sbc_refuses_tls_older_than_1_2(lab: Any, lab_ca: pki.Issued, tmp_path: Path) -> None:
    import socket
    import ssl

    device = pki.issue(lab_ca, "alice", server=False)
    (tmp_path / "c.pem").write_text(device.cert_pem)
    (tmp_path / "k.pem").write_text(device.key_pem)

    def handshake(version: ssl.TLSVersion) -> str:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(lab.ca_file)
        ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
        ctx.check_hostname = False
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        ctx.minimum_version = ctx.maximum_version = version
        with (
            socket.create_connection((sbc.GOOD, lab.port), timeout=5) as raw,
            ctx.wrap_socket(raw) as tls,
        ):
            return str(tls.version())

    assert handshake(ssl.TLSVersion.TLSv1_2) == "TLSv1.2"  # the control: same client, 1.2
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        handshake(ssl.TLSVersion.TLSv1_1)


def import_config(lab: Any, tmp_path: Path, service: str) -> Path:
    cfg = lab_mod.agent_config("alice", lab.port, Path(lab.ca_file))
    cfg["keychain_service"] = service
    path = tmp_path / "alice.json"
    path.write_text(json.dumps(cfg))
    return path


def password_of(store: Any) -> str:
    value = store.get("guardphone", "alice@lab.guardphone.test/sip-password")
    assert value
    return str(value)


def test_import_pkcs12_then_register(
    lab: Any, lab_ca: pki.Issued, tmp_path: Path, env: dict[str, str], store: Any
) -> None:
    service = "guardphone-import-p12"
    config = import_config(lab, tmp_path, service)
    bundle = tmp_path / "alice.p12"
    bundle.write_bytes(pki.issue(lab_ca, "alice", server=False).pkcs12(b"bundle pw", [lab_ca.cert]))
    try:
        done = gp(
            "--config",
            str(config),
            "credentials",
            "import",
            "--p12",
            str(bundle),
            env=env,
            stdin=f"bundle pw\n{password_of(store)}\n",
        )
        assert done.returncode == 0, done.stderr
        assert "Imported the device certificate for alice" in done.stdout
        assert store.get(service, "alice@lab.guardphone.test/device-key").startswith(
            "-----BEGIN PRIVATE KEY-----"
        )
        code, lines, err = run_agent(config, "register", "--once", env=env)
        assert code == 0, err
        assert lines[2]["state"] == "registered"
        # Nothing was copied next to the config or the bundle.
        assert sorted(p.name for p in tmp_path.iterdir()) == ["alice.json", "alice.p12"]
    finally:
        keystore.delete_credentials(store, service, "alice@lab.guardphone.test")


def test_import_pem_files_and_refusals(
    lab: Any, lab_ca: pki.Issued, tmp_path: Path, env: dict[str, str], store: Any
) -> None:
    service = "guardphone-import-pem"
    config = import_config(lab, tmp_path, service)
    issued = pki.issue(lab_ca, "alice", server=False)
    key, cert = tmp_path / "alice.key", tmp_path / "alice.crt"
    key.write_text(issued.key_pem)
    cert.write_text(issued.cert_pem)
    try:
        ok = gp(
            "--config",
            str(config),
            "credentials",
            "import",
            "--key",
            str(key),
            "--cert",
            str(cert),
            env=env,
            stdin="pw\n",
        )
        assert ok.returncode == 0, ok.stderr
        assert store.get(service, "alice@lab.guardphone.test/sip-password") == "pw"

        bob = pki.issue(lab_ca, "bob", server=False)
        cert.write_text(bob.cert_pem)
        key.write_text(bob.key_pem)
        wrong = gp(
            "--config",
            str(config),
            "credentials",
            "import",
            "--key",
            str(key),
            "--cert",
            str(cert),
            env=env,
            stdin="pw\n",
        )
        assert wrong.returncode == 1
        assert "belongs to 'bob'" in wrong.stderr

        no_bus = {**env, "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent"}
        cert.write_text(issued.cert_pem)
        key.write_text(issued.key_pem)
        refused = gp(
            "--config",
            str(config),
            "credentials",
            "import",
            "--key",
            str(key),
            "--cert",
            str(cert),
            env=no_bus,
            stdin="pw\n",
        )
        assert refused.returncode == 1
        assert "No keychain is available" in refused.stderr
    finally:
        keystore.delete_credentials(store, service, "alice@lab.guardphone.test")


def test_status_reports_ready_without_network(lab: Any, env: dict[str, str]) -> None:
    alice = next(u.config for u in lab.users if u.name == "alice")
    done = gp("--config", alice, "status", "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["state"] == "ready"
    assert report["device_certificate"]["subject"] == "alice"
    assert report["keychain"] == "keyring.backends.SecretService.Keyring"


def test_sbc_binds_certificate_to_sip_user(lab: Any, lab_ca: pki.Issued, tmp_path: Path) -> None:
    """Even a client that skips guardphone's local check cannot register as someone else."""
    import socket
    import ssl

    bob = pki.issue(lab_ca, "bob", server=False)
    (tmp_path / "c.pem").write_text(bob.cert_pem)
    (tmp_path / "k.pem").write_text(bob.key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(lab.ca_file)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    ctx.check_hostname = False

    def register_as(user: str) -> str:
        with (
            socket.create_connection((sbc.GOOD, lab.port), timeout=5) as raw,
            ctx.wrap_socket(raw) as tls,
        ):
            host, port = tls.getsockname()[:2]
            request = (
                f"REGISTER sip:{lab.domain} SIP/2.0\r\n"
                f"Via: SIP/2.0/TLS {host}:{port};branch=z9hG4bK-{user}-1;rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:{user}@{lab.domain}>;tag=t1\r\n"
                f"To: <sip:{user}@{lab.domain}>\r\n"
                f"Call-ID: identity-{user}@test\r\n"
                "CSeq: 1 REGISTER\r\n"
                f"Contact: <sip:{user}@{host}:{port};transport=tls>\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            tls.sendall(request.encode())
            return tls.recv(4096).decode().split("\r\n")[0]

    assert register_as("alice") == "SIP/2.0 403 Certificate does not match user"
    assert register_as("bob") == "SIP/2.0 401 Unauthorized"  # the control: own name -> digest


def test_credentials_show_lists_facts_never_the_key(
    lab: Any, env: dict[str, str], store: Any
) -> None:
    alice = next(u.config for u in lab.users if u.name == "alice")
    done = gp("--config", alice, "credentials", "show", "--json", env=env)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["subject"] == "alice" and shown["issuer"] == "guardphone Lab CA"
    assert len(shown["sha256_fingerprint"].split(":")) == 32
    assert 360 < shown["days_left"] < 366
    assert shown["device_key"] == "in the keychain"
    key = store.get("guardphone", "alice@lab.guardphone.test/device-key")
    body = "".join(key.strip().splitlines()[1:-1])
    assert body[:40] not in done.stdout and "PRIVATE" not in done.stdout


def test_lab_sbc_issues_no_tls_session_tickets(lab: Any, store: Any) -> None:
    """Kamailio 5.6 with OpenSSL 3 crashed resuming a ticket (a CI run lost its SBC): the
    lab turns tickets off, and this keeps them off."""
    import socket
    import ssl

    from agent import keystore
    from tunnel.sbc import memory_file

    creds = keystore.load_credentials(store, lab.keychain_service, "alice@lab.guardphone.test")
    ctx = ssl.create_default_context(cafile=str(Path(lab.directory) / "ca.pem"))
    ctx.check_hostname = False
    with (  # the key stays in memory, as the agent keeps it
        memory_file("cert", creds.cert_pem.encode()) as cert,
        memory_file("key", creds.key_pem.encode()) as key,
    ):
        ctx.load_cert_chain(cert, key)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", lab.port), timeout=5) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        assert tls.session is not None and not tls.session.has_ticket
