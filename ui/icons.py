"""The tray icons, drawn at run time (no image files to ship or lose): a shield whose colour
and mark say the state, readable at 16 px and distinct without colour vision."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

# (fill, mark): the mark alone tells the states apart in greyscale.
STYLE = {
    "registered_wireguard": ("#1e8e3e", "check"),
    "registered_sbc": ("#1a73e8", "check"),
    "checking": ("#80868b", "dots"),
    "update_required": ("#e37400", "arrow"),
    "refused": ("#d93025", "cross"),
    "suspended": ("#6b1f1f", "bar"),
}


def shield_path(size: float) -> QPainterPath:
    w, h = size, size
    path = QPainterPath()
    path.moveTo(w * 0.5, h * 0.04)
    path.lineTo(w * 0.9, h * 0.18)
    path.cubicTo(w * 0.9, h * 0.62, w * 0.72, h * 0.84, w * 0.5, h * 0.97)
    path.cubicTo(w * 0.28, h * 0.84, w * 0.1, h * 0.62, w * 0.1, h * 0.18)
    path.closeSubpath()
    return path


def pixmap(kind: str, size: int = 64) -> QPixmap:
    fill, mark = STYLE[kind]
    image = QPixmap(size, size)
    image.fill(Qt.GlobalColor.transparent)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QPen(QColor("#ffffff"), size * 0.04))
    p.setBrush(QColor(fill))
    p.drawPath(shield_path(size))
    pen = QPen(QColor("#ffffff"), size * 0.1)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)
    s = float(size)
    if mark == "check":
        p.drawPolyline(
            [QPointF(s * 0.3, s * 0.5), QPointF(s * 0.45, s * 0.65), QPointF(s * 0.7, s * 0.36)]
        )
    elif mark == "cross":
        p.drawLine(QPointF(s * 0.34, s * 0.34), QPointF(s * 0.66, s * 0.66))
        p.drawLine(QPointF(s * 0.66, s * 0.34), QPointF(s * 0.34, s * 0.66))
    elif mark == "bar":
        p.drawLine(QPointF(s * 0.3, s * 0.5), QPointF(s * 0.7, s * 0.5))
    elif mark == "arrow":
        p.drawLine(QPointF(s * 0.5, s * 0.3), QPointF(s * 0.5, s * 0.66))
        p.drawPolyline(
            [QPointF(s * 0.36, s * 0.44), QPointF(s * 0.5, s * 0.3), QPointF(s * 0.64, s * 0.44)]
        )
    else:  # dots: still checking
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#ffffff"))
        for x in (0.32, 0.5, 0.68):
            p.drawEllipse(QRectF(s * x - s * 0.05, s * 0.45, s * 0.1, s * 0.1))
    p.end()
    return image


def icon(kind: str) -> QIcon:
    result = QIcon()
    for size in (16, 22, 24, 32, 48, 64):
        result.addPixmap(pixmap(kind, size))
    return result


def mark(result: str, size: int = 18) -> QIcon:
    """Pass / fail / unknown marks for the "why" view."""
    kind = {"pass": "registered_wireguard", "fail": "refused"}.get(result, "checking")
    return QIcon(pixmap(kind, size * 2))


def padlock(size: int = 16) -> QIcon:
    """Marks what the organisation set and locked (drawn: fonts often lack the glyph)."""
    image = QPixmap(size * 2, size * 2)
    image.fill(Qt.GlobalColor.transparent)
    s = float(size * 2)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QPen(QColor("#5f6368"), s * 0.1))
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawArc(QRectF(s * 0.3, s * 0.12, s * 0.4, s * 0.5), 0, 180 * 16)
    p.drawLine(QPointF(s * 0.3, s * 0.37), QPointF(s * 0.3, s * 0.45))
    p.drawLine(QPointF(s * 0.7, s * 0.37), QPointF(s * 0.7, s * 0.45))
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor("#5f6368"))
    p.drawRoundedRect(QRectF(s * 0.2, s * 0.45, s * 0.6, s * 0.45), s * 0.06, s * 0.06)
    p.end()
    return QIcon(image)
