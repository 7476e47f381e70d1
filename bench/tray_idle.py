"""What the registered tray app costs a laptop while nothing happens: RSS, CPU seconds per
minute and wake-ups (context switches, every thread, from /proc) per second.

Peers measured in the same run, side by side on the same lab and display:
- the headless agent (`guardphone register`): the same core without Qt, blocking in
  libHandleEvents between events;
- a bare PySide6 tray icon: what Qt and a tray icon cost by themselves.

Run with `make bench-tray` (inside a private Secret Service and, without a display, on Xvfb
with a tray host). `--seconds` sets the idle window (default 60). Prints a table and writes
JSON with the machine's description to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import results_file
from bench.idle import idle_figures
from lab import lab as lab_mod
from lab import sbc
from tests.services import GUARDPHONE, free_port

TRAY = str(Path(sys.executable).with_name("guardphone-tray"))
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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    if not os.environ.get("DISPLAY"):
        print("bench-tray: needs a display (run it through scripts/desktop-session.sh)")
        return 2
    from agent.keystore import OsKeychain

    store = OsKeychain()
    directory = Path(tempfile.mkdtemp(prefix="guardphone-bench-tray-"))
    port = free_port((sbc.GOOD, sbc.NAME_MISMATCH, sbc.EXPIRED, sbc.ROGUE))
    state = lab_mod.up(directory, store, port=port)
    cfg = {u.name: u.config for u in state.users}
    commands = {
        "tray app": [TRAY, "--config", cfg["alice"], "--json"],
        "headless agent": [GUARDPHONE, "--config", cfg["bob"], "register", "--json"],
        "bare Qt tray icon": [sys.executable, "-c", BARE_TRAY],
    }
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for name, cmd in commands.items():
            procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            wait_registered(procs[name], name)
        figures = idle_figures({n: p.pid for n, p in procs.items()}, args.seconds)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(10)
        lab_mod.down(directory, store)

    ours = figures["tray app"]
    print(f"idle over {args.seconds:.0f} s, registered")
    print(f"{'figure':24} {'tray app':>10} {'headless':>10} {'bare Qt':>10} {'vs headless':>12}")
    for key in ("rss_mib", "cpu_s_per_min", "wakeups_per_s", "threads"):
        head, bare = figures["headless agent"][key], figures["bare Qt tray icon"][key]
        ratio = f"{ours[key] / head:.2f}" if head else "n/a"
        print(f"{key:24} {ours[key]:>10} {head:>10} {bare:>10} {ratio:>12}")
    results_file.write("tray_idle", {"seconds": args.seconds, "figures": figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
