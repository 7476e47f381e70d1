"""DSCP marking seen on the wire: CS3 on the agent's signaling, EF on its media."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from lab import relay
from tests.services import agent, run_agent

pytestmark = [pytest.mark.kamailio, pytest.mark.keychain]
DSCP_EF, DSCP_CS3 = 46, 24


def test_signaling_is_cs3_and_media_is_ef(lab: Any, env: dict[str, str], tmp_path: Path) -> None:
    pcap = tmp_path / "qos.pcap"
    cap = subprocess.Popen(
        ["tshark", "-q", "-i", "lo", "-f", f"tcp port {lab.port} or udp", "-w", str(pcap)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert cap.stderr is not None
        for line in cap.stderr:
            if "Capturing on" in line:
                break
        bob = next(u.config for u in lab.users if u.name == "bob")
        alice = next(u.config for u in lab.users if u.name == "alice")
        with agent(bob, "answer", "--count", "1", env=env) as answering:
            answering.wait_for("registered")
            code, _, err = run_agent(
                alice, "call", "sip:bob@lab.guardphone.test", "--hangup-after", "1", env=env
            )
            assert code == 0, err
    finally:
        cap.terminate()
        cap.wait(10)

    fields = subprocess.run(
        [
            "tshark",
            "-r",
            str(pcap),
            "-T",
            "fields",
            "-e",
            "ip.dsfield.dscp",
            "-e",
            "tcp.dstport",
            "-e",
            "udp.dstport",
            "-e",
            "tcp.len",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    to_sbc: Counter[int] = Counter()
    media: Counter[int] = Counter()
    for line in fields:
        dscp, tcp_dst, udp_dst, tcp_len = ([*line.split("\t"), "", "", "", ""])[:4]
        if tcp_dst == str(lab.port) and tcp_len not in ("", "0"):
            to_sbc[int(dscp)] += 1  # data the agents sent to the SBC (not bare ACKs)
        elif udp_dst and relay.PORTS[0] <= int(udp_dst) <= relay.PORTS[1]:
            media[int(dscp)] += 1  # what the agents sent to the SBC's media relay
    assert to_sbc and set(to_sbc) == {DSCP_CS3}, to_sbc
    assert sum(media.values()) > 50 and set(media) == {DSCP_EF}, media
