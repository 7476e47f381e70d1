"""The call windows: an incoming call that says who is really calling, and the call itself
with its controls and a security line that tells the truth about what protects it."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui.dialpad import KEYS


def who(line: dict[str, Any]) -> tuple[str, str]:
    """(name to show, address) for a call state."""
    address = str(line.get("caller") or line.get("uri") or line.get("from") or "")
    address = address.removeprefix("sip:").split(";", 1)[0]
    return str(line.get("display_name") or address.split("@", 1)[0]), address


class IncomingCall(QWidget):
    answer = Signal(int)
    decline = Signal(int)

    def __init__(self, line: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window | Qt.WindowType.WindowStaysOnTopHint)
        self.call_id = int(line["call_id"])
        self.internal = bool(line.get("internal"))
        name, address = who(line)
        self.setWindowTitle(f"Incoming call: {name}")
        title = QLabel(name)
        title.setObjectName("title")
        addr = QLabel(address)
        addr.setObjectName("subtle")
        addr.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.badge = QLabel(
            "Internal: identity confirmed by the company SBC"
            if self.internal
            else "External caller: identity NOT verified. Be careful if they say they are "
            "IT or ask for passwords or codes."
        )
        self.badge.setObjectName("badge_internal" if self.internal else "badge_external")
        self.badge.setWordWrap(True)
        self.answer_button = QPushButton("Answer")
        self.answer_button.setObjectName("answer")
        self.decline_button = QPushButton("Decline")
        self.decline_button.setObjectName("decline")
        buttons = QHBoxLayout()
        buttons.addWidget(self.decline_button)
        buttons.addWidget(self.answer_button)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Incoming call"))
        layout.addWidget(title)
        layout.addWidget(addr)
        layout.addWidget(self.badge)
        layout.addLayout(buttons)
        self.answer_button.clicked.connect(lambda: self.answer.emit(self.call_id))
        self.decline_button.clicked.connect(lambda: self.decline.emit(self.call_id))
        self.answer_button.setDefault(True)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.decline_button.click)
        self.setMinimumWidth(380)


class CallWindow(QWidget):
    hangup = Signal(int)
    mute = Signal(int, bool)
    hold = Signal(int, bool)
    dtmf = Signal(int, str)

    def __init__(self, line: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.call_id = int(line.get("call_id", -1))
        name, address = who(line)
        self.setWindowTitle(f"Call: {name}")
        self.title = QLabel(name)
        self.title.setObjectName("title")
        self.address = QLabel(address)
        self.address.setObjectName("subtle")
        self.state = QLabel("Calling…")
        self.clock = QLabel("")
        self.silence = self._silence_banner()
        self._silent: dict[str, str] = {}
        self.security = QLabel("Waiting for the call to connect…")
        self.security.setObjectName("security")
        self.security.setWordWrap(True)
        self.security.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.mute_button = QPushButton("Mute")
        self.mute_button.setCheckable(True)
        self.hold_button = QPushButton("Hold")
        self.hold_button.setCheckable(True)
        self.keypad_button = QPushButton("Keypad")
        self.keypad_button.setCheckable(True)
        self.hangup_button = QPushButton("Hang up")
        self.hangup_button.setObjectName("hangup")
        controls = QHBoxLayout()
        for button in (self.mute_button, self.hold_button, self.keypad_button):
            controls.addWidget(button)
        self.keypad = self._keypad()
        head = QHBoxLayout()
        head.addWidget(self.state)
        head.addStretch()
        head.addWidget(self.clock)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.address)
        layout.addLayout(head)
        layout.addWidget(self.silence)
        layout.addLayout(controls)
        layout.addWidget(self.keypad)
        layout.addWidget(self.hangup_button)
        layout.addWidget(self.security)
        self.mute_button.toggled.connect(self._muted)
        self.hold_button.toggled.connect(self._held)
        self.keypad_button.toggled.connect(self.keypad.setVisible)
        self.hangup_button.clicked.connect(lambda: self.hangup.emit(self.call_id))
        self._started: float | None = None
        self._tick = QTimer(self)  # runs only while a call is connected
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._update_clock)
        self.setMinimumWidth(460)

    def _silence_banner(self) -> QLabel:
        """Says in words which way a call carries no audio (agent.silence); hidden otherwise."""
        banner = QLabel("")
        banner.setObjectName("media_silent")
        banner.setWordWrap(True)
        banner.hide()
        return banner

    def _keypad(self) -> QWidget:
        """DTMF keys (RFC 4733 events inside the SRTP stream), hidden until asked for."""
        keypad = QWidget()
        grid = QGridLayout(keypad)
        for i, (digit, _) in enumerate(KEYS):
            key = QPushButton(digit)
            key.setObjectName("key")
            key.clicked.connect(lambda _=False, d=digit: self.dtmf.emit(self.call_id, d))
            grid.addWidget(key, i // 3, i % 3)
        keypad.hide()
        return keypad

    def keyPressEvent(self, event: Any) -> None:
        text = event.text()
        if self._started is not None and text and text in "0123456789*#":
            self.dtmf.emit(self.call_id, text)  # the keyboard works as a keypad in a call
            return
        super().keyPressEvent(event)

    def on_state(self, line: dict[str, Any], security_text: str | None = None) -> None:
        name = line.get("state")
        if name == "ringing":
            self.state.setText("Ringing…")
        elif name == "call_established":
            self.state.setText("Connected")
            self._started = time.monotonic()
            self._tick.start()
            self._update_clock()
            if security_text:
                # One fact per line: signaling, media, path.
                self.security.setText(security_text.replace(" · ", "\n"))
                self.adjustSize()
        elif name == "media_silent":
            self._silent[str(line.get("direction"))] = str(line.get("reason", "No audio."))
            self._show_silence()
        elif name == "media_restored":
            self._silent.pop(str(line.get("direction")), None)
            self._show_silence()
        elif name in ("call_ended", "call_failed"):
            self._silent.clear()
            self._show_silence()
            self._tick.stop()
            self.state.setText("Call ended" if name == "call_ended" else "Call failed")
            if line.get("reason"):
                self.state.setText(f"{self.state.text()}: {line['reason']}")
            for button in (self.mute_button, self.hold_button, self.hangup_button):
                button.setEnabled(False)
            QTimer.singleShot(4000, self.close)

    def _show_silence(self) -> None:
        self.silence.setText("\n".join(self._silent[d] for d in sorted(self._silent)))
        self.silence.setVisible(bool(self._silent))
        self.adjustSize()

    def _muted(self, on: bool) -> None:
        self.mute_button.setText("Unmute" if on else "Mute")
        self.mute.emit(self.call_id, on)

    def _held(self, on: bool) -> None:
        self.hold_button.setText("Resume" if on else "Hold")
        self.state.setText("On hold" if on else "Connected")
        self.hold.emit(self.call_id, on)

    def hold_refused(self) -> None:
        """The engine could not change the hold state now (a re-INVITE is pending)."""
        self.hold_button.blockSignals(True)
        self.hold_button.setChecked(not self.hold_button.isChecked())
        self.hold_button.blockSignals(False)
        on = self.hold_button.isChecked()
        self.hold_button.setText("Resume" if on else "Hold")
        self.state.setText("Please wait a moment and try again")

    def _update_clock(self) -> None:
        if self._started is None:
            return
        seconds = int(time.monotonic() - self._started)
        self.clock.setText(f"{seconds // 60:02d}:{seconds % 60:02d}")
