"""`make bench` cannot rot silently: one tiny run of every benchmark (`bench.all --quick`),
on the real lab, the namespaces, baresip, Linphone and PostgreSQL, as `make bench` runs
them. The figures of a quick run mean nothing; what is checked is that every benchmark ran
and produced its rows with real numbers beside a real peer."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import baresip
from bench.all import STEPS
from tests.services import Desktop

pytestmark = [
    pytest.mark.root,
    pytest.mark.kamailio,
    pytest.mark.keychain,
    pytest.mark.timeout(900),
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root (CI runs as root)"),
]


def test_every_benchmark_runs_and_reports_its_figures_beside_a_peer(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert baresip.available(), "baresip-core is not installed (make deps installs it)"
    screen = Desktop()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.all", "--quick", "--results", str(tmp_path)],
            env={**env, "DISPLAY": screen.display, "QT_QPA_PLATFORM": "xcb"},
            capture_output=True,
            text=True,
            timeout=840,
            check=False,
        )
    finally:
        screen.stop()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    written = list(tmp_path.glob("bench-*.json"))
    assert len(written) == 1
    result: dict[str, Any] = json.loads(written[0].read_text())
    assert result["machine"]["cpus"] >= 1 and result["quick"] is True
    assert set(result["figures"]) == {step.name for step in STEPS}
    rows = result["table"]
    for row in rows:
        if isinstance(row["ours"], int | float):
            assert math.isfinite(row["ours"]) and row["ours"] >= 0, row
        if row["peer"]:
            assert row["theirs"] is not None, f"a peer without its figure: {row}"
    peers = " ".join(r["peer"] for r in rows)
    for peer in ("baresip", "Linphone desktop", "bare pjsua2", "plain RTP", "kernel netlink"):
        assert peer in peers, f"no row against {peer}"
    # The security facts are measured, not assumed: guardphone refuses both.
    facts = {r["figure"]: r for r in rows if r["figure"].startswith(("registers", "accepts"))}
    assert facts and all(r["ours"] == "no" for r in facts.values()), facts
    # The SRTP profile sees the encryption: libsrtp's samples in the SRTP call, (nearly)
    # none in the plain one.
    calls = result["figures"]["srtp_cost"]["codecs"]["default"]
    assert calls["srtp"][0]["srtp_samples"] > calls["rtp"][0]["srtp_samples"], calls
    table = written[0].with_suffix(".txt").read_text()
    assert table.splitlines()[0].startswith("figure") and len(table.splitlines()) == len(rows) + 2
