"""One look for every window: calm, legible, with colour reserved for meaning."""

from __future__ import annotations

GREEN = "#1e8e3e"
RED = "#d93025"
AMBER = "#b06000"
BLUE = "#1a73e8"
GREY = "#5f6368"

SHEET = f"""
QWidget {{ font-size: 10pt; }}
QLabel#title {{ font-size: 15pt; font-weight: 600; }}
QLabel#subtle {{ color: {GREY}; }}
QLabel#reason {{ color: {RED}; }}
QLabel#security {{ color: #0d652d; background: #e6f4ea; border-radius: 4px; padding: 6px;
                  font-size: 9pt; }}
QLabel#badge_internal {{ color: white; background: {GREEN}; border-radius: 4px;
                         padding: 3px 8px; }}
QLabel#badge_external {{ color: white; background: {AMBER}; border-radius: 4px;
                         padding: 3px 8px; }}
QLabel#media_silent {{ color: white; background: {RED}; border-radius: 4px; padding: 6px;
                      font-weight: 600; }}
QLabel#check {{ font-weight: 600; }}
QLabel#check_failed {{ font-weight: 700; color: {RED}; }}
QLabel#fix {{ color: {BLUE}; }}
QLineEdit#number {{ font-size: 18pt; padding: 6px; }}
QPushButton {{ padding: 6px 12px; }}
QPushButton#key {{ font-size: 14pt; min-width: 64px; min-height: 44px; }}
QPushButton#call, QPushButton#answer {{ background: {GREEN}; color: white; font-weight: 600;
                                        border-radius: 4px; min-height: 36px; }}
QPushButton#call:disabled {{ background: #c4c7c5; color: #5f6368; }}
QPushButton#hangup, QPushButton#decline {{ background: {RED}; color: white;
                                           font-weight: 600; border-radius: 4px;
                                           min-height: 36px; }}
"""
