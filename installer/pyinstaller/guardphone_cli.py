"""Entry point of the frozen `guardphone` command."""

import sys

from agent.cli import main

sys.exit(main())
