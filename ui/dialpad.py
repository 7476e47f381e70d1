"""The dial pad: type or click a number, see what it will dial, call. Usable without a mouse:
type, Enter calls, Escape closes, arrows + Enter pick a recent call."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QGridLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from agent.numbers import classify, is_phone_number
from ui.status import Status, dial_target

KEYS = [("1", ""), ("2", "ABC"), ("3", "DEF"), ("4", "GHI"), ("5", "JKL"), ("6", "MNO"),
        ("7", "PQRS"), ("8", "TUV"), ("9", "WXYZ"), ("*", ""), ("0", "+"), ("#", "")]  # fmt: skip


def describe(text: str, region: str, domain: str) -> str:
    """What will be dialled, in the fraud guard's own reading of the number."""
    text = text.strip()
    if not text:
        return ""
    if not is_phone_number(text):
        return f"Calls {dial_target(text, domain).removeprefix('sip:')}"
    number = classify(text, region)
    if number.emergency:
        return "Emergency number: always connected, whatever else is going on."
    if number.e164 is None or number.kind == "invalid":
        return f"Not a valid number as dialled from {region}."
    kind = number.kind.replace("_", " ")
    where = f"{number.country}, " if number.country else ""
    return f"Calls {number.e164} ({where}{kind})"


class DialPad(QWidget):
    dial = Signal(str)  # what to dial (a number as typed, or a SIP URI)

    def __init__(self, region: str, domain: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("guardphone: call")
        self._region, self._domain = region, domain
        self.number = QLineEdit()
        self.number.setObjectName("number")
        self.number.setPlaceholderText("Number or colleague's name")
        self.number.setClearButtonEnabled(True)
        self.preview = QLabel()
        self.preview.setObjectName("subtle")
        self.reason = QLabel()
        self.reason.setObjectName("reason")
        self.reason.setWordWrap(True)
        self.call_button = QPushButton("Call")
        self.call_button.setObjectName("call")
        self.recent = QListWidget()
        self.recent.setMaximumHeight(120)
        keys = QGridLayout()
        for i, (digit, letters) in enumerate(KEYS):
            button = QPushButton(f"{digit}\n{letters}" if letters else digit)
            button.setObjectName("key")
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keyboard stays in the field
            button.clicked.connect(lambda _=False, d=digit: self._press(d))
            keys.addWidget(button, i // 3, i % 3)
        layout = QVBoxLayout(self)
        layout.addWidget(self.number)
        layout.addWidget(self.preview)
        layout.addLayout(keys)
        layout.addWidget(self.call_button)
        layout.addWidget(self.reason)
        recent_label = QLabel("Recent calls")
        recent_label.setObjectName("subtle")
        layout.addWidget(recent_label)
        layout.addWidget(self.recent)
        self.number.textChanged.connect(self._changed)
        self.number.returnPressed.connect(self._call)
        self.call_button.clicked.connect(self._call)
        self.recent.itemActivated.connect(self._recent_chosen)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.close)
        self._status_reason = ""
        self._can_call = False
        self._changed("")

    def set_status(self, status: Status) -> None:
        """Calls are possible or not; when not, the button says why."""
        self._can_call = status.can_call
        self._status_reason = "" if status.can_call else (status.detail or status.headline)
        self._update_button()

    def show_blocked(self, reason: dict[str, str]) -> None:
        self.reason.setText(f"Not dialled: {reason.get('reason', '')}")

    def set_recent(self, entries: list[tuple[str, str]]) -> None:
        self.recent.clear()
        for label, target in entries[:10]:
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, target)
            self.recent.addItem(item)

    def open(self, number: str = "") -> None:
        if number:
            self.number.setText(number)
        self.show()
        self.raise_()
        self.activateWindow()
        self.number.setFocus()

    def _press(self, digit: str) -> None:
        self.number.insert(digit)
        self.number.setFocus()

    def _changed(self, text: str) -> None:
        self.preview.setText(describe(text, self._region, self._domain))
        self.reason.clear()
        self._update_button()

    def _emergency(self) -> bool:
        text = self.number.text()
        return is_phone_number(text) and classify(text, self._region).emergency

    def _update_button(self) -> None:
        has_number = bool(self.number.text().strip())
        # Emergency numbers are never blocked: the button stays usable for them.
        enabled = has_number and (self._can_call or self._emergency())
        self.call_button.setEnabled(enabled)
        if has_number and not enabled:
            self.call_button.setToolTip(self._status_reason)
            self.reason.setText(self._status_reason)
        else:
            self.call_button.setToolTip("")

    def _call(self) -> None:
        if not self.call_button.isEnabled():
            return
        self.reason.clear()
        self.dial.emit(dial_target(self.number.text(), self._domain))

    def _recent_chosen(self, item: QListWidgetItem) -> None:
        self.number.setText(str(item.data(Qt.ItemDataRole.UserRole)))
        self._call()
