"""`guardphone-tray`: the desktop app. Wires the tray, the windows and the agent bridge."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import platform
import signal
import socket
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import PySide6
from PySide6.QtCore import QObject, QSocketNotifier
from PySide6.QtWidgets import QApplication, QMessageBox, QSystemTrayIcon

from agent import keystore
from agent.config import ConfigError
from agent.sip import SipEngine
from tunnel.wireguard import WireGuard, WireGuardError
from ui import style
from ui.bridge import AgentBridge
from ui.callwindow import CallWindow, IncomingCall
from ui.dialpad import DialPad
from ui.settingsdialog import SettingsDialog
from ui.status import security_line
from ui.tray import Tray
from ui.whyview import WhyView

log = logging.getLogger(__name__)
RECENT_TYPES = ("call.placed", "call.incoming")


class GuardphoneApp(QObject):
    """One per process: the agent bridge and every window it drives."""

    def __init__(
        self, config_path: Path, engine: SipEngine | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.config_path = config_path
        self.bridge = AgentBridge(config_path, engine, self)
        cfg = self.bridge.config
        self.tray = Tray(cfg.desktop.allow_quit, self)
        self.dialpad = DialPad(cfg.fraud.region, cfg.account.domain)
        may_connect = bool(cfg.wireguard and cfg.wireguard.agent_may_connect)
        self.why = WhyView(may_connect)
        self.calls: dict[int, CallWindow] = {}
        self.incoming: dict[int, IncomingCall] = {}
        self._placing: CallWindow | None = None  # opened on dial, before the call has an id
        b, t = self.bridge, self.tray
        b.state.connect(self.on_state)
        b.checks_changed.connect(self.why.set_checks)
        b.dial_refused.connect(self._dial_refused)
        t.call_requested.connect(self.dialpad.open)
        t.why_requested.connect(self.show_why)
        t.settings_requested.connect(self.show_settings)
        t.about_requested.connect(self.show_about)
        t.quit_requested.connect(self.quit)
        t.recent_chosen.connect(self.dialpad.open)
        self.dialpad.dial.connect(self.dial)
        self.why.check_again.connect(b.check_now)
        self.why.connect_tunnel.connect(self.connect_tunnel)
        self._refresh_recent()

    def start(self) -> None:
        self.bridge.start()

    def quit(self) -> None:
        for window in [*self.calls.values(), *self.incoming.values()]:
            window.close()
        self.bridge.shutdown()

    # -- agent states -------------------------------------------------------------------

    def on_state(self, line: dict[str, Any]) -> None:
        self.tray.on_state(line)
        self.dialpad.set_status(self.tray.status)
        self.why.set_status(self.tray.status)
        name = line.get("state")
        call_id = line.get("call_id")
        if name == "incoming" and call_id is not None:
            self._ring(line)
        elif name in (
            "ringing",
            "call_established",
            "media_silent",
            "media_restored",
            "call_ended",
            "call_failed",
        ):
            window = self._window_for(line)
            if window is None:
                return
            security = None
            if name == "call_established":
                phone = self.bridge.phone
                security = security_line(line["security"], phone.verdict.interface, phone.server)
            window.on_state(line, security)
            if name in ("call_ended", "call_failed"):
                self.calls.pop(window.call_id, None)
                self._close_incoming(window.call_id)
                self._refresh_recent()
        elif name in ("call_blocked", "fraud_suspended") and self._placing is not None:
            self._placing.close()
            self._placing = None

    def _window_for(self, line: dict[str, Any]) -> CallWindow | None:
        call_id = int(line["call_id"]) if line.get("call_id") is not None else None
        if call_id is None:
            return None
        if call_id not in self.calls and self._placing is not None:
            self._placing.call_id = call_id  # the call we just placed now has its id
            self.calls[call_id] = self._placing
            self._placing = None
        if call_id not in self.calls and line.get("state") == "call_established":
            self.calls[call_id] = self._open_call(line)  # an answered incoming call
        return self.calls.get(call_id)

    def _open_call(self, line: dict[str, Any]) -> CallWindow:
        window = CallWindow(line)
        b = self.bridge
        window.hangup.connect(b.hangup)
        window.mute.connect(b.set_mute)
        window.hold.connect(lambda cid, on: self._hold(window, cid, on))
        window.dtmf.connect(b.send_dtmf)
        window.show()
        window.raise_()
        return window

    def _hold(self, window: CallWindow, call_id: int, on: bool) -> None:
        if not self.bridge.set_hold(call_id, on):
            window.hold_refused()

    def _ring(self, line: dict[str, Any]) -> None:
        window = IncomingCall(line)
        window.answer.connect(self._answer)
        window.decline.connect(self._decline)
        self.incoming[window.call_id] = window
        window.show()
        window.raise_()
        if QSystemTrayIcon.supportsMessages():
            kind = "internal" if window.internal else "EXTERNAL, not verified"
            self.tray.icon.showMessage("Incoming call", f"{window.windowTitle()} ({kind})")

    def _answer(self, call_id: int) -> None:
        self._close_incoming(call_id)
        self.bridge.answer(call_id)

    def _decline(self, call_id: int) -> None:
        self._close_incoming(call_id)
        self.bridge.hangup(call_id)

    def _close_incoming(self, call_id: int) -> None:
        window = self.incoming.pop(call_id, None)
        if window is not None:
            window.close()

    # -- user actions -------------------------------------------------------------------

    def dial(self, target: str) -> None:
        self._placing = self._open_call({"uri": target, "call_id": -1})
        self.bridge.dial(target)

    def _dial_refused(self, reason: dict[str, str]) -> None:
        if self._placing is not None:
            self._placing.close()
            self._placing = None
        self.dialpad.show_blocked(reason)
        self.dialpad.open()

    def show_why(self) -> None:
        self.why.set_status(self.tray.status)
        self.why.set_checks(self.bridge.checks)
        self.why.show()
        self.why.raise_()

    def show_settings(self) -> None:
        try:
            dialog = SettingsDialog(self.config_path, self.bridge.phone.audio_devices())
        except ConfigError as exc:
            QMessageBox.warning(None, "guardphone", str(exc))
            return
        dialog.open()
        self._settings = dialog

    def show_about(self) -> None:
        QMessageBox.about(None, "About guardphone", about_text(self.bridge.phone.versions()))

    def connect_tunnel(self) -> None:
        wg = self.bridge.config.wireguard
        if wg is None or not wg.profile:
            return
        try:
            WireGuard().quick("up", wg.profile)
        except WireGuardError as exc:
            QMessageBox.warning(None, "guardphone", f"The tunnel could not be connected: {exc}")
        self.bridge.check_now()

    def _refresh_recent(self) -> None:
        entries = []
        for event in self.bridge.session.log.query(types=RECENT_TYPES, limit=10, newest_first=True):
            outgoing = event.type == "call.placed"
            target = str(
                event.fields.get("uri" if outgoing else "caller") or event.fields.get("from", "")
            )
            when = dt.datetime.fromisoformat(event.time).astimezone().strftime("%d %b %H:%M")
            arrow = "\N{RIGHTWARDS ARROW}" if outgoing else "\N{LEFTWARDS ARROW}"
            shown = target.removeprefix("sip:").split(";", 1)[0]
            entries.append((f"{arrow} {shown}   {when}", target))
        self.tray.set_recent(entries)
        self.dialpad.set_recent(entries)


def about_text(versions: dict[str, str]) -> str:
    try:
        ours = metadata.version("guardphone")
    except metadata.PackageNotFoundError:
        ours = "development"
    return (
        f"<b>guardphone {ours}</b><br>"
        f"pjsip {versions.get('pjsip', 'unknown')}<br>"
        f"pjsip's OpenSSL: {versions.get('pjsip_openssl', 'unknown')}<br>"
        f"Qt {PySide6.QtCore.qVersion()} · PySide6 {PySide6.__version__}<br>"
        f"Python {platform.python_version()} on {platform.system()} {platform.release()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="guardphone-tray", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="the agent configuration")
    parser.add_argument(
        "--json", action="store_true", help="also print every state as a JSON line (as the CLI)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    app = QApplication(sys.argv[:1])
    app.setApplicationName("guardphone")
    app.setQuitOnLastWindowClosed(False)  # the tray lives on with every window closed
    app.setStyleSheet(style.SHEET)
    if not QSystemTrayIcon.isSystemTrayAvailable():
        print(
            "guardphone-tray: this desktop has no system tray (start a tray host).", file=sys.stderr
        )
        return 2
    try:
        gp = GuardphoneApp(args.config)
    except ConfigError as exc:
        print(f"guardphone-tray: {exc}", file=sys.stderr)
        return 2
    except keystore.KeychainError as exc:  # logged as a refusal by the bridge first
        print(f"guardphone-tray: {exc}", file=sys.stderr)
        return 1
    gp.bridge.stopped.connect(app.quit)
    if args.json:
        gp.bridge.state.connect(lambda line: print(json.dumps(line), flush=True))
    # SIGTERM / Ctrl-C: the same clean exit as Quit (unregister, then leave).
    signal.signal(signal.SIGTERM, lambda *_: gp.quit())
    signal.signal(signal.SIGINT, lambda *_: gp.quit())
    # Python runs signal handlers only when the interpreter runs: a signal also writes to a
    # socket Qt watches, which wakes the event loop (no polling timer needed).
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno())
    wake = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read)
    wake.activated.connect(lambda: reader.recv(64))
    gp.start()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
