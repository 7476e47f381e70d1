from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agent import config

SCHEMA = Path(__file__).parents[2] / "schemas" / "agent-config.schema.json"


def valid() -> dict[str, Any]:
    return {
        "version": 1,
        "account": {"user": "alice", "domain": "example.com"},
        "sbc": {"host": "sbc.example.com", "port": 5061, "ca_file": "/etc/guardphone/ca.pem"},
    }


def test_valid_config_loads_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(valid()))
    cfg = config.load(path)
    assert cfg.account_id == "alice@example.com"
    assert cfg.paths == ("sbc_mtls",)
    assert cfg.sbc.ca_file == Path("/etc/guardphone/ca.pem")
    assert cfg.media.qos is True
    assert cfg.keychain_service == "guardphone"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["sbc"].update(port=70000), "sbc.port: Input should be less than or equal"),
        (lambda d: d["sbc"].update(port="5061"), "sbc.port: Input should be a valid integer"),
        (lambda d: d["sbc"].update(verify_server=False), "sbc.verify_server: unknown setting"),
        (lambda d: d.pop("sbc"), "sbc: required setting is missing"),
        (lambda d: d.update(paths=["wireguard"]), "paths: 'wireguard' is allowed but there is no"),
        (lambda d: d.update(paths=["carrier-pigeon"]), "paths.0: Input should be"),
        (lambda d: d["sbc"].update(spki_pins=["md5/abc"]), "sbc.spki_pins.0: String should match"),
        (lambda d: d["account"].update(user="al ice"), "account.user: String should match"),
        (lambda d: d.update(version=2), "version: Input should be 1"),
        (
            lambda d: (
                d["media"].update(audio="loud")
                if "media" in d
                else d.update(media={"audio": "loud"})
            ),
            "media.audio",
        ),
    ],
)
def test_bad_values_name_the_key(change: Any, message: str) -> None:
    data = valid()
    change(data)
    with pytest.raises(config.ConfigError) as err:
        config.parse(data, source="/etc/guardphone/agent.json")
    assert str(err.value).startswith("/etc/guardphone/agent.json: ")
    assert message in str(err.value)


def test_malformed_json_names_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "version": 1,\n  "account": }')
    with pytest.raises(config.ConfigError, match=r"bad.json: not valid JSON at line 3, column 14"):
        config.load(path)


def test_missing_file_and_non_object(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="no such configuration file"):
        config.load(tmp_path / "nope.json")
    with pytest.raises(config.ConfigError, match="must be a JSON object"):
        config.parse([1, 2])


def test_schema_file_is_generated_from_the_model() -> None:
    assert json.loads(SCHEMA.read_text()) == config.json_schema(), "run `make schema`"


def test_schema_accepts_what_the_model_accepts_and_rejects_unknown_keys() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(valid(), schema)
    bad = valid()
    bad["sbc"]["insecure"] = True
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_lab_configs_are_valid() -> None:
    from lab.lab import agent_config

    cfg = config.parse(agent_config("bob", 5061, Path("/tmp/ca.pem")))
    assert cfg.account_id == "bob@lab.guardphone.test"
