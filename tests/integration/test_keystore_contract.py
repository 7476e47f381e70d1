"""The keystore contract against the real Secret Service (gnome-keyring)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.keystore_contract import KeystoreContract

pytestmark = [pytest.mark.keychain]


class TestSecretServiceContract(KeystoreContract):
    @pytest.fixture
    def store(self, store: Any) -> Any:  # the session's real OsKeychain (conftest)
        assert store.backend_name == "keyring.backends.SecretService.Keyring"
        return store
