"""Fixtures shared by all tests: the real Secret Service and the real lab SBC (session-wide)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import SecretService, free_port


@pytest.fixture(scope="session")
def secret_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecretService]:
    service = SecretService(tmp_path_factory.mktemp("keychain"))
    # In-process keychain use (the lab, tests that plant credentials) talks to the same bus.
    patch = pytest.MonkeyPatch()
    for key, value in service.env.items():
        patch.setenv(key, value)
    yield service
    patch.undo()
    service.stop()


@pytest.fixture(scope="session")
def env(secret_service: SecretService) -> dict[str, str]:
    """Environment for agent subprocesses: the desktop session's Secret Service."""
    return secret_service.full_env()


@pytest.fixture(scope="session")
def store(secret_service: SecretService) -> Any:
    from agent.keystore import OsKeychain

    return OsKeychain()


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory, store: Any) -> Iterator[Any]:
    from lab import lab as lab_mod
    from lab import sbc

    directory = tmp_path_factory.mktemp("lab")
    port = free_port((sbc.GOOD, sbc.NAME_MISMATCH, sbc.EXPIRED, sbc.ROGUE))
    state = lab_mod.up(directory, store, port=port)
    yield state
    lab_mod.down(directory, store)


@pytest.fixture(scope="session")
def lab_ca(lab: Any) -> Any:
    """The session lab's CA, to issue more device certificates in tests."""
    from lab import pki

    return pki.load_ca(Path(lab.directory))


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write an agent config (a dict) to a file of this test and return its path."""

    def write(data: dict[str, Any], name: str = "agent.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(data))
        return path

    return write
