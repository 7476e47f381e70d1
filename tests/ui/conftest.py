"""The tray app's tests run on a real X display with a real tray host (Xvfb + trayer), with
the real lab SBC and Secret Service where they place or take calls."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import Desktop

SCREENSHOTS = Path(os.environ.get("GUARDPHONE_SCREENSHOTS", "build/screenshots"))


@pytest.fixture(scope="session")
def desktop() -> Iterator[Desktop]:
    screen = Desktop()
    patch = pytest.MonkeyPatch()
    patch.setenv("DISPLAY", screen.display)
    patch.setenv("QT_QPA_PLATFORM", "xcb")
    yield screen
    patch.undo()
    screen.stop()


@pytest.fixture(scope="session")
def qapp(desktop: Desktop) -> Iterator[Any]:
    """pytest-qt's application, created only once the display exists."""
    from PySide6.QtWidgets import QApplication

    from ui import style

    app = QApplication.instance() or QApplication(["guardphone-tests"])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    app.setStyleSheet(style.SHEET)
    yield app


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def save(widget: Any, name: str, folder: Path) -> Path:
    """A picture of a window as the user sees it."""
    from PySide6.QtWidgets import QApplication

    QApplication.processEvents()
    path = folder / f"{name}.png"
    assert widget.grab().save(str(path)), f"could not write {path}"
    return path
