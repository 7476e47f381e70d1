"""What every keychain backend guardphone uses must do (run against the real Secret Service
in integration tests and against the in-memory fake in unit tests)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from agent import keystore


class KeystoreContract:
    """Subclasses provide a `store` fixture."""

    @pytest.fixture
    def service(self) -> str:
        return f"guardphone-contract-{uuid.uuid4().hex[:8]}"

    def test_missing_entry_is_none(self, store: Any, service: str) -> None:
        assert store.get(service, "nobody/device-key") is None

    def test_round_trip_is_byte_identical(self, store: Any, service: str) -> None:
        pem = "-----BEGIN TEST-----\n" + "QUJD" * 900 + "\n-----END TEST-----\n"  # ~3.6 KB
        store.set(service, "a@b/device-key", pem)
        try:
            assert store.get(service, "a@b/device-key") == pem
        finally:
            store.delete(service, "a@b/device-key")

    def test_overwrite_keeps_one_value(self, store: Any, service: str) -> None:
        store.set(service, "a@b/sip-password", "one")
        store.set(service, "a@b/sip-password", "two")
        try:
            assert store.get(service, "a@b/sip-password") == "two"
        finally:
            store.delete(service, "a@b/sip-password")

    def test_delete_is_idempotent(self, store: Any, service: str) -> None:
        store.set(service, "a@b/device-cert", "x")
        store.delete(service, "a@b/device-cert")
        store.delete(service, "a@b/device-cert")
        assert store.get(service, "a@b/device-cert") is None

    def test_services_and_accounts_are_separate(self, store: Any, service: str) -> None:
        store.set(service, "a@b/sip-password", "alice")
        store.set(service + "-other", "a@b/sip-password", "other")
        try:
            assert store.get(service, "a@b/sip-password") == "alice"
            assert store.get(service, "c@d/sip-password") is None
        finally:
            store.delete(service, "a@b/sip-password")
            store.delete(service + "-other", "a@b/sip-password")

    def test_credentials_helpers(self, store: Any, service: str) -> None:
        creds = keystore.Credentials("KEY", "CERT", "PW")
        keystore.save_credentials(store, service, "a@b", creds)
        assert keystore.load_credentials(store, service, "a@b") == creds
        keystore.delete_credentials(store, service, "a@b")
        with pytest.raises(keystore.MissingCredential):
            keystore.load_credentials(store, service, "a@b")

    def test_entries_deleted_behind_our_back_are_a_clear_refusal(
        self, store: Any, service: str
    ) -> None:
        keystore.save_credentials(store, service, "a@b", keystore.Credentials("K", "C", "P"))
        store.delete(service, "a@b/device-key")  # someone cleaned the keychain
        with pytest.raises(keystore.MissingCredential, match="no device key for a@b"):
            keystore.load_credentials(store, service, "a@b")
        keystore.delete_credentials(store, service, "a@b")

    def test_several_at_once_read_what_one_at_a_time_reads(self, store: Any, service: str) -> None:
        pem = "-----BEGIN TEST-----\n" + "QUJD" * 900 + "\n-----END TEST-----\n"
        store.set(service, "a@b/device-key", pem)
        store.set(service, "a@b/sip-password", "pw ü")
        store.set(service + "-other", "a@b/device-cert", "not this service's")
        try:
            got = store.get_many(service, ["a@b/device-key", "a@b/device-cert", "a@b/sip-password"])
            assert got == {
                "a@b/device-key": pem,
                "a@b/device-cert": None,
                "a@b/sip-password": "pw ü",
            }
            assert got["a@b/device-key"] == store.get(service, "a@b/device-key")
        finally:
            store.delete(service, "a@b/device-key")
            store.delete(service, "a@b/sip-password")
            store.delete(service + "-other", "a@b/device-cert")
