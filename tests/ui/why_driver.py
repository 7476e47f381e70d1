"""The tray app with its "why" view open, for tests that must run it inside a lab namespace.

Prints one JSON line each time the tray status or the failing checks change (read off the
widgets, not the model) and saves the why view as why-<n>.png in the given folder.
SIGTERM quits the way the tray's Quit does.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
from pathlib import Path

from PySide6.QtCore import QSocketNotifier, QTimer
from PySide6.QtWidgets import QApplication

from ui import style
from ui.app import GuardphoneApp


def main() -> int:
    config, folder = Path(sys.argv[1]), Path(sys.argv[2])
    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    app.setStyleSheet(style.SHEET)
    gp = GuardphoneApp(config)
    gp.bridge.stopped.connect(app.quit)
    gp.show_why()
    seen: list[tuple[str, tuple[str, ...]]] = []

    def report() -> None:
        key = (gp.tray.status.kind, tuple(gp.why.failing()))
        if seen and seen[-1] == key:
            return
        seen.append(key)
        shot = folder / f"why-{len(seen)}.png"
        gp.why.grab().save(str(shot))
        line = {
            "state": "why",
            "status": key[0],
            "failing": list(key[1]),
            "rows": [[c.name, c.result, c.observed, c.fix] for c in gp.why.checks],
            "headline": gp.why.headline.text(),
            "connect_button": gp.why.connect_button.isVisible(),
            "screenshot": str(shot),
        }
        print(json.dumps(line), flush=True)

    gp.bridge.checks_changed.connect(lambda _: QTimer.singleShot(0, report))
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno())
    wake = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read)
    wake.activated.connect(lambda: reader.recv(64))
    signal.signal(signal.SIGTERM, lambda *_: gp.quit())
    gp.start()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
