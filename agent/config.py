"""The agent's configuration file: one JSON object, validated strictly, frozen once loaded.

There are no secrets in it: the device key, certificate and SIP password live in the
keychain under the account named here. Unknown keys are errors, not silently ignored, so a
typo in a security setting cannot leave the agent running with a default.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEMA_ID = "https://guardphone.example/schemas/agent-config.schema.json"


class ConfigError(ValueError):
    """The configuration is unusable; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


SipToken = Annotated[str, Field(pattern=r"^[A-Za-z0-9._~-]{1,64}$")]
HostName = Annotated[str, Field(pattern=r"^[A-Za-z0-9.:-]{1,253}$")]


class Account(_Strict):
    """Who the device registers as."""

    user: SipToken = Field(description="SIP user; must equal the CN of the device certificate.")
    domain: HostName = Field(description="SIP domain (digest realm) of the company registrar.")
    display_name: str = Field(default="", max_length=64, description="Name shown to callees.")


class Sbc(_Strict):
    """The company's hosted SBC, reached over mutual TLS."""

    host: HostName = Field(
        description="Address or name the TLS connection goes to; the SBC certificate must name it."
    )
    port: int = Field(default=5061, ge=1, le=65535, description="TLS port of the SBC.")
    ca_file: Path = Field(description="PEM file of the CA that issued the SBC certificate.")


class Media(_Strict):
    qos: bool = Field(
        default=True, description="Mark media DSCP EF and signaling CS3 (best effort)."
    )
    audio: Literal["auto", "null"] = Field(
        default="auto", description="'auto' uses the sound device if there is one, else none."
    )


class AgentConfig(_Strict):
    """Top level of the agent configuration file."""

    version: Literal[1] = Field(description="Format version of this file.")
    account: Account
    sbc: Sbc
    bind_address: IPv4Address | IPv6Address = Field(
        description="Local address of the protected path; SIP and media bind only to it."
    )
    media: Media = Media()
    keychain_service: str = Field(
        default="guardphone",
        min_length=1,
        max_length=64,
        description="Keychain service name under which the credentials are stored.",
    )

    @property
    def account_id(self) -> str:
        return f"{self.account.user}@{self.account.domain}"


def load(path: Path) -> AgentConfig:
    """Read and validate an agent config file; any problem raises ConfigError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc.strerror})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    return parse(raw, source=str(path))


def parse(raw: Any, source: str = "<config>") -> AgentConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the configuration must be a JSON object")
    try:
        # JSON has no Path or IP type: let pydantic convert strings for those fields only.
        return AgentConfig.model_validate_json(json.dumps(raw))
    except ValidationError as exc:
        problems = [f"{_key(err['loc'])}: {_message(err)}" for err in exc.errors()]
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def _key(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown setting (check the spelling; unknown keys are not ignored)"
    if err["type"] == "missing":
        return "required setting is missing"
    return str(err["msg"])


def json_schema() -> dict[str, Any]:
    schema = AgentConfig.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    return schema
