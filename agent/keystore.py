"""Credentials in the OS keychain, and nowhere else.

The device key, its certificate chain and the SIP password are read from the keychain into
memory when the agent starts and handed to pjsua2 as buffers. There is no plaintext fallback:
if the keychain is missing, locked or an insecure backend, the agent refuses to start.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

DEVICE_KEY = "device-key"
DEVICE_CERT = "device-cert"
SIP_PASSWORD = "sip-password"  # noqa: S105 - an entry name, not a password
ENTRIES = (DEVICE_KEY, DEVICE_CERT, SIP_PASSWORD)

# Backends that keep secrets encrypted by the OS. Anything else (a plaintext file backend,
# the "fail" and "null" backends) is refused.
TRUSTED_BACKENDS = frozenset(
    {
        "keyring.backends.SecretService.Keyring",
        "keyring.backends.libsecret.Keyring",
        "keyring.backends.kwallet.DBusKeyring",
        "keyring.backends.macOS.Keyring",
        "keyring.backends.Windows.WinVaultKeyring",
    }
)
# The trusted backends worth trying on each OS: keyring's macOS module alone takes ~35 ms to
# import on Linux (ctypes looks for the Security framework) only to declare itself not viable.
_OWN_OS = {"darwin": "macOS", "win32": "Windows"}


class KeychainError(RuntimeError):
    """The keychain cannot be used; the message is one plain sentence for the user."""


class MissingCredential(KeychainError):
    """An entry the agent needs is not in the keychain."""

    def __init__(self, account: str, entry: str) -> None:
        super().__init__(
            f"The keychain has no {entry.replace('-', ' ')} for {account}: "
            "import your credentials with `guardphone credentials import`."
        )
        self.entry = entry


class SecretStore(Protocol):
    """The few keychain operations the agent uses (an adapter over `keyring`, or a fake)."""

    backend_name: str

    def get(self, service: str, name: str) -> str | None: ...
    def get_many(self, service: str, names: Sequence[str]) -> dict[str, str | None]: ...
    def set(self, service: str, name: str, value: str) -> None: ...
    def delete(self, service: str, name: str) -> None: ...


@dataclass(frozen=True, repr=False)
class Credentials:
    """What the agent needs from the keychain. repr never shows the secrets."""

    key_pem: str
    cert_pem: str
    sip_password: str = field(repr=False)

    def __repr__(self) -> str:
        return "Credentials(<redacted>)"


def entry_name(account: str, entry: str) -> str:
    return f"{account}/{entry}"


def load_credentials(store: SecretStore, service: str, account: str) -> Credentials:
    found = store.get_many(service, [entry_name(account, e) for e in ENTRIES])
    values = {}
    for entry in ENTRIES:
        value = found.get(entry_name(account, entry))
        if not value:
            raise MissingCredential(account, entry)
        values[entry] = value
    return Credentials(values[DEVICE_KEY], values[DEVICE_CERT], values[SIP_PASSWORD])


def save_credentials(store: SecretStore, service: str, account: str, creds: Credentials) -> None:
    store.set(service, entry_name(account, DEVICE_KEY), creds.key_pem)
    store.set(service, entry_name(account, DEVICE_CERT), creds.cert_pem)
    store.set(service, entry_name(account, SIP_PASSWORD), creds.sip_password)
    log.info("stored credentials for %s in %s", account, store.backend_name)


def delete_credentials(store: SecretStore, service: str, account: str) -> None:
    for entry in ENTRIES:
        store.delete(service, entry_name(account, entry))


class OsKeychain:
    """The OS keychain through `keyring`, refusing any backend that is not a real keychain."""

    def __init__(self) -> None:
        import keyring
        import keyring.errors

        self._errors = keyring.errors
        backend = os_backend()
        names = _backend_names(backend)
        if not names or not all(n in TRUSTED_BACKENDS for n in names):
            log.warning("no trusted keychain backend; found %s", names)
            raise KeychainError(
                "No keychain is available (on Linux: the Secret Service of your desktop "
                "session is not running), and guardphone keeps its certificate and password "
                "only there, so it will not start."
            )
        self._keyring = backend
        self.backend_name = names[0]

    def _call(self, what: str, fn: object, *args: str) -> object:
        try:
            return fn(*args)  # type: ignore[operator]
        except self._errors.KeyringLocked:
            raise KeychainError(
                "The keychain is locked: unlock it (log out and in again) and retry."
            ) from None
        except self._errors.InitError:
            raise KeychainError(
                "The keychain could not be opened (it was never unlocked in this session)."
            ) from None
        except self._errors.KeyringError as exc:
            log.warning("keychain %s failed: %s", what, type(exc).__name__)
            raise KeychainError(f"The keychain refused to {what} a credential.") from None

    def get(self, service: str, name: str) -> str | None:
        value = self._call("read", self._keyring.get_password, service, name)
        return value if isinstance(value, str) else None

    def get_many(self, service: str, names: Sequence[str]) -> dict[str, str | None]:
        """Several entries at once: over one Secret Service connection and session.

        keyring opens a D-Bus connection, finds the collection and negotiates an encrypted
        session for every single read (~13 ms each, three at every start); the entries are
        found by keyring's own attributes (service, username), so they stay keyring's.
        """
        collection_of = getattr(self._keyring, "get_preferred_collection", None)
        if collection_of is None:  # not the Secret Service: one read at a time
            return {name: self.get(service, name) for name in names}

        def read_all() -> dict[str, str | None]:
            collection = collection_of()
            values: dict[str, str | None] = {}
            session = None
            with closing(collection.connection):
                for name in names:
                    item = next(
                        iter(collection.search_items({"username": name, "service": service})), None
                    )
                    if item is None:
                        values[name] = None
                        continue
                    self._keyring.unlock(item)
                    item.session = session  # None at first: the item negotiates it
                    values[name] = item.get_secret().decode("utf-8")
                    session = item.session
            return values

        try:
            return self._call("read", read_all)  # type: ignore[return-value]
        except KeychainError:
            raise
        except Exception as exc:  # secretstorage's own errors (D-Bus gone mid-read): closed
            log.warning("keychain read failed: %s", type(exc).__name__)
            raise KeychainError("The keychain refused to read a credential.") from None

    def set(self, service: str, name: str, value: str) -> None:
        self._call("store", self._keyring.set_password, service, name, value)

    def delete(self, service: str, name: str) -> None:
        """Remove an entry; deleting what is not there is fine (idempotent clean-up)."""
        if self.get(service, name) is not None:
            self._call("delete", self._keyring.delete_password, service, name)


def os_backend() -> Any:
    """The keychain backend, chosen the way keyring chooses but only among trusted ones.

    keyring.get_keyring() imports every backend any installed package declares (an
    entry-point scan of the whole Python environment, at every start, its results kept for
    the process's life) only for us to refuse all but the trusted few. So a backend named by
    the user (PYTHON_KEYRING_BACKEND or keyringrc.cfg, judged like any other) is taken as
    keyring would, and otherwise the viable trusted backend with keyring's highest priority.
    """
    import keyring.backends.fail
    import keyring.core

    try:
        named = keyring.core.load_env() or keyring.core.load_config()
    except Exception as exc:  # a backend named that cannot be loaded: no keychain (closed)
        log.warning("the keychain backend named in the environment or keyringrc: %s", exc)
        return keyring.backends.fail.Keyring()  # type: ignore[no-untyped-call]
    if named is not None:
        return named
    viable: list[tuple[float, str, type]] = []
    own = _OWN_OS.get(sys.platform)
    for path in sorted(TRUSTED_BACKENDS):
        module, _, name = path.rpartition(".")
        family = module.rsplit(".", 1)[1]
        if (family in _OWN_OS.values()) and family != own:
            continue  # another OS's keychain
        try:
            cls = getattr(importlib.import_module(module), name)
            viable.append((float(cls.priority), path, cls))
        except Exception as exc:  # not on this OS, or not running: not a candidate
            log.debug("keychain backend %s not viable: %s", path, exc)
    return max(viable)[2]() if viable else keyring.backends.fail.Keyring()  # type: ignore[no-untyped-call]


def _backend_names(backend: object) -> list[str]:
    inner = getattr(backend, "backends", None)
    if inner is not None:  # keyring's ChainerBackend: judge every backend it chains
        return [n for b in inner for n in _backend_names(b)]
    cls = type(backend)
    return [f"{cls.__module__}.{cls.__qualname__}"]
