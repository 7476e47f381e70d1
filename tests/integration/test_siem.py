"""Forwarding the event log to a real syslog receiver (Debian rsyslog on loopback)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import free_port, run_agent, run_cli

pytestmark = [
    pytest.mark.kamailio,
    pytest.mark.keychain,
    pytest.mark.skipif(
        shutil.which("rsyslogd") is None, reason="rsyslog is installed by make deps"
    ),
]
SEQ = re.compile(r'\[guardphone@32473 seq="(\d+)" type="([^"]+)" hash="([0-9a-f]{64})"')


class Rsyslog:
    """rsyslogd in the foreground with UDP and TCP inputs, writing raw messages per input."""

    def __init__(self, directory: Path, udp: int, tcp: int) -> None:
        self.dir = directory
        self.conf = directory / "rsyslog.conf"
        self.conf.write_text(f"""
global(workDirectory="{directory}")
module(load="imudp")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="udp") {{ action(type="omfile" file="{directory}/udp.log" template="raw") }}
ruleset(name="tcp") {{ action(type="omfile" file="{directory}/tcp.log" template="raw") }}
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="tcp")
""")
        self.tcp = tcp
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["rsyslogd", "-n", "-f", str(self.conf), "-i", str(self.dir / "rsyslog.pid")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["ss", "-Hltn", f"sport = :{self.tcp}"], capture_output=True, text=True, check=False
            )
            if probe.stdout.strip():
                return
            time.sleep(0.05)
        raise RuntimeError("rsyslogd did not listen")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)

    def received(self, name: str) -> list[tuple[int, str]]:
        path = self.dir / f"{name}.log"
        text = path.read_text() if path.exists() else ""
        return [(int(m.group(1)), m.group(2)) for m in SEQ.finditer(text)]


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    port = free_port(("127.0.0.1",))
    receiver = Rsyslog(tmp_path, free_port(("127.0.0.1",)), port)
    receiver.start()
    yield receiver
    receiver.stop()


def siem_config(lab: Any, tmp_path: Path, receiver: Rsyslog) -> Path:
    alice = next(u.config for u in lab.users if u.name == "alice")
    data = json.loads(Path(alice).read_text())
    data["event_log"] = str(tmp_path / "alice-events.db")
    data["siem"] = [
        {
            "name": "soc-udp",
            "transport": "udp",
            "host": "127.0.0.1",
            "port": int(
                re.search(
                    r'imudp" address="127.0.0.1" port="(\d+)', receiver.conf.read_text()
                ).group(1)
            ),
        },  # type: ignore[union-attr]
        {"name": "soc-tcp", "transport": "tcp", "host": "127.0.0.1", "port": receiver.tcp},
    ]
    path = tmp_path / "alice-siem.json"
    path.write_text(json.dumps(data))
    return path


def wait_for(check: Any, timeout: float = 5, what: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what() if what else ''}")
        time.sleep(0.05)


def test_every_event_reaches_syslog_in_order_and_survives_an_outage(
    lab: Any, env: dict[str, str], tmp_path: Path, rsyslog: Rsyslog
) -> None:
    config = siem_config(lab, tmp_path, rsyslog)
    code, lines, stderr = run_agent(config, "register", "--once", env=env)
    assert code == 0, stderr
    seqs = [line["seq"] for line in lines]
    wait_for(lambda: [s for s, _ in rsyslog.received("tcp")] == seqs)
    wait_for(
        lambda: [s for s, _ in rsyslog.received("udp")] == seqs,
        what=lambda: (seqs, rsyslog.received("udp")),
    )
    raw = (tmp_path / "tcp.log").read_text().splitlines()[0]
    # RFC 5424: <PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG
    assert re.match(
        r"<86>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \S+ guardphone \d+ "
        r"agent_checking \[guardphone@32473 seq=\"1\" type=\"agent.checking\" ",
        raw,
    )

    rsyslog.stop()  # the SIEM goes away for a while
    code, more, _ = run_agent(config, "register", "--once", env=env)
    assert code == 0
    status = run_cli(str(config), "siem", "--json", env=env)
    tcp_state = next(r for r in json.loads(status.stdout) if r["target"] == "soc-tcp")
    assert tcp_state["lag"] > 0 and tcp_state["last_error"]
    overall = run_cli(str(config), "status", "--json", env=env)
    shown = {r["target"]: r for r in json.loads(overall.stdout)["siem"]}
    assert shown["soc-tcp"]["state"] == "retrying" and shown["soc-tcp"]["lag"] > 0

    rsyslog.start()  # back: nothing is lost, order kept
    flushed = run_cli(str(config), "siem", "flush", env=env)
    assert flushed.returncode == 0, flushed.stdout + flushed.stderr
    everything = seqs + [line["seq"] for line in more]
    wait_for(lambda: sorted(set(s for s, _ in rsyslog.received("tcp"))) == everything)
    delivered = [s for s, _ in rsyslog.received("tcp")]
    assert list(dict.fromkeys(delivered)) == everything  # in order; at least once


def test_tls_receiver_gets_rfc5425_framed_events(
    lab: Any, env: dict[str, str], tmp_path: Path
) -> None:

    from lab import pki

    directory = Path(lab.directory)
    ca = pki.load_ca(directory)
    server = pki.issue(ca, "siem.lab.guardphone.test", server=True, ips=("127.0.0.1",))
    (tmp_path / "siem.pem").write_text(server.cert_pem)
    (tmp_path / "siem.key").write_text(server.key_pem)
    port = free_port(("127.0.0.1",))
    conf = tmp_path / "rsyslog-tls.conf"
    conf.write_text(f"""
global(workDirectory="{tmp_path}"
       DefaultNetstreamDriverCAFile="{directory / "ca.pem"}"
       DefaultNetstreamDriverCertFile="{tmp_path / "siem.pem"}"
       DefaultNetstreamDriverKeyFile="{tmp_path / "siem.key"}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="tls") {{ action(type="omfile" file="{tmp_path}/tls.log" template="raw") }}
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="tls")
""")
    proc = subprocess.Popen(
        ["rsyslogd", "-n", "-f", str(conf), "-i", str(tmp_path / "tls.pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: bool(
                subprocess.run(
                    ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=False
                ).stdout.strip()
            ),
            timeout=10,
        )
        alice = next(u.config for u in lab.users if u.name == "alice")
        data = json.loads(Path(alice).read_text())
        data["event_log"] = str(tmp_path / "tls-events.db")
        data["siem"] = [
            {
                "name": "soc-tls",
                "transport": "tls",
                "host": "127.0.0.1",
                "port": port,
                "ca_file": str(directory / "ca.pem"),
            }
        ]
        config = tmp_path / "alice-tls.json"
        config.write_text(json.dumps(data))
        code, lines, stderr = run_agent(config, "register", "--once", env=env)
        assert code == 0, stderr
        seqs = [line["seq"] for line in lines]
        log = tmp_path / "tls.log"

        def received() -> list[int]:
            return [int(m.group(1)) for m in SEQ.finditer(log.read_text())] if log.exists() else []

        wait_for(lambda: received() == seqs)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
