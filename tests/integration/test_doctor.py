"""`guardphone doctor` on the lab: every dependency checked with a fix, exit 1 when calling is
blocked, JSON for MDM scripts; it observes the paths but never registers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.services import run_cli

pytestmark = [pytest.mark.kamailio, pytest.mark.keychain]


def alice(lab: Any) -> Path:
    return Path(next(u.config for u in lab.users if u.name == "alice"))


def doctor(config: Path, env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    done = run_cli(str(config), "doctor", "--json", env=env)
    return done.returncode, json.loads(done.stdout)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def test_a_healthy_device_passes_and_nothing_registers(lab: Any, env: dict[str, str]) -> None:
    log = Path(lab.directory) / "kamailio.log"
    before = log.read_text(errors="replace")
    code, report = doctor(alice(lab), env)
    assert code == 0 and report["ok"] is True
    checks = by_name(report)
    for name in ("Configuration", "Keychain", "Device certificate", "Protected path"):
        assert checks[name]["result"] == "pass", checks[name]
    assert "REGISTER from alice" not in log.read_text(errors="replace")[len(before) :]
    text = run_cli(str(alice(lab)), "doctor", env=env)
    assert text.returncode == 0 and text.stdout.strip().endswith("Nothing blocks calling.")


def test_a_closed_sbc_blocks_calling_and_says_what_to_do(
    lab: Any, env: dict[str, str], tmp_path: Path
) -> None:
    data = json.loads(alice(lab).read_text())
    data["sbc"]["port"] = 9  # nothing listens there
    config = tmp_path / "alice-closed.json"
    config.write_text(json.dumps(data))
    code, report = doctor(config, env)
    assert code == 1 and report["ok"] is False
    checks = by_name(report)
    assert checks["Protected path"]["blocks_calls"] is True
    sbc = checks["Company SBC reachable and verified"]
    assert sbc["result"] == "fail" and "online" in sbc["fix"]


def test_no_keychain_is_named_with_its_fix(lab: Any, env: dict[str, str]) -> None:
    no_bus = {**env, "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent/bus"}
    code, report = doctor(alice(lab), no_bus)
    assert code == 1
    keychain = by_name(report)["Keychain"]
    assert keychain["result"] == "fail" and keychain["blocks_calls"] is True
    assert "Log in to the desktop session" in keychain["fix"]
