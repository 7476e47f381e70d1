"""The tray icon and its menu: the state in a glance and in words, and the way to everything."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from ui import icons
from ui.status import STARTING, Status, notification, status_after


class Tray(QObject):
    call_requested = Signal()
    why_requested = Signal()
    settings_requested = Signal()
    about_requested = Signal()
    quit_requested = Signal()
    recent_chosen = Signal(str)

    def __init__(self, allow_quit: bool, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.status = STARTING
        self.icon = QSystemTrayIcon(icons.icon(STARTING.kind), self)
        self.menu = QMenu()
        self.headline = self.menu.addAction(STARTING.headline)
        self.headline.setEnabled(False)
        self.menu.addSeparator()
        self.call_action = self._add("Call…", self.call_requested)
        self.why_action = self._add("Why can't I call?", self.why_requested)
        self.recent_menu = self.menu.addMenu("Recent calls")
        self.menu.addSeparator()
        self.settings_action = self._add("Settings…", self.settings_requested)
        self.about_action = self._add("About guardphone", self.about_requested)
        self.quit_action = self._add("Quit", self.quit_requested)
        # IT may keep the app running: then Quit is not offered at all.
        self.quit_action.setVisible(allow_quit)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self.set_recent([])
        self._show(STARTING)
        self.icon.show()

    def _add(self, text: str, signal: Any) -> QAction:
        action = self.menu.addAction(text)
        action.triggered.connect(signal)
        return action

    def on_state(self, line: dict[str, Any]) -> None:
        new = status_after(self.status, line)
        if new == self.status:
            return
        worse = notification(self.status, new)
        if new.advice != self.status.advice:  # said once, then kept in the tooltip
            worse = worse or ("Update recommended", new.advice.removeprefix("Update recommended: "))
        self._show(new)
        if worse is not None and QSystemTrayIcon.supportsMessages():
            self.icon.showMessage(
                worse[0], worse[1], icons.icon(new.kind), 8000
            )  # "Calls paused: the office tunnel is down"

    def _show(self, status: Status) -> None:
        self.status = status
        self.icon.setIcon(icons.icon(status.kind))
        self.icon.setToolTip(status.tooltip)
        self.headline.setText(status.headline)
        self.call_action.setEnabled(status.can_call)
        self.why_action.setText("Connection details" if status.can_call else "Why can't I call?")

    def set_recent(self, entries: list[tuple[str, str]]) -> None:
        """(label, target) pairs, newest first."""
        self.recent_menu.clear()
        for label, target in entries[:10]:
            action = self.recent_menu.addAction(label)
            action.triggered.connect(lambda _=False, t=target: self.recent_chosen.emit(t))
        self.recent_menu.setEnabled(bool(entries))

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            (self.call_requested if self.status.can_call else self.why_requested).emit()
