"""The agent's configuration file: one JSON object, validated strictly, frozen once loaded.

There are no secrets in it: the device key, certificate and SIP password live in the
keychain under the account named here. Unknown keys are errors, not silently ignored, so a
typo in a security setting cannot leave the agent running with a default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_ID = "https://guardphone.example/schemas/agent-config.schema.json"


class ConfigError(ValueError):
    """The configuration is unusable; the message names the file and the key."""

    def __init__(self, message: str, problems: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems  # (dotted key, what is wrong with it)


NOT_SECURITY: dict[str, Any] = {"security": False}  # every other setting is security-relevant
SECRET: dict[str, Any] = {"secret": True}  # never shown: settings, config.changed, logs


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


SipToken = Annotated[str, Field(pattern=r"^[A-Za-z0-9._~-]{1,64}$")]
HostName = Annotated[str, Field(pattern=r"^[A-Za-z0-9.:-]{1,253}$")]
SpkiPin = Annotated[str, Field(pattern=r"^sha256/[A-Za-z0-9+/]{43}=$")]
PathName = Literal["wireguard", "sbc_mtls"]


class Account(_Strict):
    """Who the device registers as."""

    user: SipToken = Field(description="SIP user; must equal the CN of the device certificate.")
    domain: HostName = Field(description="SIP domain (digest realm) of the company registrar.")
    display_name: str = Field(
        default="",
        max_length=64,
        description="Name shown to callees.",
        json_schema_extra=NOT_SECURITY,
    )


class Sbc(_Strict):
    """The company's hosted SBC, reached over mutual TLS."""

    host: HostName = Field(
        description="Address or name the TLS connection goes to; the SBC certificate must name it."
    )
    port: int = Field(default=5061, ge=1, le=65535, description="TLS port of the SBC.")
    ca_file: Path = Field(
        description="PEM file of the CA that issued the SBC (and office registrar) certificate."
    )
    spki_pins: tuple[SpkiPin, ...] = Field(
        default=(),
        description="Accepted SBC public keys, 'sha256/' + base64 of the SPKI hash. Two during "
        "a key rotation; empty means the CA and name are checked but no key is pinned.",
    )


class WireGuard(_Strict):
    """The office tunnel path: the registrar inside the tunnel, and when the tunnel counts as up."""

    interface: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.=+-]{1,15}$")] = Field(
        description="WireGuard interface name (as `wg show` knows it)."
    )
    registrar: HostName = Field(
        description="Address of the office SBC/registrar inside the tunnel; the route to it must "
        "leave through the tunnel interface."
    )
    port: int = Field(default=5061, ge=1, le=65535, description="TLS port of that registrar.")
    handshake_max_age_s: int = Field(
        default=180,
        ge=5,
        le=3600,
        description="A handshake older than this means the tunnel is down (WireGuard rekeys "
        "every 120 s while traffic flows).",
    )
    profile: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_./=+-]{1,255}$",
        description="wg-quick profile (a name under /etc/wireguard or a path) that "
        "`guardphone tunnel up` brings up.",
    )
    agent_may_connect: bool = Field(
        default=False,
        description="Whether guardphone may bring the tunnel up and down itself (wg-quick).",
    )
    silence_max_s: int = Field(
        default=15,
        ge=2,
        le=600,
        description="Nothing received from the peer for this long means the tunnel is down "
        "(needs persistent-keepalive shorter than this).",
    )


class Portal(_Strict):
    """The central portal: enrollment, posture reports and events, policy and commands."""

    url: Annotated[str, Field(pattern=r"^https://[A-Za-z0-9.:\[\]-]+(:[0-9]{1,5})?(/.*)?$")] = (
        Field(description="Base URL of the portal (https only).")
    )
    ca_file: Path = Field(description="PEM file of the CA that issued the portal's certificate.")
    spki_pins: tuple[SpkiPin, ...] = Field(
        min_length=1,
        description="Accepted portal public keys ('sha256/' + base64); nothing is sent to a "
        "portal whose key is not one of them.",
    )
    enrollment_token: Annotated[str, Field(pattern=r"^[A-Za-z0-9._~+/=-]{8,256}$")] | None = Field(
        default=None,
        description="One-time enrollment token (MDM): moved into the keychain on first "
        "run and used once; never shown.",
        json_schema_extra=SECRET,
    )
    poll_interval_s: float = Field(
        default=30.0,
        ge=0.2,
        le=3600,
        description="How often the agent asks the portal for commands and a newer policy.",
    )


class Fraud(_Strict):
    """The toll-fraud guard's policy (agent/fraud.py); safe defaults."""

    region: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = Field(
        default="US", description="Region the user dials from (ISO 3166 code)."
    )
    timezone: str = Field(default="UTC", max_length=64, description="The user's time zone.")
    block_types: tuple[
        Literal[
            "premium_rate", "shared_cost", "satellite", "unknown", "toll_free", "personal", "uan"
        ],
        ...,
    ] = Field(
        default=("premium_rate", "shared_cost", "satellite", "unknown"),
        description="Number types never dialled.",
    )
    allow_countries: tuple[Annotated[str, Field(pattern=r"^[A-Z]{2}$")], ...] = Field(
        default=(), description="If set, only these destination countries."
    )
    deny_countries: tuple[Annotated[str, Field(pattern=r"^[A-Z]{2}$")], ...] = Field(
        default=(), description="Destination countries never dialled."
    )
    international_per_window: int = Field(
        default=10, ge=0, le=1000, description="International calls per window."
    )
    window_s: int = Field(default=3600, ge=60, le=86400, description="The velocity window.")
    alert_international_from: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="From this many international calls in the window, each is alerted.",
    )
    daily_international_minutes: int = Field(
        default=120, ge=0, le=1440, description="International minutes per day (user's day)."
    )
    max_concurrent: int = Field(default=2, ge=1, le=20, description="Calls at the same time.")
    business_hours: tuple[int, int] | None = Field(
        default=None, description="[from, to) local hours for international calls."
    )
    sequential_run: int = Field(
        default=5, ge=2, le=100, description="Consecutive numbers that count as enumeration."
    )
    suspend_after_blocks: int = Field(
        default=3, ge=1, le=100, description="Blocked dials in 10 minutes that suspend."
    )
    state_file: Path | None = Field(
        default=None, description="Counters and suspension (default: data dir)."
    )


class SiemTarget(_Strict):
    """One SIEM destination the event log is forwarded to."""

    name: SipToken = Field(description="A name for this destination (status, cursors).")
    transport: Literal["udp", "tcp", "tls", "https"] = Field(
        description="Syslog over udp/tcp/tls, or JSON lines POSTed over https."
    )
    host: HostName = Field(description="Receiver address.")
    port: int = Field(ge=1, le=65535, description="Receiver port.")
    format: Literal["rfc5424", "cef", "json"] = Field(
        default="rfc5424", description="Message format."
    )
    ca_file: Path | None = Field(default=None, description="CA of the receiver (tls, https).")
    path: str = Field(
        default="/", pattern=r"^/[A-Za-z0-9._~/%-]*$", description="Request path (https)."
    )


class Media(_Strict):
    qos: bool = Field(
        default=True,
        json_schema_extra=NOT_SECURITY,
        description="Mark media DSCP EF and signaling CS3 (best effort).",
    )
    audio: Literal["auto", "none"] = Field(
        default="auto",
        json_schema_extra=NOT_SECURITY,
        description="'auto' uses the sound device if there is one; 'none' never opens one.",
    )
    input_device: str | None = Field(
        default=None,
        max_length=200,
        json_schema_extra=NOT_SECURITY,
        description="Microphone by name (as the tray app's settings list them); none: default.",
    )
    output_device: str | None = Field(
        default=None,
        max_length=200,
        json_schema_extra=NOT_SECURITY,
        description="Speaker or headset by name; none: the system default.",
    )


class Desktop(_Strict):
    """The tray app."""

    allow_quit: bool = Field(
        default=True,
        description="Whether the tray menu offers Quit (IT may keep the app always running).",
    )


class AgentConfig(_Strict):
    """Top level of the agent configuration file."""

    version: Literal[1] = Field(description="Format version of this file.")
    account: Account
    paths: tuple[PathName, ...] = Field(
        default=("sbc_mtls",),
        min_length=1,
        max_length=2,
        description="Protected paths allowed for calls, in order of preference. SIP and media "
        "bind to the chosen path's local address.",
    )
    sbc: Sbc
    wireguard: WireGuard | None = Field(
        default=None, description="The office tunnel; required when paths has 'wireguard'."
    )
    portal: Portal | None = Field(default=None, description="The central portal, if any.")
    event_log: Path | None = Field(
        default=None,
        description="The security event log (SQLite); default: the user's data directory.",
    )
    fraud: Fraud = Fraud()
    siem: tuple[SiemTarget, ...] = Field(
        default=(), max_length=8, description="Where the event log is forwarded."
    )
    media: Media = Media()
    desktop: Desktop = Desktop()
    keychain_service: str = Field(
        default="guardphone",
        min_length=1,
        max_length=64,
        description="Keychain service name under which the credentials are stored.",
    )

    @model_validator(mode="after")
    def _paths_are_configured(self) -> AgentConfig:
        if len(set(self.paths)) != len(self.paths):
            raise ValueError("paths: a path is listed twice")
        if "wireguard" in self.paths and self.wireguard is None:
            raise ValueError("paths: 'wireguard' is allowed but there is no wireguard section")
        wg = self.wireguard
        if wg is not None and wg.agent_may_connect and not wg.profile:
            raise ValueError("wireguard.agent_may_connect needs wireguard.profile")
        return self

    @property
    def account_id(self) -> str:
        return f"{self.account.user}@{self.account.domain}"


def load(path: Path) -> AgentConfig:
    """Read and validate an agent config file; any problem raises ConfigError naming it."""
    return parse(read_document(path), source=str(path))


def read_document(path: Path) -> dict[str, Any]:
    """A JSON object from a file, or ConfigError naming the file and what is wrong."""
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
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the configuration must be a JSON object")
    return raw


def parse(raw: Any, source: str = "<config>") -> AgentConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the configuration must be a JSON object")
    try:
        # JSON has no Path or IP type: let pydantic convert strings for those fields only.
        return AgentConfig.model_validate_json(json.dumps(raw))
    except ValidationError as exc:
        problems = tuple((_key(err["loc"]), _message(err)) for err in exc.errors())
        text = "; ".join(_problem(err) for err in exc.errors())
        raise ConfigError(f"{source}: {text}", problems) from None


def _key(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _problem(err: Any) -> str:
    message = _message(err)
    return f"{_key(err['loc'])}: {message}" if err["loc"] else message


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown setting (check the spelling; unknown keys are not ignored)"
    if err["type"] == "missing":
        return "required setting is missing"
    if err["type"] == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    return str(err["msg"])


def json_schema() -> dict[str, Any]:
    schema = AgentConfig.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    return schema
