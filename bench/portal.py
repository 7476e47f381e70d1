"""Portal figures, on SQLite and PostgreSQL in the same run:
- signed posture reports ingested per second through the real server (uvicorn over TLS,
  one worker per core, 32 devices reporting at once: request parsing, signature check, nonce
  insert, report and device update), against the bare database writes the same reports
  need, one transaction each (the floor under it);
- the helpdesk's device list at 100,000 devices (search and "non-compliant only"), p50/p95,
  against the bare SELECT it runs.
Run with `make bench ONLY=portal` (as root: PostgreSQL runs as its own user). `-n` sets the
number of reports (default 2000). Prints a table; writes JSON with the machine to
bench/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
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


def ingest(db_url: str, state: Path, n: int, workers: int = 2) -> dict[str, float]:
    """Reports/s through the real server: uvicorn over TLS (`workers` processes on this
    machine's cores) with 32 devices reporting at once, each one after the other (as a
    device does). Signing happens on the devices: requests are prepared before timing."""
    import asyncio
    import os
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
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "bench.portal_app:app", "--port", str(port),
         "--ssl-certfile", str(state / "tls.pem"), "--ssl-keyfile", str(state / "tls.key"),
         "--workers", str(workers), "--log-level", "warning"],
        env={**os.environ, "GP_DB": db_url, "GP_STATE": str(state)},
    )  # fmt: skip
    devices = 32
    maker = db.sessions(db.engine_for(db_url))

    def server_cpu_s() -> float:
        """CPU seconds used so far by the uvicorn processes (the supervisor and workers)."""
        total = 0.0
        for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    cpu: dict[str, float] = {}

    async def run() -> float:
        base = f"https://127.0.0.1:{port}"
        limits = httpx.Limits(max_connections=devices)
        async with httpx.AsyncClient(
            base_url=base, verify=str(state / "ca.pem"), limits=limits
        ) as c:
            for _ in range(100):
                try:
                    await c.get("/openapi.json")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            queues = []
            for d in range(devices):
                with maker() as session:
                    token = staff.add_token(session, f"user{d}", "pw-for-bench")
                key, csr = _new_key_and_csr(f"user{d}")
                enrolled = await c.post("/v1/enroll", json={"token": token, "csr": csr})
                device = enrolled.json()["device_id"]
                mine = []
                for i in range(n // devices):
                    body = report.body_of(posture_doc(device, i))
                    mine.append(
                        (body, report.signed_headers(key, device, "POST", "/v1/posture", body))
                    )
                queues.append(mine)

            async def device_reports(mine: list[tuple[bytes, dict[str, str]]]) -> None:
                for body, headers in mine:
                    answer = await c.post("/v1/posture", content=body, headers=headers)
                    assert answer.status_code == 200, answer.text

            cpu["before"] = server_cpu_s()
            t0 = time.perf_counter()
            await asyncio.gather(*(device_reports(q) for q in queues))
            elapsed = time.perf_counter() - t0
            cpu["after"] = server_cpu_s()
            return (n // devices) * devices / elapsed

    try:
        ours = asyncio.run(run())
    finally:
        proc.terminate()
        proc.wait(20)
    # The floor: the same rows written straight to the database, one transaction each.
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
    # The load generator (httpx, TLS, 32 clients) shares the 2 cores with the server; what
    # the server spends per report says what the cores could ingest with the devices
    # elsewhere, as they are in a fleet.
    per_report_s = (cpu["after"] - cpu["before"]) / ((n // devices) * devices)
    return {
        "api": ours,
        "bare": bare,
        "server_cpu_ms_per_report": per_report_s * 1000,
        "server_capacity_2_cores": 2 / per_report_s,
        "workers": workers,
        "devices": devices,
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


def measure(n: int, devices: int = DEVICES, rounds: int = 40) -> dict[str, Any]:
    from tests.portal.conftest import Postgres

    tmp = Path(tempfile.mkdtemp(prefix="guardphone-bench-portal-"))
    state = tmp / "state"
    init_state(state)
    pg = Postgres()
    figures: dict[str, Any] = {"n": n, "devices": devices}
    try:
        urls = {"sqlite": f"sqlite:///{tmp / 'portal.db'}", "postgresql": pg.new_database()}
        for name, url in urls.items():
            figures[name] = {
                "ingest": ingest(url, state, n),
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
            Row(f"portal {name}: reports/s 2 cores take, load elsewhere",
                ing["server_capacity_2_cores"], "", None),
            Row(f"portal {name}: helpdesk list p95 at {figures['devices']:,} devices, ms",
                lst["p95"], "bare SELECT", lst["bare_p95"], "< 200 ms", lst["p95"] < 200),
        ]  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=2000)
    args = parser.parse_args()
    figures = measure(args.n)
    print(render(rows(figures)))
    results_file.write("portal", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
