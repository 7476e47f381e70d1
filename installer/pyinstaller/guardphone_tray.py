"""Entry point of the frozen `guardphone-tray` app."""

import sys

from ui.app import main

sys.exit(main())
