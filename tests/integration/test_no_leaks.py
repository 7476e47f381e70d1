"""What the live agent process exposes: its sockets, and where its secrets are (only memory)."""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path
from typing import Any

import platformdirs
import psutil
import pytest
from cryptography.hazmat.primitives import serialization

from agent import keystore
from tests.services import agent, run_agent

pytestmark = [pytest.mark.kamailio, pytest.mark.keychain]


def config_of(lab: Any, name: str) -> str:
    return next(u.config for u in lab.users if u.name == name)


def test_agent_holds_only_its_tls_sockets(lab: Any, env: dict[str, str]) -> None:
    with agent(config_of(lab, "bob"), "answer", "--count", "1", env=env) as bob:
        bob.wait_for("registered")
        proc = psutil.Process(bob.pid)
        conns = proc.net_connections(kind="inet")
        listeners = [c for c in conns if c.status == psutil.CONN_LISTEN]
        # One listener (the TLS transport pjsip always opens), on the protected path's address.
        assert len(listeners) == 1, conns
        assert listeners[0].laddr.ip == "127.0.0.1"
        # No UDP socket at all while idle: no UDP SIP transport, no media before a call.
        assert [c for c in conns if c.type == 2] == []  # SOCK_DGRAM
        tcp = [c for c in conns if c.status == psutil.CONN_ESTABLISHED]
        assert [(c.raddr.ip, c.raddr.port) for c in tcp] == [("127.0.0.1", lab.port)]
        assert all(c.laddr.ip == "127.0.0.1" for c in conns)

        with agent(
            config_of(lab, "alice"),
            "call",
            "sip:bob@lab.guardphone.test",
            "--hangup-after",
            "1",
            env=env,
        ) as alice:
            bob.wait_for("call_established")
            in_call = proc.net_connections(kind="inet")
            udp = [c for c in in_call if c.type == 2]
            # Media: RTP + RTCP, bound to the protected path's address only.
            assert len(udp) == 2, in_call
            assert all(c.laddr.ip == "127.0.0.1" for c in udp)
            assert len([c for c in in_call if c.status == psutil.CONN_LISTEN]) == 1
            alice.wait_for("call_ended")


def secrets_of(store: Any, account: str) -> list[bytes]:
    creds = keystore.load_credentials(store, "guardphone", account)
    key = serialization.load_pem_private_key(creds.key_pem.encode(), None)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    body = "".join(creds.key_pem.strip().splitlines()[1:-1]).encode()
    return [
        creds.sip_password.encode(),
        der[-32:],  # the private scalar's neighbourhood: catches DER dumps
        body[:64],  # catches PEM copies
        base64.b64encode(der)[:64],
    ]


def scan(root: Path, needles: list[bytes], skip: tuple[Path, ...]) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not any((here / d) == s for s in skip)]
        for name in filenames:
            path = here / name
            try:
                if not path.is_file() or path.stat().st_size > 20_000_000:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            found += [f"{path}" for n in needles if n in data]
    return found


def test_no_key_material_outside_the_keychain(
    lab: Any, env: dict[str, str], store: Any, secret_service: Any
) -> None:
    needles = secrets_of(store, "alice@lab.guardphone.test")
    with agent(config_of(lab, "bob"), "answer", "--count", "1", env=env) as bob:
        bob.wait_for("registered")
        with agent(
            config_of(lab, "alice"),
            "call",
            "sip:bob@lab.guardphone.test",
            "--hangup-after",
            "1",
            env=env,
        ) as alice:
            alice.wait_for("call_established")
            proc = psutil.Process(alice.pid)
            exposed = "\0".join([*proc.cmdline(), *(f"{k}={v}" for k, v in proc.environ().items())])
            assert not [n for n in needles if n in exposed.encode()]
            assert not [n for n in needles if n in Path(f"/proc/{alice.pid}/cmdline").read_bytes()]
            alice.wait_for("call_ended")
    rc, _, stderr = run_agent(config_of(lab, "alice"), "register", "--once", env=env)
    assert rc == 0, stderr

    # The keychain's own (encrypted) store and the lab's SBC side are not the agent's.
    skip = (Path(secret_service.env["XDG_DATA_HOME"]), Path(lab.directory))
    places = [
        Path(platformdirs.user_config_dir("guardphone")),
        Path(platformdirs.user_data_dir("guardphone")),
        Path(platformdirs.user_state_dir("guardphone")),
        Path(platformdirs.user_cache_dir("guardphone")),
        Path(platformdirs.user_log_dir("guardphone")),
        Path(tempfile.gettempdir()),
        Path.cwd(),
    ]
    leaks = [hit for place in places if place.exists() for hit in scan(place, needles, skip)]
    assert leaks == []

    # The scan itself can see a leak: plant one and look again.
    with tempfile.NamedTemporaryFile(dir=tempfile.gettempdir()) as planted:
        planted.write(b"log line " + needles[0] + b"\n")
        planted.flush()
        assert scan(Path(tempfile.gettempdir()), needles, skip) == [planted.name]
