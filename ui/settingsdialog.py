"""Settings: every setting with its value and where it comes from. What the organisation set
and locked is shown, marked, and cannot be edited; the rest is saved to the user's file only
once the whole configuration still validates (agent.settings.change)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from agent import managed, settings
from agent.config import ConfigError
from agent.sip import AudioDevice
from ui import icons

DEFAULT_DEVICE = "(system default)"
LOCKED_NOTE = "Set by your organisation"


class SettingsDialog(QDialog):
    def __init__(
        self, user_path: Path, devices: list[AudioDevice], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("guardphone: settings")
        self._user_path = user_path
        self.effective = settings.load(user_path, managed.open_source())
        values = self.effective.values
        self.microphone = self._device_box(
            [d.name for d in devices if d.inputs], values.get("media.input_device")
        )
        self.speaker = self._device_box(
            [d.name for d in devices if d.outputs], values.get("media.output_device")
        )
        audio = QFormLayout()
        audio.addRow("Microphone", self.microphone)
        audio.addRow("Speaker", self.speaker)
        if not devices:
            note = QLabel("No sound device found: calls run without one (no audio).")
            note.setObjectName("subtle")
            audio.addRow(note)
        self.table = QTableWidget(len(settings.TABLE), 3)
        self.table.setHorizontalHeaderLabels(["Setting", "Value", "From"])
        self.table.verticalHeader().setVisible(False)
        self._shown: dict[str, str] = {}
        for row, setting in enumerate(settings.TABLE):
            self._fill(row, setting)
        self.table.resizeColumnsToContents()
        self.table.setColumnWidth(1, 300)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.error = QLabel("")
        self.error.setObjectName("reason")
        self.error.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        if self.effective.managed_by:
            managed_note = QLabel(
                "Settings with a padlock are set by your organisation "
                f"({self.effective.managed_by}) and cannot be changed here."
            )
            managed_note.setWordWrap(True)
            layout.addWidget(managed_note)
        layout.addLayout(audio)
        layout.addWidget(self.table)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.resize(820, 560)

    def _device_box(self, names: list[str], current: Any) -> QComboBox:
        box = QComboBox()
        box.addItem(DEFAULT_DEVICE)
        box.addItems(names)
        if current and current not in names:
            box.addItem(f"{current} (not connected)", current)
        index = box.findText(str(current)) if current else 0
        box.setCurrentIndex(max(0, index))
        box.setEnabled(bool(names))
        return box

    def _fill(self, row: int, setting: settings.Setting) -> None:
        key = setting.key
        shown = json.dumps(settings.shown(key, self.effective.values.get(key)))
        self._shown[key] = shown
        locked = self.effective.is_locked(key) or (
            self.effective.locked and key in self.effective.overruled
        )
        name = QTableWidgetItem(key)
        if locked:
            name.setIcon(icons.padlock())
        name.setToolTip(setting.help)
        name.setFlags(Qt.ItemFlag.ItemIsEnabled)
        value = QTableWidgetItem(shown)
        editable = not locked and not setting.secret
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        value.setFlags(flags | Qt.ItemFlag.ItemIsEditable if editable else flags)
        value.setData(Qt.ItemDataRole.UserRole, key)
        value.setToolTip(LOCKED_NOTE if locked else setting.help)
        source = self.effective.sources.get(key, settings.DEFAULT)
        origin = QTableWidgetItem(LOCKED_NOTE if locked else source)
        origin.setFlags(Qt.ItemFlag.ItemIsEnabled)
        self.table.setItem(row, 0, name)
        self.table.setItem(row, 1, value)
        self.table.setItem(row, 2, origin)

    def is_editable(self, key: str) -> bool:
        row = [s.key for s in settings.TABLE].index(key)
        return bool(self._value(row).flags() & Qt.ItemFlag.ItemIsEditable)

    def set_value(self, key: str, text: str) -> None:
        """As if the user typed `text` into the value cell (what tests and keyboard use)."""
        row = [s.key for s in settings.TABLE].index(key)
        item = self._value(row)
        if item.flags() & Qt.ItemFlag.ItemIsEditable:
            item.setText(text)

    def _value(self, row: int) -> QTableWidgetItem:
        item = self.table.item(row, 1)
        assert item is not None  # every row is filled in __init__
        return item

    def edits(self) -> dict[str, Any]:
        """What the user changed: key -> new value (JSON, or a bare word as a string)."""
        changed: dict[str, Any] = {}
        for row in range(self.table.rowCount()):
            item = self._value(row)
            key = str(item.data(Qt.ItemDataRole.UserRole))
            if item.text() != self._shown[key]:
                try:
                    changed[key] = json.loads(item.text())
                except json.JSONDecodeError:
                    changed[key] = item.text()
        for key, box in (
            ("media.input_device", self.microphone),
            ("media.output_device", self.speaker),
        ):
            chosen = box.currentData() or box.currentText()
            value = None if chosen == DEFAULT_DEVICE else chosen
            if value != self.effective.values.get(key):
                changed[key] = value
        return changed

    def save(self) -> None:
        """Apply each edit on its own (the file is only written when it validates); every
        refusal is named."""
        problems = []
        for key, value in self.edits().items():
            try:
                settings.change(self._user_path, managed.open_source(), key, value)
            except settings.SettingRefused as exc:
                problems.append(str(exc))
            except ConfigError as exc:
                problems.append(f"{key}: {exc}")
        if problems:
            self.error.setText("Not saved:\n" + "\n".join(problems))
            return
        self.accept()
