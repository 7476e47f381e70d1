"""The Qt binding must not leak references to None. PySide6 6.12.0 under Python 3.11 drops
one on every call that returns nothing: a tray app doing a few calls a second aborts
("none_dealloc") after some hours. This pins us to a binding without that bug."""

from __future__ import annotations

import sys
from typing import Any

from PySide6.QtGui import QColor, QPainter, QPen, QPixmap


def test_void_calls_keep_none_alive(qapp: Any) -> None:
    image = QPixmap(8, 8)
    painter = QPainter(image)
    before = sys.getrefcount(None)
    for _ in range(2000):
        painter.setPen(QPen(QColor("#ffffff"), 1))
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    after = sys.getrefcount(None)
    painter.end()
    assert after >= before - 10, f"None lost {before - after} references in 4000 calls"
