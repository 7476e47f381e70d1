""" "Why can't I call?": every check the gate makes, its result, what was last seen, and what
to do about a failure, in words an employee in a hotel can act on."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from agent.why import FAIL, PASS, Check
from ui import icons
from ui.status import Status

RESULT_WORDS = {PASS: "OK", FAIL: "Failed"}


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
        self.tree = QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Check", "What was seen, and what to do"])
        self.tree.setRootIsDecorated(False)
        self.tree.setWordWrap(True)
        self.tree.setUniformRowHeights(False)
        self.tree.setIconSize(QSize(18, 18))
        self.tree.setColumnWidth(0, 260)
        self.tree.setAlternatingRowColors(True)
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
        layout.addWidget(self.tree)
        layout.addLayout(buttons)
        self.again_button.clicked.connect(self.check_again.emit)
        self.connect_button.clicked.connect(self.connect_tunnel.emit)
        self.connect_button.hide()
        self.resize(760, 420)
        self.checks: list[Check] = []

    def set_status(self, status: Status) -> None:
        self.headline.setText("You can call" if status.can_call else status.headline)
        self.summary.setText(status.detail)

    def set_checks(self, checks: list[Check]) -> None:
        self.checks = list(checks)
        self.tree.clear()
        for check in checks:
            text = check.observed
            if check.failed and check.fix:
                text += f"\nWhat to do: {check.fix}"
            item = QTreeWidgetItem([check.name, text])
            item.setIcon(0, icons.mark(check.result))
            item.setToolTip(0, RESULT_WORDS.get(check.result, "Not checked"))
            item.setToolTip(1, text)
            if check.failed:
                font = item.font(0)
                font.setBold(True)
                item.setFont(0, font)
            self.tree.addTopLevelItem(item)
        tunnel_down = any(c.failed and c.name == "Office tunnel connected" for c in checks)
        self.connect_button.setVisible(self._may_connect and tunnel_down)

    def failing(self) -> list[str]:
        return [c.name for c in self.checks if c.failed]
