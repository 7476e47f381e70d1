"""The event log under real conditions: killed writers, and the agent writing its states."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.events import EventLog
from tests.services import run_agent, run_cli

WRITER = """
import sys
from pathlib import Path
from agent.events import EventLog
log = EventLog(Path(sys.argv[1]))
while True:
    event = log.append("call.placed", "info", {"uri": "sip:bob@lab", "pad": "x" * 200})
    print(event.seq, flush=True)  # acknowledged: committed before this line exists
"""


def test_kill_9_fifty_times_loses_nothing_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    acknowledged = 0
    rng = random.Random(5)
    for _ in range(50):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # it is writing
        time.sleep(rng.uniform(0, 0.03))
        os.kill(proc.pid, signal.SIGKILL)
        lines = proc.stdout.read().split()
        proc.wait()
        if lines:
            acknowledged = max(acknowledged, int(lines[-1]))
    log = EventLog(path)
    result = log.verify()
    assert result.ok, result
    assert result.count >= acknowledged > 50
    seqs = [e.seq for e in log.query(limit=10**9)]
    assert seqs == list(range(1, result.count + 1))


@pytest.mark.kamailio
@pytest.mark.keychain
def test_agent_states_are_in_the_log_before_they_are_shown(lab: Any, env: dict[str, str]) -> None:
    alice = next(u.config for u in lab.users if u.name == "alice")
    code, lines, stderr = run_agent(alice, "register", "--once", env=env)
    assert code == 0, stderr
    assert all("seq" in line for line in lines)
    shown = run_cli(alice, "events", "--json", env=env, check=True).stdout
    events = {e["seq"]: e for e in map(json.loads, shown.splitlines())}
    for line in lines:
        event = events[line["seq"]]
        assert event["time"] == line["time"]  # the very state, committed before it was printed
        assert {k: v for k, v in line.items() if k not in ("state", "time", "seq")} == {
            k: v for k, v in event["fields"].items()
        }
    types = [events[line["seq"]]["type"] for line in lines]
    assert types == ["agent.checking", "gate.allowed", "sip.registered", "sip.unregistered"]
    verify = run_cli(alice, "events", "verify", env=env)
    assert verify.returncode == 0 and "chain intact" in verify.stdout


@pytest.mark.kamailio
@pytest.mark.keychain
def test_prune_signs_a_checkpoint_with_the_device_key(
    lab: Any, env: dict[str, str], tmp_path: Path
) -> None:
    bob = json.loads(Path(next(u.config for u in lab.users if u.name == "bob")).read_text())
    bob["event_log"] = str(tmp_path / "bob.db")
    config = tmp_path / "bob.json"
    config.write_text(json.dumps(bob))
    for _ in range(2):
        code, _, stderr = run_agent(config, "register", "--once", env=env)
        assert code == 0, stderr

    def gp(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(str(config), "events", *args, env=env)

    pruned = gp("prune", "--keep", "3")
    assert pruned.returncode == 0 and "dropped 5 record(s)" in pruned.stdout
    verified = json.loads(gp("verify", "--json").stdout)
    assert verified == {
        "ok": True,
        "records": 3,
        "first_broken": None,
        "problem": "",
        "checkpoint_signature_checked": True,
    }
    assert [json.loads(line)["seq"] for line in gp("--json").stdout.splitlines()] == [6, 7, 8]
