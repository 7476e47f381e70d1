"""The "why" view on the lab network: it names the failing check when the office tunnel goes
down, says what to do, and clears when the tunnel comes back. The app runs inside the lab's
laptop namespace (a real WireGuard tunnel), so it is driven as a process (why_driver.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.netlab import LAPTOP, WG_LAPTOP, netlab, user_config
from tests.services import Desktop, JsonLinesProcess

ROOT = Path(__file__).parents[2]
__all__ = ["netlab"]  # the fixture, used by name
pytestmark = [
    pytest.mark.root,
    pytest.mark.kamailio,
    pytest.mark.keychain,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]


def wait_until(proc: JsonLinesProcess, test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    while True:
        line = proc.wait_for("why", timeout=20)
        if test(line):
            return line


def test_why_view_lists_the_failing_check_and_updates_when_the_tunnel_returns(
    netlab: Any, env: dict[str, str], desktop: Desktop, tmp_path: Path, screenshots: Path
) -> None:
    config = user_config(netlab, "alice", paths=["wireguard"])
    shots = tmp_path / "why"
    shots.mkdir()
    command = ["ip", "netns", "exec", LAPTOP, sys.executable, "-m", "tests.ui.why_driver"]
    display = {"DISPLAY": desktop.display, "QT_QPA_PLATFORM": "xcb", "PYTHONPATH": str(ROOT)}
    driver = JsonLinesProcess([*command, str(config), str(shots)], env={**env, **display})
    try:
        ready = wait_until(driver, lambda line: line["status"] == "registered_wireguard")
        assert ready["failing"] == [] and ready["headline"] == "You can call"
        assert all(
            result == "pass" for name, result, *_ in ready["rows"] if "tunnel" in name.lower()
        )

        subprocess.run(["ip", "-n", LAPTOP, "link", "set", WG_LAPTOP, "down"], check=True)
        down = wait_until(driver, lambda line: line["failing"] != [])
        assert down["status"] == "refused" and down["headline"] == "Calls paused"
        assert down["failing"][0] == "Office tunnel connected"
        row = next(r for r in down["rows"] if r[0] == "Office tunnel connected")
        assert WG_LAPTOP in row[2] and "down" in row[2]  # what was seen
        assert row[3].startswith("Connect to the office tunnel")  # what to do
        shutil.copy(down["screenshot"], screenshots / "why.png")

        subprocess.run(["ip", "-n", LAPTOP, "link", "set", WG_LAPTOP, "up"], check=True)
        back = wait_until(driver, lambda line: line["status"] == "registered_wireguard")
        assert back["failing"] == [] and back["headline"] == "You can call"
    finally:
        driver.stop()
    assert driver.proc.returncode == 0, driver.output_tail()
