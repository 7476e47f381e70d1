"""The managed configuration while the agent runs: followed, validated, and winning."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from agent import managed
from tests.services import agent

pytestmark = [
    pytest.mark.kamailio,
    pytest.mark.keychain,
    pytest.mark.skipif(os.geteuid() != 0, reason="a managed file must belong to root"),
]


def config_of(lab: Any, name: str) -> str:
    return next(u.config for u in lab.users if u.name == name)


def write(path: Path, doc: dict[str, Any] | str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    tmp.chmod(0o644)
    tmp.replace(path)  # atomically, as MDM agents do


def test_managed_changes_are_followed_and_a_bad_one_is_rejected(
    lab: Any, env: dict[str, str], tmp_path: Path
) -> None:
    managed_file = tmp_path / "managed.json"
    write(managed_file, {"locked": True, "account": {"display_name": "Alice (managed)"}})
    menv = {**env, managed.OVERRIDE_ENV: str(managed_file)}
    with agent(config_of(lab, "alice"), "register", env=menv) as alice:
        alice.wait_for("registered")

        time.sleep(1.1)  # a new mtime
        write(
            managed_file,
            {
                "locked": True,
                "media": {"qos": False},
                "account": {"display_name": "Alice (managed)"},
            },
        )
        changed = alice.wait_for("config.changed", timeout=5)
        assert changed["key"] == "media.qos"
        assert (changed["old"], changed["new"], changed["source"]) == (True, False, "managed")
        alice.wait_for("registered", timeout=5)  # re-registered under the new configuration

        time.sleep(1.1)
        write(managed_file, '{"locked": true, "sbc": {"port": "not a port"')
        rejected = alice.wait_for("config_rejected", timeout=5)
        assert str(managed_file) in rejected["reason"]
        assert "stays" in rejected["reason"]

        time.sleep(1.1)
        wrong_pin = "sha256/" + "D" * 43 + "="
        write(
            managed_file,
            {
                "locked": True,
                "sbc": {"spki_pins": [wrong_pin]},
                "media": {"qos": False},
                "account": {"display_name": "Alice (managed)"},
            },
        )
        pinned = alice.wait_for("config.changed", timeout=5)
        assert pinned["key"] == "sbc.spki_pins" and pinned["new"] == [wrong_pin]
        refused = alice.wait_for("refused", timeout=5)
        assert refused["code"] == "pin_mismatch"  # a stricter setting takes effect at once
    states = [line["state"] for line in alice.lines]
    # The bad file changed nothing: no unregistration between the rejection and the pin.
    between = states[states.index("config_rejected") : states.index("refused")]
    assert between.count("unregistered") == 1  # only the one the pin change caused


def test_managed_file_that_users_can_edit_is_refused(
    lab: Any, env: dict[str, str], tmp_path: Path
) -> None:
    from tests.services import run_agent

    managed_file = tmp_path / "managed.json"
    write(managed_file, {"locked": False})
    managed_file.chmod(0o666)
    rc, lines, stderr = run_agent(
        config_of(lab, "alice"),
        "register",
        "--once",
        env={**env, managed.OVERRIDE_ENV: str(managed_file)},
    )
    assert rc == 2
    assert "writable by no one else" in stderr
    assert lines[-1]["code"] == "config_invalid"
