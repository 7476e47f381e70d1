"""Where MDM puts the managed configuration, one reader per OS behind one interface.

- Linux: /etc/guardphone/managed.json (JSON), which must belong to root and be writable by
  nobody else, or it is refused: a file a user can edit is no managed configuration.
- macOS: the managed-preferences plist MDM writes under /Library/Managed Preferences/.
- Windows: the policy registry key HKLM\\Software\\Policies\\guardphone (sections as
  subkeys, lists as REG_MULTI_SZ); read through a small registry interface so it is tested
  here on recorded values.
Each reader returns the same nested document as the JSON file, or None when the device is
not managed. Anything unreadable raises ConfigError naming the place.
"""

from __future__ import annotations

import importlib
import json
import os
import plistlib
import stat
import sys
from pathlib import Path
from typing import Any, Protocol

from agent.config import ConfigError

LINUX_PATH = Path("/etc/guardphone/managed.json")
MAC_PATH = Path("/Library/Managed Preferences/com.guardphone.agent.plist")
WINDOWS_KEY = r"Software\Policies\guardphone"
OVERRIDE_ENV = "GUARDPHONE_MANAGED_CONFIG"  # another path; the same ownership rules apply


class ManagedSource(Protocol):
    location: str

    def read(self) -> dict[str, Any] | None: ...

    def stamp(self) -> object:
        """Something that changes when the managed configuration may have changed."""
        ...


class FileSource:
    """A managed JSON file (Linux) or plist (macOS); must be root's and not writable by others."""

    def __init__(self, path: Path, kind: str = "json", require_root: bool = True) -> None:
        self.path = path
        self.location = str(path)
        self._kind = kind
        self._require_root = require_root

    def stamp(self) -> object:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def read(self) -> dict[str, Any] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        if self._require_root and (st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
            raise ConfigError(
                f"{self.path}: a managed configuration must belong to root and be writable by "
                "no one else; this one is not, so it is not trusted."
            )
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read ({exc.strerror})") from None
        try:
            doc = plistlib.loads(data) if self._kind == "plist" else json.loads(data)
            if self._kind == "plist" and isinstance(doc, dict):
                # A configuration profile's own bookkeeping, not settings.
                doc = {k: v for k, v in doc.items() if not str(k).startswith("Payload")}
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{self.path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
        except (plistlib.InvalidFileException, ValueError) as exc:
            raise ConfigError(f"{self.path}: not a valid property list ({exc})") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{self.path}: the managed configuration must be an object")
        plain: dict[str, Any] = _plain(doc)
        return plain


class Registry(Protocol):
    """The two registry reads the Windows source needs (winreg, or recorded values)."""

    def values(self, key: str) -> dict[str, Any] | None: ...

    def subkeys(self, key: str) -> list[str]: ...


class RegistrySource:
    def __init__(self, registry: Registry, key: str = WINDOWS_KEY) -> None:
        self._registry = registry
        self._key = key
        self.location = "HKLM\\" + key

    def stamp(self) -> object:
        return json.dumps(self.read_quietly(), sort_keys=True, default=str)

    def read_quietly(self) -> dict[str, Any] | None:
        try:
            return self.read()
        except ConfigError:
            return {"unreadable": True}

    def read(self) -> dict[str, Any] | None:
        top = self._registry.values(self._key)
        if top is None:
            return None
        return self._section(self._key, top)

    def _section(self, key: str, values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for name, value in values.items():
            doc[name] = registry_value(prefix + name, value)
        for sub in self._registry.subkeys(key):
            child = self._registry.values(f"{key}\\{sub}") or {}
            doc[sub] = self._section(f"{key}\\{sub}", child, f"{prefix}{sub}.")
        return doc


def registry_value(dotted: str, value: Any) -> Any:
    """A registry value as the setting it holds: REG_DWORD 0/1 for booleans, REG_SZ for
    decimals and JSON objects, REG_MULTI_SZ for lists (the ADMX templates write these)."""
    from agent.settings import BY_KEY

    kind = "bool" if dotted == "locked" else (BY_KEY[dotted].kind if dotted in BY_KEY else "")
    try:
        if kind == "bool" and isinstance(value, int):
            return bool(value)
        if kind == "float" and isinstance(value, str | int):
            return float(value)
        if kind == "pair" and isinstance(value, list):
            return [int(v) for v in value]
        if kind == "objects" and isinstance(value, str):
            return json.loads(value)
    except ValueError as exc:
        raise ConfigError(f"registry value {dotted}: {exc}") from None
    return value


class WinReg:
    """The real registry (Windows only; imported lazily)."""

    def values(self, key: str) -> dict[str, Any] | None:  # pragma: no cover - Windows
        winreg: Any = importlib.import_module("winreg")
        try:
            handle = winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key)
        except OSError:
            return None
        found: dict[str, Any] = {}
        index = 0
        with handle:
            while True:
                try:
                    name, value, _kind = winreg.EnumValue(handle, index)
                except OSError:
                    return found
                found[name] = value
                index += 1

    def subkeys(self, key: str) -> list[str]:  # pragma: no cover - Windows
        winreg: Any = importlib.import_module("winreg")
        names, index = [], 0
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key) as handle:
            while True:
                try:
                    names.append(winreg.EnumKey(handle, index))
                except OSError:
                    return names
                index += 1


class NoSource:
    """An OS we do not know: not managed."""

    location = "(none)"

    def read(self) -> dict[str, Any] | None:
        return None

    def stamp(self) -> object:
        return None


class RefusedSource:
    """A managed configuration that cannot be trusted: every read says why."""

    def __init__(self, location: str, message: str) -> None:
        self.location = location
        self._message = message

    def read(self) -> dict[str, Any] | None:
        raise ConfigError(self._message)

    def stamp(self) -> object:
        return None


def open_source(platform: str = sys.platform) -> ManagedSource:
    default = _platform_source(platform)
    override = os.environ.get(OVERRIDE_ENV)
    if not override:
        return default
    if default.stamp() is not None:
        # The device is managed: an environment variable must not swap the organisation's
        # configuration for another one (or for none at all).
        return RefusedSource(
            default.location,
            f"{OVERRIDE_ENV} is set, but this device is managed ({default.location}): "
            "the organisation's configuration cannot be replaced.",
        )
    return FileSource(Path(override), "plist" if override.endswith(".plist") else "json")


def _platform_source(platform: str) -> ManagedSource:
    if platform.startswith("linux"):
        return FileSource(LINUX_PATH)
    if platform == "darwin":
        return FileSource(MAC_PATH, "plist")
    if platform == "win32":
        return RegistrySource(WinReg())
    return NoSource()


def _plain(node: Any) -> Any:
    """plists carry tuples/bytes/dates we do not use: keep JSON-like types only."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_plain(v) for v in node]
    return node
