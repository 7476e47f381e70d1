"""The portal under test: the same tests on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import free_port


def pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return found[-1].parent if found else None


class Postgres:
    """A throwaway PostgreSQL cluster on loopback, run as the `postgres` system user and
    stopped by its PID."""

    def __init__(self) -> None:
        binary = pg_bin()
        if binary is None or os.geteuid() != 0:
            raise RuntimeError("PostgreSQL needs its Debian package and root to run here")
        # Its own directory outside pytest's (root-only) tree: the server runs as `postgres`.
        self.dir = Path(tempfile.mkdtemp(prefix="guardphone-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port(("127.0.0.1",))
        as_pg = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [
                *as_pg,
                str(binary / "initdb"),
                "-D",
                str(self.dir / "data"),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
            check=True,
            capture_output=True,
        )
        self.proc = subprocess.Popen(
            [
                *as_pg,
                str(binary / "postgres"),
                "-D",
                str(self.dir / "data"),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while subprocess.run(
            [str(binary / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
            capture_output=True,
            check=False,
        ).returncode:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("PostgreSQL did not start")
            time.sleep(0.2)
        self.count = 0

    def new_database(self) -> str:
        self.count += 1
        name = f"portal{self.count}"
        binary = pg_bin()
        assert binary is not None
        subprocess.run(
            [
                str(binary / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-c",
                f"CREATE DATABASE {name}",
            ],
            check=True,
            capture_output=True,
        )
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    if os.geteuid() != 0 or pg_bin() is None:
        pytest.skip("PostgreSQL runs here only as root with the Debian package (CI has both)")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres system user (install the Debian package)")
    server = Postgres()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'portal.db'}"
    server: Postgres = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture
def portal(db_url: str, tmp_path: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from portal import db
    from portal.app import PortalConfig, create_app
    from portal.keys import init_state

    init_state(tmp_path / "state")
    db.migrate(db_url)
    app = create_app(PortalConfig(db_url, tmp_path / "state", "corp.example"))
    with TestClient(app, base_url="https://portal.test") as client:
        client.sessions = app.state.sessions  # type: ignore[attr-defined]
        yield client


@pytest.fixture
def portal_files(tmp_path: Path) -> dict[str, Any]:
    """What `guardphone-portal serve` needs (PortalProcess's arguments): keys, a server
    certificate for 127.0.0.1 from a CA made now (ca.pem beside it), a SQLite database."""
    from lab import pki
    from portal.keys import init_state

    ca = pki.make_ca("Portal test CA")
    server = pki.issue(ca, "portal.test", server=True, ips=("127.0.0.1",))
    (tmp_path / "ca.pem").write_text(ca.cert_pem)
    (tmp_path / "portal.pem").write_text(server.cert_pem)
    (tmp_path / "portal.key").write_text(server.key_pem)
    init_state(tmp_path / "state")
    return {
        "db_url": f"sqlite:///{tmp_path / 'portal.db'}",
        "state": tmp_path / "state",
        "domain": "corp.example",
        "cert": tmp_path / "portal.pem",
        "key": tmp_path / "portal.key",
    }
