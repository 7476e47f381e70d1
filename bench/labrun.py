"""A fresh lab for one benchmark: its own directory, SBC port and (with `with_net`)
namespaces; stopped by the benchmark when it is done, whatever happened."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from agent import keystore
from lab import lab as lab_mod
from lab import sbc
from lab.lab import LabState
from tests.services import free_port


def start(name: str, **options: Any) -> tuple[LabState, keystore.OsKeychain]:
    store = keystore.OsKeychain()
    directory = Path(tempfile.mkdtemp(prefix=f"guardphone-bench-{name}-"))
    port = free_port((sbc.GOOD, sbc.NAME_MISMATCH, sbc.EXPIRED, sbc.ROGUE))
    return lab_mod.up(directory, store, port=port, **options), store


def stop(state: LabState, store: keystore.OsKeychain) -> None:
    """Stop the lab and remove its directory: the peers' configurations there hold lab keys
    (baresip's certificate file, the floor peer's material)."""
    lab_mod.down(Path(state.directory), store)
    shutil.rmtree(state.directory, ignore_errors=True)
