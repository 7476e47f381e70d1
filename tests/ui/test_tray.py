"""Each core state drives the right icon, tooltip and enabled actions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import QSystemTrayIcon

from tests.ui.conftest import save
from ui import icons
from ui.status import STARTING
from ui.tray import Tray

STATES: list[tuple[dict[str, Any], str, str, bool]] = [
    (
        {"state": "registered", "path": "wireguard", "account": "alice@x"},
        "registered_wireguard",
        "Ready to call over the office tunnel",
        True,
    ),
    (
        {"state": "registered", "path": "sbc_mtls", "account": "alice@x"},
        "registered_sbc",
        "Ready to call over the company SBC (mutual TLS)",
        True,
    ),
    ({"state": "connecting", "path": "wireguard"}, "checking", "Checking the connection", False),
    (
        {
            "state": "refused",
            "code": "tunnel_down",
            "reason": "The office tunnel wg-office is down: connect to it.",
        },
        "refused",
        "Calls paused\nThe office tunnel wg-office is down",
        False,
    ),
    (
        {"state": "fraud_suspended", "rule": "type:premium_rate"},
        "suspended",
        "Suspended for suspected fraud",
        False,
    ),
    (
        {"state": "refused", "code": "update_required", "reason": "Update guardphone to 1.2."},
        "update_required",
        "Update required\nUpdate guardphone to 1.2.",
        False,
    ),
]


@pytest.fixture
def make_tray(qapp: Any) -> Iterator[Callable[[bool], Tray]]:
    made: list[Tray] = []

    def make(allow_quit: bool = True) -> Tray:
        made.append(Tray(allow_quit))
        return made[-1]

    yield make
    for tray in made:
        tray.icon.hide()
        tray.menu.deleteLater()
        tray.deleteLater()
    qapp.processEvents()


def fill_colour(tray: Tray) -> QColor:
    image = tray.icon.icon().pixmap(64, 64).toImage()
    return image.pixelColor(int(image.width() * 0.2), int(image.height() * 0.3))  # off the mark


@pytest.mark.parametrize(("state", "kind", "words", "can_call"), STATES)
def test_each_state_drives_icon_tooltip_and_actions(
    make_tray: Any, state: dict[str, Any], kind: str, words: str, can_call: bool
) -> None:
    assert QSystemTrayIcon.isSystemTrayAvailable()  # trayer is the tray host
    tray = make_tray()
    start = tray.icon.icon().cacheKey()
    tray.on_state({"state": "registered", "path": "sbc_mtls"} if kind == "checking" else {})
    tray.on_state(state)
    assert tray.status.kind == kind
    assert words in tray.icon.toolTip() and tray.icon.toolTip().startswith("guardphone: ")
    assert tray.call_action.isEnabled() is can_call
    assert tray.why_action.isEnabled()
    assert tray.why_action.text() == ("Connection details" if can_call else "Why can't I call?")
    # The icon really changed, to this state's colour.
    assert tray.icon.icon().cacheKey() != start or kind == STARTING.kind
    assert fill_colour(tray).name() == QColor(icons.STYLE[kind][0]).name()


def test_suspension_is_not_hidden_by_a_later_check(make_tray: Any) -> None:
    tray = make_tray()
    tray.on_state({"state": "fraud_suspended"})
    tray.on_state({"state": "checking"})
    tray.on_state({"state": "unregistered", "code": "fraud_suspended"})
    assert tray.status.kind == "suspended" and not tray.call_action.isEnabled()


def test_quit_is_hidden_when_policy_forbids_it(make_tray: Any) -> None:
    allowed, forbidden = make_tray(True), make_tray(False)
    assert allowed.quit_action.isVisible() and not forbidden.quit_action.isVisible()


def test_screenshot_of_the_tray_and_its_menu(qtbot: Any, make_tray: Any, screenshots: Path) -> None:
    tray = make_tray()
    tray.on_state({"state": "registered", "path": "wireguard"})
    qtbot.waitUntil(lambda: tray.icon.geometry().width() > 0, timeout=5000)
    tray.set_recent([("\N{RIGHTWARDS ARROW} bob@lab.guardphone.test   26 Nov 16:40", "sip:bob@x")])
    # The menu as it opens under the tray (top right, where trayer sits).
    screen = QGuiApplication.primaryScreen()
    width = screen.geometry().width()
    tray.menu.popup(QPoint(width - tray.menu.sizeHint().width() - 4, 36))
    qtbot.waitUntil(tray.menu.isVisible, timeout=5000)
    qtbot.wait(200)  # the menu finished painting
    path = screenshots / "tray.png"
    area = QRect(width - 420, 0, 420, 36 + tray.menu.sizeHint().height() + 8)
    assert screen.grabWindow(0).copy(area).save(str(path))
    save(tray.menu, "tray-menu", screenshots)
    tray.menu.hide()


def test_about_names_pjsip_and_its_openssl(qapp: Any) -> None:
    from agent.phone import Pjsua2Engine
    from ui.app import about_text

    versions = Pjsua2Engine().versions()  # before start: the version the wheel bundles
    text = about_text(versions)
    assert "pjsip 2.15" in text and "OpenSSL 1.0.2" in text and "Qt 6." in text


def test_why_view_offers_connect_only_where_policy_lets_the_agent_connect(qapp: Any) -> None:
    from agent.why import FAIL, PASS, Check
    from ui.whyview import WhyView

    down = [
        Check("Device certificate", PASS, "Valid."),
        Check("Office tunnel connected", FAIL, "wg-office is down.", "Connect…"),
    ]
    allowed, forbidden = WhyView(may_connect=True), WhyView(may_connect=False)
    for view in (allowed, forbidden):
        view.set_checks(down)
        view.show()
    assert allowed.connect_button.isVisible() and not forbidden.connect_button.isVisible()
    assert allowed.failing() == ["Office tunnel connected"]
    allowed.set_checks([Check("Office tunnel connected", PASS, "wg-office is up.")])
    assert not allowed.connect_button.isVisible() and allowed.failing() == []
    for view in (allowed, forbidden):
        view.close()
