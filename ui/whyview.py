""" "Why can't I call?": every check the gate makes, its result, what was last seen, and what
to do about a failure, in words an employee in a hotel can act on."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from agent.why import FAIL, PASS, Check
from ui import icons
from ui.status import Status

RESULT_WORDS = {PASS: "OK", FAIL: "Failed"}


class CheckRow(QWidget):
    """One check: its mark, its name, what was seen and, when it failed, what to do."""

    def __init__(self, check: Check) -> None:
        super().__init__()
        mark = QLabel()
        mark.setPixmap(icons.mark(check.result).pixmap(QSize(20, 20)))
        mark.setToolTip(RESULT_WORDS.get(check.result, "Not checked"))
        mark.setAlignment(Qt.AlignmentFlag.AlignTop)
        name = QLabel(check.name)
        name.setObjectName("check_failed" if check.failed else "check")
        observed = QLabel(check.observed)
        observed.setWordWrap(True)
        observed.setObjectName("subtle")
        observed.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        text = QVBoxLayout()
        text.setSpacing(2)
        text.addWidget(name)
        text.addWidget(observed)
        if check.failed and check.fix:
            fix = QLabel(f"What to do: {check.fix}")
            fix.setWordWrap(True)
            fix.setObjectName("fix")
            fix.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            text.addWidget(fix)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 6, 4, 6)
        row.addWidget(mark)
        row.addLayout(text, 1)


class WhyView(QWidget):
    check_again = Signal()
    connect_tunnel = Signal()

    def __init__(self, may_connect: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("guardphone: why can't I call?")
        self._may_connect = may_connect
        self.headline = QLabel("Checking…")
        self.headline.setObjectName("title")
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.check_list = QScrollArea()
        self.check_list.setWidgetResizable(True)
        self.connect_button = QPushButton("Connect")
        self.connect_button.setToolTip("Bring the office tunnel up")
        self.again_button = QPushButton("Check again")
        buttons = QHBoxLayout()
        buttons.addStretch()
        buttons.addWidget(self.connect_button)
        buttons.addWidget(self.again_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.headline)
        layout.addWidget(self.summary)
        layout.addWidget(self.check_list, 1)
        layout.addLayout(buttons)
        self.again_button.clicked.connect(self.check_again.emit)
        self.connect_button.clicked.connect(self.connect_tunnel.emit)
        self.connect_button.hide()
        self.resize(640, 520)
        self.checks: list[Check] = []

    def set_status(self, status: Status) -> None:
        self.headline.setText("You can call" if status.can_call else status.headline)
        self.summary.setText(status.detail)

    def set_checks(self, checks: list[Check]) -> None:
        self.checks = list(checks)
        body = QWidget()  # a fresh list each time; the scroll area deletes the old one
        rows = QVBoxLayout(body)
        rows.setSpacing(0)
        for check in checks:
            rows.addWidget(CheckRow(check))
        rows.addStretch()
        self.check_list.setWidget(body)
        tunnel_down = any(c.failed and c.name == "Office tunnel connected" for c in checks)
        self.connect_button.setVisible(self._may_connect and tunnel_down)

    def failing(self) -> list[str]:
        return [c.name for c in self.checks if c.failed]
