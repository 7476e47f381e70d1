"""One table of settings, derived from the config model, and the layers that fill it.

Every setting is declared once, in agent/config.py, with its type, default and help; this
module walks that model into a flat table of dotted keys (`sbc.host`) and resolves the
layers: defaults -> user preferences -> managed (MDM). Managed always wins. Every setting is
security-relevant unless the model marks it otherwise; with `locked` (the default for a
managed config), the user may not change a security setting the organisation set.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from agent.config import AgentConfig, ConfigError, parse, read_document

if typing.TYPE_CHECKING:
    from agent.managed import ManagedSource

META_KEYS = ("version", "locked")  # about the document, not settings
DEFAULT, USER, MANAGED = "default", "user", "managed"


HIDDEN = "(hidden)"


@dataclass(frozen=True)
class Setting:
    key: str
    security: bool
    secret: bool
    required: bool
    default: Any
    help: str
    # bool | int | float | str | enum | list (of strings) | pair (of ints) | objects (JSON)
    kind: str = "str"
    choices: tuple[str, ...] = ()  # for enum


def _kind_of(annotation: Any) -> tuple[str, tuple[str, ...]]:
    """What a field holds, for templates and registry values: (kind, enum choices)."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if isinstance(annotation, types.UnionType) or origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return _kind_of(inner[0]) if inner else ("str", ())
    if origin is typing.Annotated:
        return _kind_of(args[0])
    if origin is typing.Literal:
        return "enum", tuple(str(a) for a in args)
    if origin is tuple:
        if args and args[-1] is not Ellipsis:
            return "pair", ()
        element = args[0] if args else str
        is_model = isinstance(element, type) and issubclass(element, BaseModel)
        return ("objects", ()) if is_model else ("list", ())
    if annotation is bool:
        return "bool", ()
    if annotation is int:
        return "int", ()
    if annotation is float:
        return "float", ()
    return "str", ()


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The section model behind a field (`WireGuard | None` -> WireGuard), if it is one."""
    candidates = (
        typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    )
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _walk(model: type[BaseModel], prefix: str) -> list[Setting]:
    found = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        section = _model_of(field.annotation)
        if section is not None:
            found += _walk(section, key + ".")
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        required = field.is_required()
        kind, choices = _kind_of(field.annotation)
        found.append(
            Setting(
                key=key,
                security=bool(extra.get("security", True)),
                secret=bool(extra.get("secret", False)),
                required=required,
                default=None if required or field.default is PydanticUndefined else field.default,
                help=field.description or "",
                kind=kind,
                choices=choices,
            )
        )
    return found


TABLE: tuple[Setting, ...] = tuple(s for s in _walk(AgentConfig, "") if s.key not in META_KEYS)
BY_KEY = {s.key: s for s in TABLE}
SECTIONS = frozenset(k.rsplit(".", 1)[0] for k in BY_KEY if "." in k)


def flatten(doc: dict[str, Any], source: str) -> dict[str, Any]:
    """Nested document -> {dotted key: value}; unknown keys are errors naming the file."""
    flat, unknown = _flatten(doc)
    if unknown:
        raise ConfigError(
            "; ".join(f"{source}: {k}: {UNKNOWN}" for k in unknown),
            tuple((k, UNKNOWN) for k in unknown),
        )
    return flat


UNKNOWN = "unknown setting (check the spelling; unknown keys are not ignored)"


def _flatten(doc: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    flat: dict[str, Any] = {}
    unknown: list[str] = []

    def visit(node: dict[str, Any], prefix: str) -> None:
        for name, value in node.items():
            key = f"{prefix}{name}"
            if key in SECTIONS and isinstance(value, dict):
                visit(value, key + ".")
            elif key in BY_KEY:
                flat[key] = value
            elif not (prefix == "" and name in META_KEYS):
                unknown.append(key)

    visit(doc, "")
    return flat, unknown


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": 1}
    for key, value in flat.items():
        node = doc
        *sections, leaf = key.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return doc


@dataclass(frozen=True)
class Effective:
    """The configuration in force, where each value came from, and what was overruled."""

    config: AgentConfig
    values: dict[str, Any]
    sources: dict[str, str]
    locked: bool
    managed_by: str | None  # where the managed layer came from, if there is one
    overruled: tuple[str, ...]  # user values the organisation's values replaced

    def is_locked(self, key: str) -> bool:
        return self.locked and BY_KEY[key].security and self.sources.get(key) == MANAGED


def _meta(doc: dict[str, Any], source: str) -> bool:
    if doc.get("version", 1) != 1:
        raise ConfigError(f"{source}: version: Input should be 1", (("version", "should be 1"),))
    locked = doc.get("locked", True)
    if not isinstance(locked, bool):
        raise ConfigError(
            f"{source}: locked: Input should be a valid boolean",
            (("locked", "should be true or false"),),
        )
    return locked


def resolve(
    user: dict[str, Any],
    user_source: str,
    managed: dict[str, Any] | None = None,
    managed_source: str | None = None,
) -> Effective:
    """Layer defaults, user and managed; validate the result. Errors name the file and key."""
    _meta(user, user_source)
    user_flat, user_unknown = _flatten(user)
    problems = [f"{user_source}: {k}: {UNKNOWN}" for k in user_unknown]
    managed_flat: dict[str, Any] = {}
    locked = False
    if managed is not None:
        assert managed_source is not None
        locked = _meta(managed, managed_source)
        managed_flat, managed_unknown = _flatten(managed)
        problems += [f"{managed_source}: {k}: {UNKNOWN}" for k in managed_unknown]
    values = {**user_flat, **managed_flat}
    sources = {k: MANAGED if k in managed_flat else USER for k in values}
    overruled = tuple(k for k in user_flat if k in managed_flat and user_flat[k] != managed_flat[k])
    try:
        config = parse(unflatten(values), source="(effective configuration)")
    except ConfigError as exc:
        problems += [str(_blame(exc, sources, user_source, managed_source))]
    if problems:  # every problem at once, each naming its file and key
        raise ConfigError("; ".join(problems))
    effective_values = _values_of(config)
    for key in effective_values:
        sources.setdefault(key, DEFAULT)
    return Effective(config, effective_values, sources, locked, managed_source, overruled)


def _blame(
    exc: ConfigError, sources: dict[str, str], user_source: str, managed_source: str | None
) -> ConfigError:
    """Say which file each problem comes from (a missing required key: the user's file)."""
    parts = []
    for key, message in exc.problems:
        where = managed_source if sources.get(key) == MANAGED else user_source
        parts.append(f"{where}: {key}: {message}")
    return ConfigError("; ".join(parts) or str(exc), exc.problems)


def _values_of(config: AgentConfig) -> dict[str, Any]:
    dumped = json.loads(config.model_dump_json())
    flat: dict[str, Any] = {}

    def visit(node: dict[str, Any], prefix: str) -> None:
        for name, value in node.items():
            key = f"{prefix}{name}"
            if isinstance(value, dict):
                visit(value, key + ".")
            elif key in BY_KEY:
                flat[key] = value

    visit(dumped, "")
    return flat


def load(user_path: Path, source: ManagedSource) -> Effective:
    """The effective configuration: the user's file under what the organisation manages."""
    managed = source.read()
    return resolve(
        read_document(user_path),
        str(user_path),
        managed,
        source.location if managed is not None else None,
    )


class SettingRefused(ValueError):
    """A change the user may not make: unknown, set by the organisation, or invalid."""

    def __init__(self, message: str, locked: bool = False) -> None:
        super().__init__(message)
        self.locked = locked


def change(user_path: Path, source: ManagedSource, key: str, value: Any) -> Effective:
    """Set one setting in the user's file, if the organisation lets them; the file is
    written only once the result validates. Raises SettingRefused (or ConfigError)."""
    if key not in BY_KEY:
        raise SettingRefused(f"{key}: no such setting (see `guardphone settings`)")
    managed = source.read()
    where = source.location if managed is not None else None
    doc = read_document(user_path)
    current = resolve(doc, str(user_path), managed, where)
    if current.is_locked(key) or (current.locked and key in current.overruled):
        raise SettingRefused(
            f"{key} is set by your organisation and cannot be changed here.", locked=True
        )
    node = doc
    *sections, leaf = key.split(".")
    for section in sections:
        node = node.setdefault(section, {})
    node[leaf] = value
    effective = resolve(doc, str(user_path), managed, where)  # raises if it does not validate
    user_path.write_text(json.dumps(doc, indent=2) + "\n")
    return effective


def changes(old: Effective, new: Effective) -> list[dict[str, Any]]:
    """config.changed records: key, old and new value, and the layer the new value is from."""
    keys = sorted(set(old.values) | set(new.values))
    return [
        {
            "key": k,
            "old": shown(k, old.values.get(k)),
            "new": shown(k, new.values.get(k)),
            "source": new.sources.get(k, DEFAULT),
        }
        for k in keys
        if old.values.get(k) != new.values.get(k)
    ]


def shown(key: str, value: Any) -> Any:
    """A value as it may be displayed: secrets never are."""
    return HIDDEN if value is not None and BY_KEY[key].secret else value


def managed_schema() -> dict[str, Any]:
    """JSON Schema of a managed config: any subset of the settings, plus `locked`."""
    from agent.config import json_schema

    schema = json_schema()
    schema["$id"] = schema["$id"].replace("agent-config", "managed-config")
    schema["title"] = "guardphone managed configuration"
    schema["description"] = (
        "What MDM delivers (Linux /etc/guardphone/managed.json, macOS managed preferences, "
        "Windows HKLM\\Software\\Policies\\guardphone). Any subset of the agent settings; "
        "managed values win over the user's, and with locked (default true) the user may not "
        "change a security setting set here."
    )
    schema["required"] = []
    schema["properties"]["locked"] = {
        "type": "boolean",
        "default": True,
        "description": "The user may not change security settings set here.",
    }
    for definition in schema.get("$defs", {}).values():
        definition.pop("required", None)
    return schema
