from __future__ import annotations

import sys
from typing import Any

import keyring
import keyring.backends.fail
import keyring.errors
import pytest

from agent import keystore
from tests.unit.fakes import MemoryKeychain

CREDS = keystore.Credentials("KEY-PEM", "CERT-PEM", "s3cret-pw")


def test_round_trip_and_entry_names() -> None:
    store = MemoryKeychain()
    keystore.save_credentials(store, "guardphone", "alice@example.com", CREDS)
    assert set(store.items) == {
        ("guardphone", "alice@example.com/device-key"),
        ("guardphone", "alice@example.com/device-cert"),
        ("guardphone", "alice@example.com/sip-password"),
    }
    assert keystore.load_credentials(store, "guardphone", "alice@example.com") == CREDS
    keystore.delete_credentials(store, "guardphone", "alice@example.com")
    assert store.items == {}


def test_missing_entry_names_it_and_the_fix() -> None:
    store = MemoryKeychain()
    keystore.save_credentials(store, "guardphone", "a@b", CREDS)
    store.delete("guardphone", "a@b/device-cert")
    with pytest.raises(keystore.MissingCredential) as err:
        keystore.load_credentials(store, "guardphone", "a@b")
    assert err.value.entry == "device-cert"
    assert "no device cert for a@b" in str(err.value)
    assert "guardphone credentials import" in str(err.value)


def test_repr_never_shows_secrets() -> None:
    assert "s3cret" not in repr(CREDS)
    assert "KEY-PEM" not in repr(CREDS)


class PlaintextKeyring:
    """Stands in for keyrings.alt's plaintext file backend. Deliberately not a subclass of
    KeyringBackend: keyring would register it for every later test in this process."""

    def get_password(self, service: str, username: str) -> str | None:
        return None

    def set_password(self, service: str, username: str, password: str) -> None: ...

    def delete_password(self, service: str, username: str) -> None: ...


@pytest.mark.parametrize(
    "backend",
    [keyring.backends.fail.Keyring(), PlaintextKeyring()],
    ids=["no-keychain", "plaintext"],
)
def test_untrusted_backends_are_refused(monkeypatch: pytest.MonkeyPatch, backend: Any) -> None:
    monkeypatch.setattr(keystore, "os_backend", lambda: backend)
    with pytest.raises(keystore.KeychainError, match="No keychain is available"):
        keystore.OsKeychain()


def test_chain_with_one_untrusted_backend_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class Chain:  # keyring's ChainerBackend exposes the chained backends as `.backends`
        backends = (keyring.backends.fail.Keyring(), PlaintextKeyring())

    monkeypatch.setattr(keystore, "os_backend", Chain)
    with pytest.raises(keystore.KeychainError):
        keystore.OsKeychain()


class LockedKeyring(PlaintextKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("locked")


def test_locked_keychain_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keystore, "os_backend", LockedKeyring)
    monkeypatch.setattr(keystore, "TRUSTED_BACKENDS", frozenset({f"{__name__}.LockedKeyring"}))
    store = keystore.OsKeychain()
    with pytest.raises(keystore.KeychainError, match="The keychain is locked"):
        store.get("guardphone", "a@b/device-key")


from tests.keystore_contract import KeystoreContract  # noqa: E402


class TestMemoryKeychainContract(KeystoreContract):
    @pytest.fixture
    def store(self) -> MemoryKeychain:
        return MemoryKeychain()


class _Unavailable(PlaintextKeyring):
    @classmethod  # keyring's priority raises when the backend cannot run here
    @property
    def priority(cls) -> float:
        raise RuntimeError("no session bus")


class _Low(PlaintextKeyring):
    priority = 1.0


class _High(PlaintextKeyring):
    priority = 5.0


def test_the_viable_trusted_backend_with_the_highest_priority_is_chosen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.setattr(keyring.core, "load_config", lambda: None)
    names = {f"{__name__}.{c.__name__}" for c in (_Unavailable, _Low, _High)}
    monkeypatch.setattr(keystore, "TRUSTED_BACKENDS", frozenset(names | {"no.such.Backend"}))
    assert type(keystore.os_backend()) is _High
    monkeypatch.setattr(keystore, "TRUSTED_BACKENDS", frozenset({f"{__name__}._Unavailable"}))
    assert isinstance(keystore.os_backend(), keyring.backends.fail.Keyring)


def test_a_backend_the_user_names_is_used_and_still_judged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    assert type(keystore.os_backend()).__module__ == "keyring.backends.null"
    with pytest.raises(keystore.KeychainError, match="No keychain is available"):
        keystore.OsKeychain()


def test_a_named_backend_that_cannot_be_loaded_is_no_keychain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "no.such.Backend")
    with pytest.raises(keystore.KeychainError, match="No keychain is available"):
        keystore.OsKeychain()


def test_another_os_keychain_is_not_even_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    """keyring's macOS module costs ~35 ms of every start on Linux for nothing."""
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.setattr(keyring.core, "load_config", lambda: None)
    monkeypatch.setattr(sys, "platform", "linux")
    for module in ("keyring.backends.macOS", "keyring.backends.Windows"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    keystore.os_backend()
    assert "keyring.backends.macOS" not in sys.modules
    assert "keyring.backends.Windows" not in sys.modules
