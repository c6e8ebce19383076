"""The tray's icons, drawn at run time: one shape and colour per state.

Up to date: a green disc with a tick. Backing up: a blue ring that fills with
the percent done around an upward arrow. Paused: an amber disc with two bars.
Needs attention: a red triangle with an exclamation mark. Not running: a grey
hollow circle with a slash.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

from ui.summary import TrayState

SIZE = 64
GREEN, BLUE, AMBER = QColor("#2e9d4a"), QColor("#2f6fd6"), QColor("#e0a100")
RED, GREY, WHITE = QColor("#d0342c"), QColor("#8a8f98"), QColor("#ffffff")


def icon(state: TrayState, percent: int | None = None) -> QIcon:
    """The icon for ``state`` (``percent`` fills the backing-up ring)."""
    return QIcon(pixmap(state, percent))


def pixmap(state: TrayState, percent: int | None = None) -> QPixmap:
    image = QPixmap(SIZE, SIZE)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    try:
        _DRAW[state](painter, percent)
    finally:
        painter.end()
    return image


def _disc(p: QPainter, colour: QColor) -> None:
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QBrush(colour))
    p.drawEllipse(QRectF(4, 4, 56, 56))


def _stroke(p: QPainter, colour: QColor, width: float) -> None:
    pen = QPen(colour, width)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)


def _up_to_date(p: QPainter, _percent: int | None) -> None:
    _disc(p, GREEN)
    _stroke(p, WHITE, 7)
    p.drawPolyline([QPointF(18, 33), QPointF(28, 43), QPointF(46, 22)])


def _backing_up(p: QPainter, percent: int | None) -> None:
    ring = QRectF(7, 7, 50, 50)
    _stroke(p, BLUE.lighter(170), 8)
    p.drawEllipse(ring)
    _stroke(p, BLUE, 8)
    done = 100 if percent is None else max(4, percent)  # unknown totals: a full ring
    p.drawArc(ring, 90 * 16, -round(done * 360 / 100) * 16)
    _stroke(p, BLUE, 6)
    p.drawLine(QPointF(32, 46), QPointF(32, 19))
    p.drawPolyline([QPointF(22, 29), QPointF(32, 19), QPointF(42, 29)])


def _paused(p: QPainter, _percent: int | None) -> None:
    _disc(p, AMBER)
    p.setBrush(QBrush(WHITE))
    p.drawRoundedRect(QRectF(21, 18, 8, 28), 2, 2)
    p.drawRoundedRect(QRectF(35, 18, 8, 28), 2, 2)


def _attention(p: QPainter, _percent: int | None) -> None:
    triangle = QPainterPath(QPointF(32, 5))
    triangle.lineTo(QPointF(60, 57))
    triangle.lineTo(QPointF(4, 57))
    triangle.closeSubpath()
    p.setPen(Qt.PenStyle.NoPen)
    p.fillPath(triangle, QBrush(RED))
    _stroke(p, WHITE, 7)
    p.drawLine(QPointF(32, 22), QPointF(32, 38))
    p.drawPoint(QPointF(32, 48))


def _not_running(p: QPainter, _percent: int | None) -> None:
    _stroke(p, GREY, 7)
    p.drawEllipse(QRectF(7, 7, 50, 50))
    p.drawLine(QPointF(15, 49), QPointF(49, 15))


_DRAW = {TrayState.UP_TO_DATE: _up_to_date, TrayState.BACKING_UP: _backing_up,
         TrayState.PAUSED: _paused, TrayState.ATTENTION: _attention,
         TrayState.NOT_RUNNING: _not_running}
