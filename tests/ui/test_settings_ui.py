"""Settings in the tray app: what the organisation set and locked is shown as such and cannot
be changed from the UI; the user's own settings save once the whole configuration validates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from agent import managed, settings
from tests.ui.conftest import save
from tests.unit.test_settings import USER
from ui.settingsdialog import LOCKED_NOTE, SettingsDialog


@pytest.fixture
def managed_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    user, managed_path = tmp_path / "user.json", tmp_path / "managed.json"
    user.write_text(json.dumps(USER))
    managed_path.write_text(json.dumps({"locked": True, "sbc": {"port": 5062}}))
    monkeypatch.setattr(
        managed, "open_source", lambda: managed.FileSource(managed_path, require_root=False)
    )
    return user, managed_path


def row_of(key: str) -> int:
    return [s.key for s in settings.TABLE].index(key)


def test_locked_settings_cannot_be_changed_from_the_ui(
    qtbot: Any, managed_device: tuple[Path, Path], screenshots: Path
) -> None:
    user, _ = managed_device
    before = user.read_text()
    dialog = SettingsDialog(user, devices=[])
    qtbot.addWidget(dialog)
    dialog.show()
    row = row_of("sbc.port")
    assert not dialog.is_editable("sbc.port")
    assert not dialog.table.item(row, 0).icon().isNull()  # the padlock
    assert dialog.table.item(row_of("sbc.host"), 0).icon().isNull()
    assert dialog.table.item(row, 2).text() == LOCKED_NOTE
    dialog.set_value("sbc.port", "5099")  # typing into it does nothing
    assert dialog.table.item(row, 1).text() == "5062"
    save(dialog, "settings-locked", screenshots)
    # Even a value forced into the cell is refused on save, and the file stays as it was.
    dialog.table.item(row, 1).setText("5099")
    dialog.save()
    assert "sbc.port is set by your organisation" in dialog.error.text()
    assert user.read_text() == before and dialog.isVisible()


def test_an_unlocked_setting_saves_and_a_bad_value_is_named(
    qtbot: Any, managed_device: tuple[Path, Path]
) -> None:
    user, _ = managed_device
    dialog = SettingsDialog(user, devices=[])
    qtbot.addWidget(dialog)
    assert dialog.is_editable("media.audio")
    dialog.set_value("media.audio", "loud")
    dialog.save()
    assert "media.audio" in dialog.error.text() and dialog.result() == 0
    assert "loud" not in user.read_text()
    dialog.set_value("media.audio", "none")
    with qtbot.waitSignal(dialog.accepted, timeout=1000):
        dialog.save()
    assert json.loads(user.read_text())["media"]["audio"] == "none"
    assert not dialog.microphone.isEnabled()  # no sound device here: nothing to choose
    assert (
        Qt.ItemFlag.ItemIsEditable
        not in dialog.table.item(row_of("portal.enrollment_token"), 1).flags()
    )
