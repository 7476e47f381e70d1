"""The desktop app (PySide6) over the core in agent/ and tunnel/.

PySide6 reads the whole source of every module imported after it (its `__feature__` hook
searches each for the word "PySide6") and linecache keeps those lines for the life of the
process: ~9 MiB resident when the core came after Qt. So the core and its libraries are
imported here, before any ui module imports Qt.
"""

import agent.phone  # pjsua2
import agent.service  # the gate, the supervisor
import agent.session  # the event log, the fraud guard, the portal link
import agent.why  # noqa: F401
import tunnel.wireguard  # noqa: F401
