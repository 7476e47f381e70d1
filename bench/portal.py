"""Portal figures, on SQLite and PostgreSQL in the same run:
- signed posture reports ingested per second through the real server as deployed (uvicorn
  over TLS, one process per core, reports arriving together written together: request
  parsing, signature check, nonce, report and device update), loaded by wrk with 32
  connections, against the bare database writes the same reports need, one transaction each
  (what writing report by report would cost);
- the helpdesk's device list at 100,000 devices (search and "non-compliant only"), p50/p95,
  against the bare SELECT it runs.
Run with `make bench ONLY=portal` (as root: PostgreSQL runs as its own user). `--seconds`
sets the length of each load run (default 10). Prints a table; writes JSON with the machine to
bench/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import insert, or_, select

from agent import report, schemas
from agent.enroll import _new_key_and_csr
from bench import results_file
from bench.table import Row, render
from lab import pki
from portal import db, staff
from portal.app import PortalConfig, create_app
from portal.db import Device, Nonce, PostureRow
from portal.keys import init_state

DEVICES = 100_000


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def posture_doc(device: str, i: int) -> dict[str, Any]:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=i)
    return schemas.PostureReport(
        device_id=device,
        account="alice@corp.example",
        time=when.isoformat(),
        agent_version="0.1.0",
        firewall_active=True,
        screen_lock=True,
        srtp_mandatory=True,
    ).model_dump()


LOAD_SCRIPT = Path(__file__).with_name("portal_load.lua")
# Reports prepared per second of run: more than 2 cores can ingest, so the load never runs
# out (if it did, the run says so and fails rather than report a rate it did not see).
PREPARED_PER_S = 6000


def tree_cpu(pid: int | None) -> dict[int, float]:
    """CPU seconds used so far by a process and its descendants, by PID (a database server
    starts a process per connection: those that appear during a run count from zero)."""
    if pid is None:
        return {}
    seen = {}
    root = psutil.Process(pid)
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            seen[p.pid] = t.user + t.system
    return seen


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(used - before.get(pid, 0.0) for pid, used in after.items())


def ingest(
    db_url: str,
    state: Path,
    seconds: float,
    workers: int | None = None,
    database_pid: int | None = None,
) -> dict[str, float]:
    """Reports/s through the real server as deployed: `guardphone-portal serve` (uvicorn over
    TLS, one process per core unless `workers`), loaded by wrk (C, 32 connections on the same
    cores) sending posture reports of 256 devices, each device's in order. Signing is the
    devices' work: every request is prepared and signed before the run."""
    import socket
    import subprocess

    import httpx

    db.migrate(db_url)
    ca = pki.make_ca("bench CA")
    server = pki.issue(ca, "portal.bench", server=True, ips=("127.0.0.1",))
    (state / "tls.pem").write_text(server.cert_pem)
    (state / "tls.key").write_text(server.key_pem)
    (state / "ca.pem").write_text(ca.cert_pem)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processes = ["--workers", str(workers)] if workers else []  # else as deployed
    proc = subprocess.Popen(
        [sys.executable, "-m", "portal", "serve", "--db", db_url, "--state", str(state),
         "--domain", "corp.example", "--tls-cert", str(state / "tls.pem"),
         "--tls-key", str(state / "tls.key"), "--port", str(port), *processes],
    )  # fmt: skip
    devices, connections = 256, 32
    maker = db.sessions(db.engine_for(db_url))

    try:
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=str(state / "ca.pem")) as c:
            for _ in range(100):
                try:
                    c.get("/openapi.json")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            enrolled = []
            for d in range(devices):
                with maker() as session:
                    token = staff.add_token(session, f"user{d}", "pw-for-bench")
                key, csr = _new_key_and_csr(f"user{d}")
                answer = c.post("/v1/enroll", json={"token": token, "csr": csr})
                enrolled.append((answer.json()["device_id"], key))
        # Report k comes from device k % devices: a device's next report is sent `devices`
        # requests after its last, long after that one was answered (32 are in flight).
        load = state / "load.requests"
        with load.open("wb") as f:
            for k in range(int(seconds * PREPARED_PER_S)):
                device, key = enrolled[k % devices]
                body = report.body_of(posture_doc(device, k))
                headers = report.signed_headers(key, device, "POST", "/v1/posture", body)
                raw = (
                    f"POST /v1/posture HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                    + "\r\n"
                ).encode() + body
                f.write(b"%d\n" % len(raw) + raw)
        before = tree_cpu(proc.pid), tree_cpu(database_pid)
        run = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
             "-s", str(LOAD_SCRIPT), f"https://127.0.0.1:{port}/", "--", str(load)],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        )  # fmt: skip
        after = tree_cpu(proc.pid), tree_cpu(database_pid)
    finally:
        proc.terminate()
        proc.wait(20)
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    if seen["other"] or seen["exhausted"] or seen["socket_errors"]:
        raise RuntimeError(f"the load run was not clean: {seen}")
    ours = seen["ok"] / (seen["duration_us"] / 1e6)
    # The floor: the same rows written straight to the database, one transaction each, from
    # one process (the API's 32 connections and 2 workers can commit side by side).
    n = 2000
    engine = db.engine_for(db_url)
    maker = db.sessions(engine)
    with maker() as session:
        device_id = session.scalars(select(Device.id)).first()
    t0 = time.perf_counter()
    for i in range(n):
        with maker() as session:
            session.execute(insert(Nonce).values(device_id=device_id, nonce=f"bare-{i}"))
            session.execute(
                insert(PostureRow).values(
                    device_id=device_id, report=posture_doc(str(device_id), i), signature="-"
                )
            )
            row = session.get(Device, device_id)
            assert row is not None
            row.last_report_time = str(i)
            session.commit()
    bare = n / (time.perf_counter() - t0)
    engine.dispose()
    # wrk shares the 2 cores with the server (and PostgreSQL with both); what the server and
    # the database spend per report says what the cores could ingest with the devices
    # elsewhere, as they are in a fleet.
    server_s = cpu_spent(before[0], after[0]) / seen["ok"]
    database_s = cpu_spent(before[1], after[1]) / seen["ok"]
    return {
        "api": ours,
        "bare": bare,
        "server_cpu_ms_per_report": server_s * 1000,
        "database_cpu_ms_per_report": database_s * 1000,
        "server_capacity_2_cores": 2 / (server_s + database_s),
        "latency_p50_ms": seen["latency_p50_us"] / 1000,
        "latency_p99_ms": seen["latency_p99_us"] / 1000,
        "reports": seen["ok"],
        "seconds": seconds,
        "workers": workers or os.cpu_count(),
        "devices": devices,
        "connections": connections,
    }


def listing(db_url: str, state: Path, rounds: int = 40, devices: int = DEVICES) -> dict[str, float]:
    from fastapi.testclient import TestClient

    engine = db.engine_for(db_url)
    maker = db.sessions(engine)
    with maker() as session:
        have = session.query(Device).count()
        batch = []
        for i in range(have, devices):
            bad = i % 7 == 0
            batch.append(
                {
                    "id": f"dev-{i:08x}",
                    "user": f"user{i}",
                    "hostname": f"laptop-{i}",
                    "cert_pem": "-",
                    "compliant": not bad,
                    "problems": "host firewall: off" if bad else "",
                    "last_report_time": "",
                    "agent_version": "0.1.0",
                }
            )
            if len(batch) == 5000:
                session.execute(insert(Device), batch)
                batch = []
        if batch:
            session.execute(insert(Device), batch)
        session.commit()
        secret = staff.add_staff(session, "bench", "a long bench password", "helpdesk")
    app = create_app(PortalConfig(db_url, state, "corp.example"))
    import pyotp

    ours, bare = [], []
    with TestClient(app, base_url="https://portal.bench") as client:
        client.post(
            "/login",
            data={
                "name": "bench",
                "password": "a long bench password",
                "code": pyotp.TOTP(secret).now(),
            },
        )
        for i in range(rounds):
            params = {"q": f"user{(i * 7919) % devices}"} if i % 2 else {"noncompliant": "true"}
            t0 = time.perf_counter()
            answer = client.get("/helpdesk", params=params)
            ours.append((time.perf_counter() - t0) * 1000)
            assert answer.status_code == 200
            with maker() as session:
                t0 = time.perf_counter()
                query = select(Device).order_by(Device.user, Device.id)
                if "q" in params:
                    like = f"%{params['q']}%"
                    query = query.where(or_(Device.user.ilike(like), Device.hostname.ilike(like)))
                else:
                    query = query.where(Device.compliant.is_(False))
                list(session.scalars(query.limit(staff.PAGE)))
                bare.append((time.perf_counter() - t0) * 1000)
    engine.dispose()
    return {
        "p50": percentile(ours, 0.5),
        "p95": percentile(ours, 0.95),
        "bare_p50": percentile(bare, 0.5),
        "bare_p95": percentile(bare, 0.95),
    }


def measure(seconds: float, devices: int = DEVICES, rounds: int = 40) -> dict[str, Any]:
    from tests.portal.conftest import Postgres

    tmp = Path(tempfile.mkdtemp(prefix="guardphone-bench-portal-"))
    state = tmp / "state"
    init_state(state)
    pg = Postgres()
    figures: dict[str, Any] = {"seconds": seconds, "devices": devices}
    try:
        urls = {"sqlite": f"sqlite:///{tmp / 'portal.db'}", "postgresql": pg.new_database()}
        for name, url in urls.items():
            database = pg.proc.pid if name == "postgresql" else None  # SQLite is in-process
            figures[name] = {
                "ingest": ingest(url, state, seconds, database_pid=database),
                "list": listing(url, state, rounds, devices),
            }
    finally:
        pg.stop()
    return figures


def rows(figures: dict[str, Any]) -> list[Row]:
    out = []
    for name in ("sqlite", "postgresql"):
        ing, lst = figures[name]["ingest"], figures[name]["list"]
        out += [
            Row(f"portal {name}: signed reports ingested / s", ing["api"],
                "bare database writes", ing["bare"], ">= 1000 / s", ing["api"] >= 1000),
            Row(f"portal {name}: server CPU per report, ms", ing["server_cpu_ms_per_report"],
                "", None),
            *([Row(f"portal {name}: database CPU per report, ms",
                   ing["database_cpu_ms_per_report"], "", None)] if name == "postgresql" else []),
            Row(f"portal {name}: reports/s 2 cores take, load elsewhere",
                ing["server_capacity_2_cores"], "", None),
            Row(f"portal {name}: helpdesk list p95 at {figures['devices']:,} devices, ms",
                lst["p95"], "bare SELECT", lst["bare_p95"], "< 200 ms", lst["p95"] < 200),
        ]  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load run")
    args = parser.parse_args()
    figures = measure(args.seconds)
    print(render(rows(figures)))
    results_file.write("portal", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
