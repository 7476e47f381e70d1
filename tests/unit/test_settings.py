"""The settings table and its layers: defaults -> user -> managed, managed wins."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from agent import cli, managed, settings
from agent.config import ConfigError

REC = Path(__file__).with_name("recordings")
PIN = "sha256/" + "A" * 43 + "="
USER: dict[str, Any] = {
    "version": 1,
    "account": {"user": "alice", "domain": "example.com"},
    "paths": ["wireguard", "sbc_mtls"],
    "sbc": {"host": "127.0.0.1", "port": 5061, "ca_file": "/ca.pem"},
    "wireguard": {"interface": "wg0", "registrar": "10.0.0.1"},
    "portal": {
        "url": "https://portal.example.com",
        "ca_file": "/ca.pem",
        "spki_pins": ["sha256/" + "B" * 43 + "="],
    },
}
# A valid value different from USER's for every security setting: what IT would push.
IT_VALUES: dict[str, Any] = {
    "account.user": "bob",
    "account.domain": "corp.example",
    "paths": ["sbc_mtls"],
    "sbc.host": "192.0.2.1",
    "sbc.port": 5071,
    "sbc.ca_file": "/etc/guardphone/ca.pem",
    "sbc.spki_pins": [PIN],
    "wireguard.interface": "wg-office",
    "wireguard.registrar": "198.51.100.1",
    "wireguard.port": 5081,
    "wireguard.handshake_max_age_s": 150,
    "wireguard.silence_max_s": 9,
    "wireguard.profile": "office",
    "wireguard.agent_may_connect": True,
    "keychain_service": "guardphone-corp",
    "portal.url": "https://portal.corp.example",
    "portal.ca_file": "/etc/guardphone/portal-ca.pem",
    "portal.spki_pins": [PIN],
    "portal.enrollment_token": "one-time-token-from-IT",
    "portal.poll_interval_s": 60.0,
    "event_log": "/var/lib/guardphone/events.db",
    "fraud.region": "DE",
    "fraud.timezone": "Europe/Berlin",
    "fraud.block_types": ["premium_rate"],
    "fraud.allow_countries": ["DE", "FR"],
    "fraud.deny_countries": ["RU"],
    "fraud.international_per_window": 4,
    "fraud.window_s": 1800,
    "fraud.alert_international_from": 2,
    "fraud.daily_international_minutes": 60,
    "fraud.max_concurrent": 1,
    "fraud.business_hours": [8, 18],
    "fraud.sequential_run": 3,
    "fraud.suspend_after_blocks": 2,
    "fraud.state_file": "/var/lib/guardphone/fraud.db",
    "desktop.allow_quit": False,
    "siem": [
        {
            "name": "soc",
            "transport": "tcp",
            "host": "siem.example",
            "port": 6514,
            "format": "rfc5424",
            "ca_file": None,
            "path": "/",
        }
    ],
}


def test_table_is_derived_from_the_model() -> None:
    keys = [s.key for s in settings.TABLE]
    assert "sbc.host" in keys and "wireguard.silence_max_s" in keys and "version" not in keys
    assert settings.BY_KEY["sbc.spki_pins"].security is True
    assert settings.BY_KEY["media.qos"].security is False
    assert settings.BY_KEY["sbc.port"].default == 5061
    assert settings.BY_KEY["sbc.host"].required
    assert all(s.help for s in settings.TABLE)


def test_every_security_setting_is_covered_here() -> None:
    assert {s.key for s in settings.TABLE if s.security} == set(IT_VALUES)


@pytest.mark.parametrize("key", sorted(IT_VALUES))
def test_managed_beats_user_for_every_security_setting(key: str) -> None:
    user = copy.deepcopy(USER)
    user["wireguard"]["profile"] = "mine"  # agent_may_connect needs a profile
    managed_doc = settings.unflatten({key: IT_VALUES[key]})
    effective = settings.resolve(user, "user.json", managed_doc, "/etc/guardphone/managed.json")
    assert effective.values[key] == IT_VALUES[key]
    assert effective.sources[key] == settings.MANAGED
    assert effective.is_locked(key)
    if key in settings.flatten(user, "user.json"):
        assert key in effective.overruled


def test_unlocked_managed_still_wins_but_is_not_locked() -> None:
    managed_doc = {"locked": False, "sbc": {"host": "192.0.2.1"}}
    effective = settings.resolve(USER, "u.json", managed_doc, "m.json")
    assert effective.values["sbc.host"] == "192.0.2.1"
    assert not effective.is_locked("sbc.host")


def test_defaults_user_and_sources() -> None:
    effective = settings.resolve(USER, "u.json")
    assert effective.sources["sbc.host"] == settings.USER
    assert effective.sources["media.audio"] == settings.DEFAULT
    assert effective.values["media.audio"] == "auto"
    assert effective.managed_by is None and not effective.locked


@pytest.mark.parametrize(
    ("managed_doc", "message"),
    [
        ({"sbc": {"hots": "x"}}, "m.json: sbc.hots: unknown setting"),
        ({"sbc": {"port": 70000}}, "m.json: sbc.port: Input should be less than or equal"),
        ({"locked": "yes"}, "m.json: locked: Input should be a valid boolean"),
        ({"version": 3}, "m.json: version: Input should be 1"),
        ({"paths": ["wireguard"], "wireguard": None}, "m.json"),
    ],
)
def test_bad_managed_values_name_the_managed_file(
    managed_doc: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        settings.resolve(USER, "u.json", managed_doc, "m.json")
    assert message in str(err.value)


def test_missing_required_setting_names_the_user_file() -> None:
    user = copy.deepcopy(USER)
    del user["sbc"]["host"]
    with pytest.raises(ConfigError, match=r"u\.json: sbc\.host: required setting is missing"):
        settings.resolve(user, "u.json", {"sbc": {"port": 5061}}, "m.json")


def test_changes_name_key_old_new_and_layer() -> None:
    old = settings.resolve(USER, "u.json")
    new = settings.resolve(USER, "u.json", {"sbc": {"host": "192.0.2.1"}}, "m.json")
    assert settings.changes(old, new) == [
        {"key": "sbc.host", "old": "127.0.0.1", "new": "192.0.2.1", "source": "managed"}
    ]


def test_secrets_are_never_shown() -> None:
    old = settings.resolve(USER, "u.json")
    new = settings.resolve(USER, "u.json", {"portal": {"enrollment_token": "s3cret-token"}}, "m")
    (change,) = settings.changes(old, new)
    assert change == {
        "key": "portal.enrollment_token",
        "old": None,
        "new": "(hidden)",
        "source": "managed",
    }
    assert "s3cret" not in json.dumps(settings.changes(old, new))


def test_managed_schema_accepts_a_partial_document() -> None:
    import jsonschema

    schema = settings.managed_schema()
    jsonschema.validate({"locked": True, "sbc": {"host": "x.example"}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"sbc": {"insecure": True}}, schema)
    on_disk = Path(__file__).parents[2] / "schemas" / "managed-config.schema.json"
    assert json.loads(on_disk.read_text()) == schema, "run `make schema`"


# -- the managed sources -------------------------------------------------------------------


def test_linux_file_must_be_roots_and_not_writable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "managed.json"
    path.write_text(json.dumps({"locked": True}))
    path.chmod(0o666)
    with pytest.raises(ConfigError, match="writable by no one else"):
        managed.FileSource(path).read()
    assert managed.FileSource(tmp_path / "absent.json").read() is None


def test_linux_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "managed.json"
    path.write_text("{ not json")
    with pytest.raises(ConfigError, match=r"managed.json: not valid JSON at line 1"):
        managed.FileSource(path, require_root=False).read()


def test_macos_plist() -> None:
    source = managed.FileSource(
        REC / "macos" / "com.guardphone.agent.plist", "plist", require_root=False
    )
    doc = source.read()
    assert doc is not None
    effective = settings.resolve(USER, "u.json", doc, source.location)
    assert effective.values["wireguard.interface"] == "utun4"
    assert effective.values["sbc.spki_pins"] == [PIN]
    assert effective.is_locked("paths")


class FakeRegistry:
    """Values as winreg returns them: REG_SZ str, REG_DWORD int, REG_MULTI_SZ list[str]."""

    def __init__(self, tree: dict[str, dict[str, Any]]) -> None:
        self.tree = tree

    def values(self, key: str) -> dict[str, Any] | None:
        return self.tree.get(key)

    def subkeys(self, key: str) -> list[str]:
        prefix = key + "\\"
        return sorted({k[len(prefix) :].split("\\")[0] for k in self.tree if k.startswith(prefix)})


def test_windows_policy_registry() -> None:
    base = managed.WINDOWS_KEY
    registry = FakeRegistry(
        {
            base + "\\sbc": {"host": "sbc.example.com", "port": 5061, "spki_pins": [PIN]},
            base + "\\media": {"qos": 0},
            # Read by the setting's kind (from the table), not by a list of names.
            base + "\\desktop": {"allow_quit": 0},
            base + "\\portal": {"poll_interval_s": "12.5"},
            base + "\\fraud": {"business_hours": ["8", "18"]},
            base: {"version": 1, "locked": 1, "paths": ["sbc_mtls"], "siem": '[{"name": "soc"}]'},
        }
    )
    doc = managed.RegistrySource(registry).read()
    assert doc == {
        "version": 1,
        "locked": True,
        "paths": ["sbc_mtls"],
        "siem": [{"name": "soc"}],
        "sbc": {"host": "sbc.example.com", "port": 5061, "spki_pins": [PIN]},
        "media": {"qos": False},
        "desktop": {"allow_quit": False},
        "portal": {"poll_interval_s": 12.5},
        "fraud": {"business_hours": [8, 18]},
    }
    assert managed.RegistrySource(FakeRegistry({})).read() is None


def test_unknown_platform_is_unmanaged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(managed.OVERRIDE_ENV, raising=False)
    assert managed.open_source("plan9").read() is None
    assert isinstance(managed.open_source("linux"), managed.FileSource)


# -- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def layered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    user, managed_path = tmp_path / "user.json", tmp_path / "managed.json"
    user.write_text(json.dumps(USER))
    managed_path.write_text(json.dumps({"locked": True, "sbc": {"host": "192.0.2.1"}}))
    monkeypatch.setattr(
        managed, "open_source", lambda: managed.FileSource(managed_path, require_root=False)
    )
    return user, managed_path


def test_cli_refuses_to_change_a_locked_setting(
    layered: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    user, _ = layered
    before = user.read_text()
    assert cli.main(["--config", str(user), "settings", "set", "sbc.host", "10.9.9.9"]) == 1
    assert "sbc.host is set by your organisation" in capsys.readouterr().err
    assert user.read_text() == before


def test_cli_changes_a_free_setting_after_validating_it(
    layered: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    user, _ = layered
    assert cli.main(["--config", str(user), "settings", "set", "media.audio", "none"]) == 0
    assert json.loads(user.read_text())["media"]["audio"] == "none"
    assert cli.main(["--config", str(user), "settings", "set", "media.audio", "loud"]) == 2
    assert json.loads(user.read_text())["media"]["audio"] == "none"  # nothing half-written
    assert cli.main(["--config", str(user), "settings", "set", "sbc.hots", "x"]) == 2


def test_cli_shows_where_each_value_comes_from(
    layered: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    user, managed_path = layered
    assert cli.main(["--config", str(user), "settings", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    rows = {row["key"]: row for row in shown["settings"]}
    assert rows["sbc.host"] == {
        **rows["sbc.host"],
        "value": "192.0.2.1",
        "source": "managed",
        "locked": True,
    }
    assert rows["sbc.port"]["source"] == "user" and not rows["sbc.port"]["locked"]
    assert shown["managed_by"] == str(managed_path)


# -- hostile input ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
near_miss = st.fixed_dictionaries(
    {},
    optional={
        "locked": json_values,
        "version": json_values,
        "paths": json_values,
        "sbc": st.dictionaries(
            st.sampled_from(["host", "port", "ca_file", "spki_pins", "x"]), json_values, max_size=4
        ),
        "wireguard": json_values,
        "media": json_values,
    },
)


@hsettings(max_examples=300, deadline=None)
@given(st.one_of(near_miss, st.dictionaries(st.text(max_size=10), json_values, max_size=5)))
def test_hostile_managed_documents_never_crash(doc: dict[str, Any]) -> None:
    try:
        effective = settings.resolve(USER, "u.json", doc, "m.json")
    except ConfigError as exc:
        assert str(exc)  # refused, with a message
        return
    # Accepted: then it is a fully valid configuration, and the managed values are in force.
    for key, value in settings.flatten(doc, "m.json").items():
        assert effective.sources[key] == settings.MANAGED
        assert effective.values[key] is not None or value is None


def test_environment_cannot_replace_the_organisations_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "etc-managed.json"
    real.write_text(json.dumps({"locked": True, "sbc": {"host": "192.0.2.1"}}))
    monkeypatch.setattr(managed, "LINUX_PATH", real)
    monkeypatch.setenv(managed.OVERRIDE_ENV, str(tmp_path / "nothing-here.json"))
    with pytest.raises(ConfigError, match="cannot be replaced"):
        managed.open_source("linux").read()
    real.unlink()  # an unmanaged machine (a lab, CI): the override is how tests manage it
    assert isinstance(managed.open_source("linux"), managed.FileSource)
    assert managed.open_source("linux").location == str(tmp_path / "nothing-here.json")
