"""Talking to the portal as an enrolled device: every request signed with the device key
(which stays in the keychain and memory), the portal's key pinned, and what the portal signs
(policies, commands) checked against the policy key received at enrollment.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent import credentials, schemas


def signed_headers(
    key_pem: str, device_id: str, method: str, path: str, body: bytes
) -> dict[str, str]:
    """The headers that authenticate one request as this device (agent.schemas)."""
    when = dt.datetime.now(dt.UTC).isoformat()
    nonce = secrets.token_hex(16)
    data = schemas.signed_request_bytes(method, path, when, nonce, body)
    return {
        schemas.H_DEVICE: device_id,
        schemas.H_TIME: when,
        schemas.H_NONCE: nonce,
        schemas.H_SIGNATURE: credentials.sign(key_pem, data),
        "Content-Type": "application/json",
    }


def signed_by_portal(policy_key_pem: str, document: Any, signature: str) -> bool:
    """Whether the portal's policy key signed `document` (a policy or a command)."""
    key = serialization.load_pem_public_key(policy_key_pem.encode())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    try:
        key.verify(
            base64.b64decode(signature, validate=True),
            schemas.canonical(document),
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, ValueError):
        return False
    return True


class PolicyRefused(ValueError):
    """A policy that must not replace the one in force; the message says why."""


@dataclass
class PolicyKeeper:
    """The policy in force: only a correctly signed, newer version replaces it."""

    policy_key_pem: str
    current: schemas.Policy | None = None

    def offer(self, answer: dict[str, Any]) -> schemas.Policy:
        signed = schemas.SignedPolicy.model_validate(answer)
        if not signed_by_portal(self.policy_key_pem, signed.policy.model_dump(), signed.signature):
            raise PolicyRefused("the policy is not signed by the portal's key: kept the last one")
        if self.current is not None and signed.policy.version < self.current.version:
            raise PolicyRefused(
                f"policy version {signed.policy.version} is older than the one in force "
                f"({self.current.version}): kept it"
            )
        self.current = signed.policy
        return signed.policy


def body_of(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()
