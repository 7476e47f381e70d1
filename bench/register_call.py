"""Registration time, call setup time and RSS of the agent, against bare pjsua2, same lab.

Run with `make bench ONLY=register_call` (inside a private Secret Service). The peer is bare pjsua2
with the same TLS and SRTP settings (lab/bare_peer.py): the ratio is what guardphone's
checks, supervisor and CLI add on top of PJSIP. Prints a table and writes JSON with the
machine's description to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from agent import config
from agent.material import load as load_material
from bench import labrun, results_file
from bench.table import Row, render
from tests.services import GUARDPHONE, AgentProcess

BARE = [sys.executable, "-m", "lab.bare_peer"]
# Python + pjsua2 and nothing else: no configuration models, no keychain, no checks.
FLOOR_PEER = "Python + pjsua2 floor, material from a file"


def lines_until(proc: subprocess.Popen[str], wanted: str) -> list[dict[str, Any]]:
    assert proc.stdout is not None
    seen = []
    for raw in proc.stdout:
        if not raw.startswith("{"):
            continue
        item = json.loads(raw)
        seen.append(item)
        if item.get("state") == wanted or item.get("event") == wanted:
            return seen
    raise RuntimeError(f"{wanted!r} never came; saw {seen}")


def start_to_registered(cmd: list[str]) -> float:
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    lines_until(proc, "registered")
    took = time.monotonic() - t0
    proc.wait(10)
    return took * 1000


def iso(t: str) -> float:
    return dt.datetime.fromisoformat(t).timestamp()


def agent_call_setup(alice: str) -> float:
    proc = subprocess.Popen(
        [
            GUARDPHONE,
            "--config",
            alice,
            "call",
            "sip:bob@lab.guardphone.test",
            "--hangup-after",
            "0.1",
            "--json",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    seen = lines_until(proc, "call_established")
    proc.wait(10)
    calling = next(s for s in seen if s["state"] == "calling")
    return (iso(seen[-1]["time"]) - iso(calling["time"])) * 1000


def bare_call_setup(alice: str) -> float:
    proc = subprocess.Popen(
        [*BARE, alice, "call", "sip:bob@lab.guardphone.test"], stdout=subprocess.PIPE, text=True
    )
    seen = lines_until(proc, "confirmed")
    proc.wait(10)
    calling = next(s for s in seen if s.get("event") == "calling")
    return (seen[-1]["t"] - calling["t"]) * 1000


def registered_rss(cmd: list[str]) -> float:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        lines_until(proc, "registered")
        time.sleep(0.5)
        return psutil.Process(proc.pid).memory_info().rss / 2**20
    finally:
        proc.terminate()
        proc.wait(10)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 2),
        "worst": round(max(values), 2),
        "best": round(min(values), 2),
        "n": len(values),
    }


def floor_peer_file(config_path: str, store: Any) -> Path:
    """The account and its material in one 0600 file for the floor peer (as baresip gets
    them): a lab account, generated for this run and removed with the lab."""
    cfg = config.load(Path(config_path))
    material = load_material(cfg, store)
    path = Path(config_path).with_suffix(".floor-peer.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(
            {
                "user": cfg.account.user,
                "domain": cfg.account.domain,
                "sbc_host": cfg.sbc.host,
                "sbc_port": cfg.sbc.port,
                "cert_pem": material.cert_pem,
                "key_pem": material.key_pem,
                "ca_pem": material.ca_pem,
                "sip_password": material.sip_password,
            },
            f,
        )
    return path


def measure(n: int) -> dict[str, Any]:
    state, store = labrun.start("register")
    cfg = {u.name: u.config for u in state.users}
    agent_reg = [GUARDPHONE, "--config", cfg["alice"], "register", "--once", "--json"]
    bare_reg = [*BARE, cfg["alice"], "register"]
    floor_reg = [*BARE, str(floor_peer_file(cfg["alice"], store)), "register", "--floor"]
    try:
        # Interleave agent and peers so machine noise hits all alike.
        reg_a, reg_b, reg_f, call_a, call_b = [], [], [], [], []
        for _ in range(n):
            reg_a.append(start_to_registered(agent_reg))
            reg_b.append(start_to_registered(bare_reg))
            reg_f.append(start_to_registered(floor_reg))
        bob = AgentProcess(cfg["bob"], "answer", env=dict(os.environ))
        try:
            bob.wait_for("registered")
            for _ in range(n):
                call_a.append(agent_call_setup(cfg["alice"]))
                time.sleep(0.3)
                call_b.append(bare_call_setup(cfg["alice"]))
                time.sleep(0.3)
        finally:
            bob.stop()
        rss_a = [
            registered_rss([GUARDPHONE, "--config", cfg["alice"], "register", "--json"])
            for _ in range(min(n, 3))
        ]
        rss_b = [registered_rss([*BARE, cfg["alice"], "answer"]) for _ in range(min(n, 3))]
    finally:
        labrun.stop(state, store)
    return {
        "process start -> REGISTER 200 OK (ms)": {
            "guardphone": summary(reg_a),
            "bare pjsua2": summary(reg_b),
            "floor": summary(reg_f),
        },
        "call setup INVITE -> confirmed (ms)": {
            "guardphone": summary(call_a),
            "bare pjsua2": summary(call_b),
        },
        "RSS registered, idle (MiB)": {
            "guardphone": summary(rss_a),
            "bare pjsua2": summary(rss_b),
        },
    }


def rows(figures: dict[str, Any]) -> list[Row]:
    """Against the SIP stack alone: what guardphone's checks and supervisor add."""
    out = []
    for name, pair in figures.items():
        ours, bare = pair["guardphone"], pair["bare pjsua2"]
        label = f"{name.replace(' (', ', ').rstrip(')')} (median, n={ours['n']})"
        out.append(Row(label, ours["median"], "bare pjsua2, same settings", bare["median"]))
        if "floor" in pair:
            floor = FLOOR_PEER
            out.append(Row(label, ours["median"], floor, pair["floor"]["median"]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=15)
    args = parser.parse_args()
    figures = measure(args.n)
    print(render(rows(figures)))
    results_file.write("register_call", {"n": args.n, "figures": figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
