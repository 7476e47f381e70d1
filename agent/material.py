"""What the SIP engine needs from the keychain and the disk, checked before anything is sent."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

from cryptography import x509

from agent import credentials, keystore
from agent.config import AgentConfig
from agent.gate import Verdict
from agent.reasons import Reason, Refused
from agent.sip import EngineSettings, TlsMaterial


def load(config: AgentConfig, store: keystore.SecretStore) -> TlsMaterial:
    """Credentials from the keychain, checked; the CA from its file. Raises Refused."""
    try:
        creds = keystore.load_credentials(store, config.keychain_service, config.account_id)
    except keystore.MissingCredential as exc:
        text = str(exc)
        if config.portal is not None:
            text = (
                f"This device is not enrolled for {config.account_id} yet: run "
                "`guardphone enroll` with the one-time token from IT."
            )
        raise Refused(Reason("credentials_missing", text)) from None
    except keystore.KeychainError as exc:
        raise Refused(Reason("keychain_unavailable", str(exc))) from None
    try:
        credentials.check_device(creds, config.account.user)
    except credentials.CredentialError as exc:
        raise Refused(Reason("device_cert_invalid", str(exc))) from None
    return TlsMaterial(
        creds.cert_pem, creds.key_pem, read_ca(config.sbc.ca_file), creds.sip_password
    )


def read_ca(path: Path) -> str:
    try:
        pem = path.read_text()
        x509.load_pem_x509_certificates(pem.encode())
    except (OSError, ValueError, UnicodeDecodeError):
        raise Refused(
            Reason("ca_invalid", f"{path}: the SBC's CA certificate file is missing or unreadable.")
        ) from None
    return pem


def engine_settings(cfg: AgentConfig, verdict: Verdict) -> EngineSettings:
    """What pjsua2 is started with on the chosen path."""
    assert verdict.server is not None and verdict.local_address is not None
    return EngineSettings(
        user=cfg.account.user,
        domain=cfg.account.domain,
        display_name=cfg.account.display_name,
        sbc_host=verdict.server[0],
        sbc_port=verdict.server[1],
        bind_address=verdict.local_address,
        qos=cfg.media.qos,
        null_audio=cfg.media.audio == "none",
        input_device=cfg.media.input_device,
        output_device=cfg.media.output_device,
        bind_ifindex=socket.if_nametoindex(verdict.interface) if verdict.interface else None,
        instance_id=instance_id(cfg.account_id),
    )


def instance_id(account_id: str, machine_id_file: Path = Path("/etc/machine-id")) -> str:
    """A stable urn:uuid for this account on this machine (RFC 5626 +sip.instance).

    Without it every re-registration after a lost path left the previous binding at the SBC
    until it expired: after 12 flaps within the registration lifetime Kamailio had more
    contacts than branches and calls to the person stopped arriving (found by bench/
    fail_closed.py). Derived, not stored: /etc/machine-id (or the MAC address where there
    is none) with the account, hashed, so it names no hardware."""
    try:
        machine = machine_id_file.read_text().strip()
    except OSError:
        machine = ""
    seed = f"guardphone:{account_id}:{machine or uuid.getnode()}"
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, seed)}>"
