"""Following the configuration while the agent runs.

The user's file and the managed configuration are looked at (a stat each) at most once a
second; when either changed, the layers are read and validated again. A configuration that
does not validate is rejected and the one in force stays, and the agent says so; a valid one
is reported key by key as `config.changed` (key, old, new, layer) before it is applied.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import settings
from agent.config import ConfigError
from agent.managed import ManagedSource

POLL_S = 1.0


class ConfigFollower:
    def __init__(
        self,
        user_path: Path,
        source: ManagedSource,
        current: settings.Effective,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._user_path = user_path
        self._source = source
        self.current = current
        self._clock = clock
        self._stamp = self._read_stamp()
        self._looked_at = clock()

    def _read_stamp(self) -> object:
        try:
            st = self._user_path.stat()
            user: object = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            user = None
        return (user, self._source.stamp())

    def poll(self) -> tuple[settings.Effective | None, list[dict[str, Any]]]:
        """(the new configuration if one was accepted, the states to report)."""
        now = self._clock()
        if now - self._looked_at < POLL_S:
            return None, []
        self._looked_at = now
        stamp = self._read_stamp()
        if stamp == self._stamp:
            return None, []
        self._stamp = stamp
        try:
            new = settings.load(self._user_path, self._source)
        except ConfigError as exc:
            return None, [
                {
                    "state": "config_rejected",
                    "code": "config_invalid",
                    "reason": f"{exc} — the configuration in force stays until this is fixed.",
                }
            ]
        changed = settings.changes(self.current, new)
        if not changed:
            return None, []
        self.current = new
        return new, [{"state": "config.changed", **change} for change in changed]
