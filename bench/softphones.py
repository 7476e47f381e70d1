"""guardphone's headless agent against baresip (the softphone people script today), on the
same lab in the same run, interleaved so machine noise hits both alike:

- process start -> REGISTER 200 OK;
- call setup over TLS + SRTP (INVITE sent -> call established), to the same answering peer;
  baresip as shipped, and with TCP_NODELAY forced on its sockets (an LD_PRELOAD shim built
  here: Debian's baresip 1.0 waits ~40 ms on Nagle's algorithm for the ACK);
- idle while registered: RSS, CPU seconds per minute, context switches per minute;
- security, as a row of facts: does it register with a server whose certificate comes from
  another CA (the lab's rogue SBC address)? does it accept a call that offers plain RTP only?

Run with `make bench` (or `python -m bench.softphones`, inside a private Secret Service).
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

from agent import config
from agent.material import load as load_material
from bench import baresip, labrun, results_file
from bench.idle import idle_figures
from bench.table import Row, render
from lab import sbc
from tests.services import GUARDPHONE, AgentProcess

BARE = [sys.executable, "-m", "lab.bare_peer"]
NODELAY_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real) real = dlsym(RTLD_NEXT, "connect");
    int type = 0; socklen_t size = sizeof type, one = 1;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) == 0 && type == SOCK_STREAM)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return real(fd, addr, len);
}
"""


def nodelay_shim(directory: Path) -> Path:
    source, library = directory / "nodelay.c", directory / "nodelay.so"
    source.write_text(NODELAY_C)
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"], check=True
    )
    return library


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 2),
        "worst": round(max(values), 2),
        "n": len(values),
    }


def agent_registers(cfg: str) -> float:
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [GUARDPHONE, "--config", cfg, "register", "--once", "--json"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for raw in proc.stdout:
        if raw.startswith("{") and json.loads(raw).get("state") == "registered":
            took = time.monotonic() - t0
            proc.wait(10)
            return took * 1000
    proc.wait(10)
    raise RuntimeError("the agent did not register")


def agent_call_setup(cfg: str) -> float:
    call = ["call", "sip:bob@lab.guardphone.test", "--hangup-after", "0.1", "--json"]
    proc = subprocess.Popen([GUARDPHONE, "--config", cfg, *call], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen: dict[str, float] = {}
    for raw in proc.stdout:
        if raw.startswith("{"):
            line = json.loads(raw)
            seen.setdefault(line["state"], _t(line["time"]))
    proc.wait(10)
    return (seen["call_established"] - seen["calling"]) * 1000


def _t(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def baresip_call_setup(phone: baresip.Baresip) -> float:
    t0 = time.monotonic()
    phone.command("dial", "sip:bob@lab.guardphone.test")
    kind, t1 = phone.event({"CALL_ESTABLISHED", "CALL_CLOSED"})
    if kind != "CALL_ESTABLISHED":
        raise RuntimeError("baresip's call did not connect")
    phone.command("hangup")
    phone.event({"CALL_CLOSED"})
    return (t1 - t0) * 1000


def rtp_only_offer_accepted(caller_cfg: str, callee_uri: str) -> bool:
    """A caller that offers plain RTP only (bare pjsua2, SRTP disabled): answered or not."""
    out = subprocess.run(
        [*BARE, caller_cfg, "call", callee_uri, "--srtp", "disabled"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    events = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    return any(e["event"] == "confirmed" for e in events)


def agent_registers_with_rogue(lab_dir: Path, port: int) -> bool:
    data = json.loads((lab_dir / "agents" / "alice.json").read_text())
    data["sbc"]["host"] = sbc.ROGUE
    rogue = lab_dir / "alice-rogue.json"
    rogue.write_text(json.dumps(data))
    out = subprocess.run(
        [GUARDPHONE, "--config", str(rogue), "register", "--once", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return any(
        json.loads(x).get("state") == "registered"
        for x in out.stdout.splitlines()
        if x.startswith("{")
    )


def measure(n: int, idle_s: float) -> dict[str, Any]:
    state, store = labrun.start("softphones")
    directory, port = Path(state.directory), state.port
    cfg = {u.name: u.config for u in state.users}
    material = load_material(config.load(Path(cfg["carol"])), store)
    shim = nodelay_shim(directory)

    def phone(name: str, server: str = sbc.GOOD, srtp: str = "srtp-mand") -> baresip.Baresip:
        return baresip.Baresip(
            directory / name, "carol", state.domain, server, port, material, srtp=srtp
        )

    figures: dict[str, Any] = {"baresip_version": baresip.version()}
    bob = AgentProcess(cfg["bob"], "answer", env=dict(os.environ))
    try:
        bob.wait_for("registered")
        reg_ours, reg_peer, call_ours, call_peer, call_nodelay = [], [], [], [], []
        for _ in range(n):
            reg_ours.append(agent_registers(cfg["carol"]))
            b = phone("reg")
            t0 = b.start()
            _, t1 = b.event({"REGISTER_OK"})
            reg_peer.append((t1 - t0) * 1000)
            b.stop()
        shipped, forced = phone("call"), phone("call-nodelay")
        shipped.start()
        shipped.event({"REGISTER_OK"})
        os.environ["LD_PRELOAD"] = str(shim)
        try:
            forced.start()
        finally:
            del os.environ["LD_PRELOAD"]
        forced.event({"REGISTER_OK"})
        for _ in range(n):
            call_ours.append(agent_call_setup(cfg["carol"]))
            time.sleep(0.2)
            call_peer.append(baresip_call_setup(shipped))
            time.sleep(0.2)
            call_nodelay.append(baresip_call_setup(forced))
            time.sleep(0.2)
        shipped.stop()
        forced.stop()
        figures["start_to_registered_ms"] = {
            "guardphone": summary(reg_ours),
            "baresip": summary(reg_peer),
        }
        figures["call_setup_ms"] = {
            "guardphone": summary(call_ours),
            "baresip": summary(call_peer),
            "baresip_nodelay": summary(call_nodelay),
        }

        # Idle, registered, side by side over the same window.
        agent = subprocess.Popen(
            [GUARDPHONE, "--config", cfg["carol"], "register", "--json"],
            stdout=subprocess.PIPE,
            text=True,
        )
        idle_peer = phone("idle")
        try:
            assert agent.stdout is not None
            for raw in agent.stdout:
                if raw.startswith("{") and json.loads(raw).get("state") == "registered":
                    break
            idle_peer.start()
            idle_peer.event({"REGISTER_OK"})
            figures["idle"] = idle_figures(
                {"guardphone": agent.pid, "baresip": idle_peer.pid()}, idle_s
            )
        finally:
            agent.terminate()
            agent.wait(15)
            idle_peer.stop()

        # Security facts, in the same run.
        rogue = phone("rogue", server=sbc.ROGUE)
        rogue.start()
        try:
            kind, _ = rogue.event({"REGISTER_OK", "REGISTER_FAIL"}, timeout=5)
            peer_rogue = kind == "REGISTER_OK"
        except TimeoutError:
            peer_rogue = False
        rogue.stop()
        target = phone("rtp-target")
        target.start()
        target.event({"REGISTER_OK"})
        peer_rtp = rtp_only_offer_accepted(cfg["bob"], "sip:carol@lab.guardphone.test")
        target.stop()
        bob.stop()
        carol = AgentProcess(cfg["carol"], "answer", env=dict(os.environ))
        carol.wait_for("registered")
        ours_rtp = rtp_only_offer_accepted(cfg["bob"], "sip:carol@lab.guardphone.test")
        carol.stop()
        # The control: a callee without SRTP accepts the same offer through the same SBC,
        # so a "no" above is the callee refusing, not the lab.
        plain = subprocess.Popen(
            [*BARE, cfg["carol"], "answer", "15", "--srtp", "disabled"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert plain.stdout is not None
            next(x for x in plain.stdout if '"ready"' in x)
            if not rtp_only_offer_accepted(cfg["bob"], "sip:carol@lab.guardphone.test"):
                raise RuntimeError("the lab refused a plain-RTP call itself: no verdict")
        finally:
            plain.terminate()
            plain.wait(10)
        figures["security"] = {
            "registers_with_rogue_ca_server": {
                "guardphone": agent_registers_with_rogue(directory, port),
                "baresip": peer_rogue,
            },
            "accepts_rtp_only_offer": {"guardphone": ours_rtp, "baresip": peer_rtp},
        }
    finally:
        bob.stop()
        labrun.stop(state, store)
    return figures


def rows(figures: dict[str, Any]) -> list[Row]:
    reg, call, idle = figures["start_to_registered_ms"], figures["call_setup_ms"], figures["idle"]
    sec = figures["security"]
    peer = f"baresip {figures['baresip_version']}"
    ours_reg, their_reg = reg["guardphone"]["median"], reg["baresip"]["median"]
    ours_call = call["guardphone"]["median"]
    shipped, forced = call["baresip"]["median"], call["baresip_nodelay"]["median"]
    rogue = sec["registers_with_rogue_ca_server"]
    rtp = sec["accepts_rtp_only_offer"]

    def yes_no(value: bool) -> str:
        return "yes" if value else "no"

    out = [
        Row(
            "process start -> REGISTER 200 OK, ms (median)",
            ours_reg,
            peer,
            their_reg,
            "<= 3x peer",
            ours_reg <= 3 * their_reg,
        ),
        Row(
            "call setup TLS+SRTP, ms (median)",
            ours_call,
            peer,
            shipped,
            "far below peer as shipped",
            ours_call < shipped / 2,
        ),
        Row(
            "call setup TLS+SRTP, ms (median)",
            ours_call,
            peer + " TCP_NODELAY",
            forced,
            "< 10 ms and <= 1.5x peer",
            ours_call < 10 and ours_call <= 1.5 * forced,
        ),
    ]
    for key, label in (
        ("rss_mib", "RSS MiB"),
        ("cpu_s_per_min", "CPU s/min"),
        ("switches_per_min", "context switches/min"),
    ):
        out.append(
            Row(
                f"headless agent idle, registered: {label}",
                idle["guardphone"][key],
                peer,
                idle["baresip"][key],
            )
        )
    for label, facts in (
        ("registers with a server from a rogue CA", rogue),
        ("accepts a call offering plain RTP only", rtp),
    ):
        said = yes_no(facts["guardphone"])
        out.append(Row(label, said, peer, yes_no(facts["baresip"]), "no", not facts["guardphone"]))
    return out  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=15, help="registrations and calls each")
    parser.add_argument("--idle", type=float, default=60.0, help="idle window, seconds")
    args = parser.parse_args()
    if not baresip.available():
        print("baresip is not installed (run `make deps`)", file=sys.stderr)
        return 1
    figures = measure(args.n, args.idle)
    print(render(rows(figures)))
    results_file.write("softphones", {"n": args.n, "idle_s": args.idle, "figures": figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
