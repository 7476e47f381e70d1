"""Every way registration must be refused, each with its reason, and nothing sent in clear.

A packet capture on loopback runs for the whole module: no SIP request may appear in it in
clear text, and the SBC's own log must show no REGISTER from the servers we refused.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import keystore
from lab import lab as lab_mod
from lab import pki, sbc
from tests.services import run_agent

pytestmark = [pytest.mark.kamailio, pytest.mark.keychain]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """tshark on loopback for the module; yields the pcap path (read it after the tests)."""
    pcap = tmp_path_factory.mktemp("pcap") / "lo.pcap"
    proc = subprocess.Popen(
        ["tshark", "-q", "-i", "lo", "-w", str(pcap)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # tshark says when the capture is really running
        if "Capturing on" in line:
            break
    yield pcap
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def device(
    lab: Any, store: Any, write_config: Callable[..., Path]
) -> Iterator[Callable[..., Path]]:
    """Plant credentials for `user` under a keychain service of this test; return a config."""
    services: list[tuple[str, str]] = []

    def make(
        user: str, issued: pki.Issued | None, password: str | None = None, host: str = sbc.GOOD
    ) -> Path:
        service = f"guardphone-test-{uuid.uuid4().hex[:8]}"
        account = f"{user}@{lab.domain}"
        if issued is not None:
            creds = keystore.Credentials(issued.key_pem, issued.cert_pem, password or "x")
            keystore.save_credentials(store, service, account, creds)
        services.append((service, account))
        cfg = lab_mod.agent_config(user, lab.port, Path(lab.ca_file), host=host)
        cfg["keychain_service"] = service
        return write_config(cfg)

    yield make
    for service, account in services:
        keystore.delete_credentials(store, service, account)


def alice_config(lab: Any, write_config: Callable[..., Path], host: str) -> Path:
    return write_config(lab_mod.agent_config("alice", lab.port, Path(lab.ca_file), host=host))


def refused(lines: list[dict[str, Any]]) -> dict[str, Any]:
    assert lines, "no output"
    last = lines[-1]
    assert last["state"] == "refused", lines
    assert not any(line["state"] == "registered" for line in lines)
    return last


@pytest.mark.parametrize(
    ("host", "code", "words"),
    [
        (sbc.ROGUE, "server_cert_untrusted", "not issued by your company's CA"),
        (sbc.NAME_MISMATCH, "server_name_mismatch", "certificate for another name"),
        (sbc.EXPIRED, "server_cert_expired", "expired"),
    ],
    ids=["rogue-server-ca", "server-name-mismatch", "expired-server-cert"],
)
def test_untrusted_server_is_refused_before_anything_is_sent(
    capture: Path,
    lab: Any,
    env: dict[str, str],
    write_config: Callable[..., Path],
    host: str,
    code: str,
    words: str,
) -> None:
    log = Path(lab.directory) / "kamailio.log"
    before = log.read_text()
    rc, lines, _ = run_agent(alice_config(lab, write_config, host), "register", "--once", env=env)

    assert rc == 1
    last = refused(lines)
    assert last["code"] == code
    assert words in last["reason"]
    assert "nothing was sent" in last["reason"]
    # The SBC logs every request it receives: none arrived on the refused address.
    new = log.read_text()[len(before) :]
    assert f"via tls {host}" not in new.lower(), new


def test_missing_client_certificate_is_refused_locally(
    lab: Any, env: dict[str, str], device: Callable[..., Path]
) -> None:
    rc, lines, _ = run_agent(device("alice", None), "register", "--once", env=env)
    assert rc == 1
    last = refused(lines)
    assert last["code"] == "credentials_missing"
    assert "guardphone credentials import" in last["reason"]
    assert [line["state"] for line in lines] == ["checking", "refused"]  # never connected


def test_sbc_itself_refuses_a_client_without_certificate(lab: Any) -> None:
    import socket
    import ssl

    ctx = ssl.create_default_context(cafile=lab.ca_file)
    ctx.check_hostname = False
    with socket.create_connection((sbc.GOOD, lab.port), timeout=5) as raw:
        tls = ctx.wrap_socket(raw)
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
            # TLS 1.3 reports the refused (absent) client certificate on the first read.
            tls.sendall(b"OPTIONS sip:lab.guardphone.test SIP/2.0\r\n\r\n")
            if not tls.recv(1024):
                raise ConnectionResetError("closed by the SBC")


def test_client_certificate_from_rogue_ca_is_refused_by_sbc(
    lab: Any, env: dict[str, str], device: Callable[..., Path]
) -> None:
    rogue = pki.make_ca("Rogue CA", org="not the company")
    rc, lines, _ = run_agent(
        device("alice", pki.issue(rogue, "alice", server=False)), "register", "--once", env=env
    )
    assert rc == 1
    last = refused(lines)
    assert last["code"] == "client_cert_refused"
    assert "refused this device's certificate" in last["reason"]


def test_expired_device_certificate_is_refused_locally(
    lab: Any, lab_ca: pki.Issued, env: dict[str, str], device: Callable[..., Path]
) -> None:
    now = dt.datetime.now(dt.UTC)
    old = pki.issue(
        lab_ca, "alice", server=False, not_before=now - 40 * pki.DAY, not_after=now - pki.DAY
    )
    rc, lines, _ = run_agent(device("alice", old), "register", "--once", env=env)
    assert rc == 1
    last = refused(lines)
    assert last["code"] == "device_cert_invalid"
    assert "expired on" in last["reason"]
    assert "helpdesk" in last["reason"]


def test_another_users_certificate_is_refused_locally(
    lab: Any, lab_ca: pki.Issued, env: dict[str, str], device: Callable[..., Path]
) -> None:
    bobs = pki.issue(lab_ca, "bob", server=False)
    rc, lines, _ = run_agent(device("alice", bobs), "register", "--once", env=env)
    assert rc == 1
    last = refused(lines)
    assert last["code"] == "device_cert_invalid"
    assert "belongs to 'bob'" in last["reason"]


def test_wrong_password_is_refused_with_reason(
    lab: Any, lab_ca: pki.Issued, env: dict[str, str], device: Callable[..., Path]
) -> None:
    cert = pki.issue(lab_ca, "alice", server=False)
    rc, lines, _ = run_agent(
        device("alice", cert, password="not-the-password"), "register", "--once", env=env
    )
    assert rc == 1
    last = refused(lines)
    assert last["code"] == "auth_failed"
    assert "rejected the SIP password for alice" in last["reason"]


def test_malformed_config_is_refused_naming_file_and_key(
    env: dict[str, str], write_config: Callable[..., Path], lab: Any
) -> None:
    cfg = lab_mod.agent_config("alice", lab.port, Path(lab.ca_file))
    cfg["sbc"]["port"] = "five thousand"
    cfg["sbc"]["verify"] = False
    path = write_config(cfg)
    rc, lines, stderr = run_agent(path, "register", "--once", env=env)
    assert rc == 2
    assert str(path) in stderr
    assert "sbc.port" in stderr
    assert "sbc.verify: unknown setting" in stderr
    assert lines[-1]["code"] == "config_invalid"

    path.write_text('{"version": 1,')
    rc, _, stderr = run_agent(path, "register", "--once", env=env)
    assert rc == 2
    assert "not valid JSON at line 1" in stderr


def test_no_secret_service_is_refused_in_one_sentence(lab: Any, env: dict[str, str]) -> None:
    alice = next(u.config for u in lab.users if u.name == "alice")
    no_bus = {**env, "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent/bus"}
    rc, lines, _ = run_agent(alice, "register", "--once", env=no_bus)
    assert rc == 1
    last = refused(lines)
    assert last["code"] == "keychain_unavailable"
    assert "No keychain is available" in last["reason"]
    assert [line["state"] for line in lines] == ["refused"]


def test_wrong_sbc_pin_is_refused_before_registering(
    lab: Any, env: dict[str, str], write_config: Callable[..., Path]
) -> None:
    cfg = lab_mod.agent_config(
        "alice", lab.port, Path(lab.ca_file), pins=("sha256/" + "C" * 43 + "=",)
    )
    rc, lines, _ = run_agent(write_config(cfg), "register", "--once", env=env)
    assert rc == 1
    last = refused(lines)
    assert last["code"] == "pin_mismatch"
    assert [line["state"] for line in lines] == ["checking", "refused"]  # pjsip never started


def test_certificate_that_expires_while_registered_is_refused(
    lab: Any, lab_ca: pki.Issued, env: dict[str, str], device: Callable[..., Path]
) -> None:
    from tests.services import agent

    now = dt.datetime.now(dt.UTC)
    password = keystore.OsKeychain().get("guardphone", f"alice@{lab.domain}/sip-password")
    short = pki.issue(
        lab_ca,
        "alice",
        server=False,
        not_before=now - pki.DAY,
        not_after=now + dt.timedelta(seconds=6),
    )
    config = device("alice", short, password=password)
    with agent(config, "register", env=env) as alice:
        alice.wait_for("registered")
        expiring = next(line for line in alice.lines if line["state"] == "cert.expiring")
        assert expiring["level"] == "urgent" and expiring["days_left"] == 0
        refused = alice.wait_for("refused", timeout=15)
        alice.wait_for("unregistered", timeout=5)  # logged first, then torn down
    assert refused["code"] == "device_cert_expired"
    ended = dt.datetime.fromisoformat(refused["time"])
    assert ended - short.cert.not_valid_after_utc < dt.timedelta(seconds=2)
    assert "unregistered" in [line["state"] for line in alice.lines]


def test_revoked_device_certificate_is_refused_with_its_own_reason(
    lab: Any, env: dict[str, str]
) -> None:
    eve = Path(lab.directory) / "agents" / "eve.json"  # the lab put her certificate on the CRL
    rc, lines, _ = run_agent(eve, "register", "--once", env=env)
    assert rc == 1
    last = refused(lines)
    assert last["code"] == "client_cert_revoked"
    assert "revoked" in last["reason"] and "helpdesk" in last["reason"]
    assert [line["state"] for line in lines] == ["checking", "refused"]  # pjsip never started


def test_capture_holds_no_sip_in_clear(capture: Path, lab: Any) -> None:
    """Runs last in this module: everything above went over TLS or nowhere."""
    time.sleep(0.5)  # let tshark flush the last packets of the tests above
    data = capture.read_bytes()
    assert len(data) > 10_000, "the capture saw no traffic: it proves nothing"
    for method in (b"REGISTER sip:", b"INVITE sip:", b"OPTIONS sip:lab", b"SIP/2.0 "):
        assert method not in data, f"{method!r} crossed loopback in clear text"
