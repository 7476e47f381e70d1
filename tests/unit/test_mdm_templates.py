"""The MDM templates are generated from the settings table and read back the way the agent
reads each platform's managed configuration: every setting appears in every template, and
what each template sets is exactly the managed document the agent then enforces."""

from __future__ import annotations

import json
import plistlib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agent import managed, settings
from installer import mdm
from tests.unit.test_settings import FakeRegistry

ROOT = Path(__file__).parents[2]
NS = {"p": "http://schemas.microsoft.com/GroupPolicy/2006/07/PolicyDefinitions"}
KEYS = {s.key for s in settings.TABLE}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads((ROOT / "schemas" / "managed-config.schema.json").read_text())


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mdm")
    mdm.write_all(out)
    return out


def flat_keys(doc: dict[str, Any]) -> set[str]:
    return set(settings.flatten(doc, "template")) - {"locked"}


def test_managed_json_validates_has_every_setting_and_is_what_the_agent_enforces(
    written: Path, schema: dict[str, Any]
) -> None:
    doc = json.loads((written / "managed.json").read_text())
    jsonschema.validate(doc, schema)
    assert flat_keys(doc) == KEYS
    effective = settings.resolve({}, "user.json", doc, "managed.json")
    assert effective.locked and effective.is_locked("sbc.spki_pins")


def test_mobileconfig_loads_validates_and_reads_back_through_the_macos_reader(
    written: Path, schema: dict[str, Any], tmp_path: Path
) -> None:
    profile = plistlib.loads((written / "guardphone.mobileconfig").read_bytes())
    assert profile["PayloadType"] == "Configuration" and profile["PayloadScope"] == "System"
    (payload,) = profile["PayloadContent"]
    assert payload["PayloadType"] == mdm.DOMAIN
    settings_only = {k: v for k, v in payload.items() if not k.startswith("Payload")}
    jsonschema.validate(settings_only, schema)
    assert flat_keys(settings_only) == KEYS
    # What macOS writes to Managed Preferences, read as the agent reads it.
    plist = tmp_path / f"{mdm.DOMAIN}.plist"
    plist.write_bytes(plistlib.dumps(payload))
    read = managed.FileSource(plist, "plist", require_root=False).read()
    assert read == mdm.managed_document()


def test_admx_and_adml_are_well_formed_and_every_policy_is_a_setting(written: Path) -> None:
    admx = ET.parse(written / "guardphone.admx").getroot()
    adml = ET.parse(written / "en-US" / "guardphone.adml").getroot()
    strings = {e.get("id") for e in adml.iterfind(".//p:stringTable/p:string", NS)}
    presentations = {e.get("id"): e for e in adml.iterfind(".//p:presentation", NS)}
    seen = set()
    for policy in admx.iterfind(".//p:policy", NS):
        key = policy.get("key") or ""
        assert key.startswith(mdm.REGISTRY_KEY)
        (element,) = list(policy.find("p:elements", NS) or [])
        section = key[len(mdm.REGISTRY_KEY) :].strip("\\").replace("\\", ".")
        dotted = f"{section}.{element.get('valueName')}" if section else element.get("valueName")
        assert dotted in settings.BY_KEY, f"policy {policy.get('name')} maps to no setting"
        seen.add(dotted)
        name = policy.get("name")
        assert name in strings and f"{name}_help" in strings
        control = next(iter(presentations[name]))
        assert control.get("refId") == element.get("id")
    assert seen == KEYS, f"settings without a policy: {KEYS - seen}"


def registry_from_admx(doc: dict[str, Any]) -> FakeRegistry:
    """The registry values the ADMX policies write for `doc` (REG_DWORD for booleans and
    decimals, REG_MULTI_SZ for multiText, REG_SZ for text and enums)."""
    tree: dict[str, dict[str, Any]] = {mdm.REGISTRY_KEY: {"locked": 1}}
    for key, value in settings.flatten(doc, "template").items():
        if key == "locked":
            continue
        kind = settings.BY_KEY[key].kind
        path, leaf = mdm._registry_path(key)
        if kind == "bool":
            stored: Any = int(value)
        elif kind in ("list", "pair"):
            stored = [str(v) for v in value]
        elif kind == "objects":
            stored = json.dumps(value)
        elif kind in ("float", "str", "enum"):
            stored = str(value)
        else:
            stored = value
        tree.setdefault(path, {})[leaf] = stored
    return FakeRegistry(tree)


def test_what_the_admx_policies_write_is_read_back_by_the_windows_reader() -> None:
    doc = mdm.managed_document()
    read = managed.RegistrySource(registry_from_admx(doc)).read()
    doc.pop("version", None)  # the format version is implied by the ADMX, not a policy
    assert read == doc


def test_intune_configuration_has_every_setting_and_means_the_managed_document(
    written: Path, schema: dict[str, Any]
) -> None:
    config = json.loads((written / "intune-app-configuration.json").read_text())
    assert {e["key"] for e in config["settings"]} == KEYS
    doc = mdm.from_intune(config)
    jsonschema.validate(doc, schema)
    assert doc == mdm.managed_document()


def test_a_new_setting_without_an_example_breaks_the_templates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extra = settings.Setting("sbc.new_required", True, False, True, None, "A new setting.")
    monkeypatch.setattr(settings, "TABLE", (*settings.TABLE, extra))
    assert "sbc.new_required" not in mdm.managed_document()["sbc"]  # so the doc checks fail
    admx = mdm.admx()
    assert 'valueName="new_required"' in admx  # while the ADMX carries every setting


def test_the_settings_reference_for_it_is_generated_from_the_table() -> None:
    stored = (ROOT / "docs" / "settings.md").read_text()
    assert stored == mdm.settings_markdown(), "run `make mdm` to regenerate docs/settings.md"
    assert all(f"`{key}`" in stored for key in KEYS)
