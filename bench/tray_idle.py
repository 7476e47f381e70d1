"""What the registered tray app costs a laptop while nothing happens: RSS, CPU seconds per
minute and wake-ups (context switches, every thread, from /proc) per second.

Peers measured in the same run, side by side on the same lab and display:
- the headless agent (`guardphone register`): the same core without Qt, blocking in
  libHandleEvents between events;
- a bare PySide6 tray icon: what Qt and a tray icon cost by themselves.

Run with `make bench ONLY=tray_idle` (inside a private Secret Service and, without a
display, on Xvfb with a tray host). `--seconds` sets the idle window (default 60). Prints a
table and writes JSON with the machine's description to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import labrun, results_file
from bench.idle import idle_figures
from bench.table import Row, render
from tests.services import GUARDPHONE

TRAY = str(Path(sys.executable).with_name("guardphone-tray"))
LINPHONE = "linphone"  # Debian's linphone-desktop (Qt)
PEER = "Linphone desktop"
BARE_TRAY = """
import sys
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QApplication, QSystemTrayIcon
app = QApplication(sys.argv)
pixmap = QPixmap(32, 32)
pixmap.fill()
icon = QSystemTrayIcon(QIcon(pixmap))
icon.show()
print('{"state": "registered"}', flush=True)
app.exec()
"""


def wait_registered(proc: subprocess.Popen[str], name: str) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        if raw.startswith("{") and json.loads(raw).get("state") == "registered":
            return
    raise RuntimeError(f"{name} never registered")


def measure(seconds: float) -> dict[str, Any]:
    state, store = labrun.start("tray")
    directory = Path(state.directory)
    cfg = {u.name: u.config for u in state.users}
    commands = {
        "tray app": [TRAY, "--config", cfg["alice"], "--json"],
        "headless agent": [GUARDPHONE, "--config", cfg["bob"], "register", "--json"],
        "bare Qt tray icon": [sys.executable, "-c", BARE_TRAY],
    }
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        if shutil.which(LINPHONE):
            # Linphone's Qt desktop app with a fresh profile, not registered: configuring its
            # TLS client certificate without its GUI is not supported, so it idles
            # unregistered (the cheaper case for it). Its start-up gets a fixed 15 s.
            home = directory / "linphone-home"
            home.mkdir()
            procs[PEER] = subprocess.Popen(
                [LINPHONE, "--iconified"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
                env={**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(home)},
            )
            time.sleep(15)
        for name, cmd in commands.items():
            procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            wait_registered(procs[name], name)
        return idle_figures({n: p.pid for n, p in procs.items()}, seconds)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(10)
        labrun.stop(state, store)


def rows(figures: dict[str, Any]) -> list[Row]:
    ours, head, qt = figures["tray app"], figures["headless agent"], figures["bare Qt tray icon"]
    peer = figures.get(PEER)
    linphone = []
    if peer is not None:
        linphone = [
            Row(
                "tray app idle: RSS MiB",
                ours["rss_mib"],
                PEER + " (unregistered)",
                peer["rss_mib"],
                "<= 0.4x peer",
                ours["rss_mib"] <= 0.4 * peer["rss_mib"],
            ),
            Row(
                "tray app idle: CPU s/min",
                ours["cpu_s_per_min"],
                PEER + " (unregistered)",
                peer["cpu_s_per_min"],
            ),
            Row(
                "tray app idle: wake-ups/s",
                ours["wakeups_per_s"],
                PEER + " (unregistered)",
                peer["wakeups_per_s"],
            ),
        ]
    return [
        *linphone,
        Row("tray app idle, registered: RSS MiB", ours["rss_mib"], "headless agent",
            head["rss_mib"], "< 100 MiB", ours["rss_mib"] < 100),
        Row("tray app idle, registered: RSS MiB", ours["rss_mib"], "bare PySide6 tray icon",
            qt["rss_mib"]),
        Row("tray app idle, registered: CPU s/min", ours["cpu_s_per_min"], "headless agent",
            head["cpu_s_per_min"], "< 0.05", ours["cpu_s_per_min"] < 0.05),
        Row("tray app idle, registered: wake-ups/s", ours["wakeups_per_s"], "headless agent",
            head["wakeups_per_s"], "< 5", ours["wakeups_per_s"] < 5),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    if not os.environ.get("DISPLAY"):
        print("bench-tray: needs a display (run it through scripts/desktop-session.sh)")
        return 2
    figures = measure(args.seconds)
    print(f"idle over {args.seconds:.0f} s, registered")
    print(render(rows(figures)))
    results_file.write("tray_idle", {"seconds": args.seconds, "figures": figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
