"""Message formats and the outbox cursor, without a receiver (a local UDP socket stands in)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from agent.events import Event, EventLog
from agent.siem import Forwarder, Target, cef, rfc5424

EVENT = Event(
    7,
    "2026-11-26T10:00:00.123456+00:00",
    "gate.refused",
    "warning",
    {"reason": 'a "quoted" ] reason', "code": "x=y|z"},
    "a" * 64,
    "b" * 64,
)


def test_rfc5424_structure_and_escaping() -> None:
    line = rfc5424(EVENT, "laptop", 1234)
    assert line.startswith("<84>1 2026-11-26T10:00:00.123456Z laptop guardphone 1234 gate_refused ")
    assert '[guardphone@32473 seq="7" type="gate.refused" hash="' + "b" * 64 in line
    assert line.endswith('{"code":"x=y|z","reason":"a \\"quoted\\" ] reason"}')


def test_cef_escapes_header_and_extension() -> None:
    line = cef(EVENT)
    assert line.startswith("CEF:0|guardphone|agent|0.1.0|gate.refused|gate.refused|7|")
    assert "cn1=7 cn1Label=seq" in line
    assert re.search(r"msg=\{.*x\\=y\|z", line)


def test_cursor_moves_only_after_sends_and_resumes(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "e.db")
    for i in range(3):
        log.append("call.placed", "info", {"i": i})
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2)
    target = Target("soc", "udp", "127.0.0.1", receiver.getsockname()[1], "json")
    forwarder = Forwarder(log.path, (target,))
    assert forwarder.flush() == 3
    assert [receiver.recv(65536).count(b'"seq": ') for _ in range(3)] == [1, 1, 1]
    assert forwarder.status()[0]["lag"] == 0
    forwarder.close()
    log.append("call.placed", "info", {"i": 3})
    again = Forwarder(log.path, (target,))  # a restart resumes after the last sent
    assert again.flush() == 1
    assert b'"seq": 4' in receiver.recv(65536)
    again.close()
    receiver.close()


def test_unreachable_tcp_target_backs_off_and_keeps_everything(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "e.db")
    log.append("call.placed", "info", {})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    clock = [0.0]
    forwarder = Forwarder(
        log.path, (Target("soc", "tcp", "127.0.0.1", free),), clock=lambda: clock[0]
    )
    assert forwarder.flush() == 0
    status = forwarder.status()[0]
    assert status["lag"] == 1 and "ConnectionRefused" in status["last_error"]
    assert forwarder.flush() == 0  # backing off: not even tried
    clock[0] += 10
    assert forwarder.flush() == 0 and forwarder.status()[0]["lag"] == 1


def test_background_forwarder_sends_off_the_callers_thread(tmp_path: Path) -> None:
    import time

    from agent.siem import BackgroundForwarder

    log = EventLog(tmp_path / "e.db")
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2)
    background = BackgroundForwarder(
        log.path, (Target("soc", "udp", "127.0.0.1", receiver.getsockname()[1], "json"),)
    )
    started = time.monotonic()
    log.append("call.placed", "info", {"n": 1})
    background.poke()
    assert time.monotonic() - started < 0.05  # the caller never waits for the network
    assert b'"seq": 1' in receiver.recv(65536)
    background.stop()
    receiver.close()


def test_an_unreachable_siem_does_not_delay_the_caller(tmp_path: Path) -> None:
    import time

    from agent.siem import BackgroundForwarder

    log = EventLog(tmp_path / "e.db")
    # Nothing listens on port 9 here: every send fails, on the forwarder's thread only.
    background = BackgroundForwarder(log.path, (Target("soc", "tcp", "127.0.0.1", 9, "json"),))
    started = time.monotonic()
    for i in range(20):
        log.append("call.placed", "info", {"n": i})
        background.poke()
    assert time.monotonic() - started < 1.0
    background.stop()


def test_json_lines_over_https_only_count_when_acknowledged(tmp_path: Path) -> None:
    import json
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from lab import pki

    ca = pki.make_ca("SIEM CA")
    leaf = pki.issue(ca, "siem", server=True, ips=("127.0.0.1",))
    (tmp_path / "c.pem").write_text(leaf.cert_pem)
    (tmp_path / "k.pem").write_text(leaf.key_pem)
    received: list[dict[str, object]] = []
    answer = [503]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if answer[0] == 200:
                received.extend(json.loads(line) for line in body.decode().splitlines())
            self.send_response(answer[0])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        log = EventLog(tmp_path / "e.db")
        for i in range(3):
            log.append("call.placed", "info", {"i": i})
        clock = [0.0]
        target = Target(
            "soc", "https", "127.0.0.1", server.server_address[1], "json", ca.cert_pem, "/ingest"
        )
        forwarder = Forwarder(log.path, (target,), clock=lambda: clock[0])
        assert forwarder.flush() == 0  # the SIEM answers 503: nothing counts as delivered
        assert forwarder.status()[0]["lag"] == 3 and "503" in forwarder.status()[0]["last_error"]
        answer[0] = 200
        clock[0] += 10
        assert forwarder.flush() == 3
        assert [e["seq"] for e in received] == [1, 2, 3]
        assert forwarder.status()[0]["lag"] == 0
        forwarder.close()
    finally:
        server.shutdown()
