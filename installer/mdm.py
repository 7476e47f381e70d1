"""MDM templates, generated from the settings table (agent/settings.py) so they can never
drift from what the agent reads: a macOS configuration profile, Windows ADMX/ADML policy
templates, an Intune app-configuration JSON, and an example managed.json for Linux MDM tools.

`python -m installer.mdm OUT_DIR` (or `make mdm`) writes all four. Every setting appears in
every template; the values are the defaults, or an example where a setting has none.
"""

from __future__ import annotations

import json
import plistlib
import sys
import uuid
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from agent import settings

DOMAIN = "com.guardphone.agent"  # the macOS preference domain (agent/managed.py reads it)
REGISTRY_KEY = "Software\\Policies\\guardphone"  # agent/managed.py WINDOWS_KEY
NAMESPACE = uuid.UUID("6f1d3c52-61b1-4c5c-9d07-0e8a7f0f5a11")  # stable payload UUIDs
PIN_EXAMPLE = "sha256/" + "A" * 43 + "="

# Values for settings without a default: what an organisation typically sets, so the
# example validates and shows the shape.
EXAMPLES: dict[str, Any] = {
    "account.user": "alice",
    "account.domain": "corp.example",
    "sbc.host": "sbc.corp.example",
    "sbc.ca_file": "/etc/guardphone/sbc-ca.pem",
    "sbc.spki_pins": [PIN_EXAMPLE],
    "wireguard.interface": "wg-office",
    "wireguard.registrar": "10.20.0.1",
    "wireguard.profile": "office",
    "portal.url": "https://portal.corp.example",
    "portal.ca_file": "/etc/guardphone/portal-ca.pem",
    "portal.spki_pins": [PIN_EXAMPLE],
    "portal.enrollment_token": "one-time-token-from-IT",
    "event_log": "/var/lib/guardphone/events.db",
    "fraud.state_file": "/var/lib/guardphone/fraud.db",
    "fraud.allow_countries": ["DE", "FR", "GB"],
    "fraud.deny_countries": ["KP"],
    "fraud.business_hours": [7, 20],
    "media.input_device": "Headset Microphone",
    "media.output_device": "Headset",
    "siem": [
        {
            "name": "soc",
            "transport": "tls",
            "host": "siem.corp.example",
            "port": 6514,
            "format": "rfc5424",
            "ca_file": "/etc/guardphone/siem-ca.pem",
            "path": "/",
        }
    ],
}


def example_value(setting: settings.Setting) -> Any:
    value = EXAMPLES.get(setting.key, setting.default)
    if isinstance(value, tuple):
        value = list(value)
    return value


def managed_document() -> dict[str, Any]:
    """Every setting with an example value, nested as the agent reads it, locked."""
    flat = {s.key: example_value(s) for s in settings.TABLE}
    doc = settings.unflatten({k: v for k, v in flat.items() if v is not None})
    return {"locked": True, **doc}


def mobileconfig() -> bytes:
    payload = {
        "PayloadType": DOMAIN,
        "PayloadIdentifier": f"{DOMAIN}.settings",
        "PayloadUUID": str(uuid.uuid5(NAMESPACE, "settings")).upper(),
        "PayloadVersion": 1,
        "PayloadDisplayName": "guardphone settings",
        **managed_document(),
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadIdentifier": f"{DOMAIN}.profile",
        "PayloadUUID": str(uuid.uuid5(NAMESPACE, "profile")).upper(),
        "PayloadVersion": 1,
        "PayloadDisplayName": "guardphone (managed by your organisation)",
        "PayloadScope": "System",
        "PayloadContent": [payload],
    }
    return plistlib.dumps(profile)


def intune_json() -> dict[str, Any]:
    """App configuration as key/type/value entries, one per setting (dotted keys)."""
    entries = []
    for s in settings.TABLE:
        value = example_value(s)
        entry: dict[str, Any] = {"key": s.key, "description": s.help}
        if s.kind == "bool":
            entry["valueBool"] = bool(value)
        elif s.kind == "int":
            entry["valueInteger"] = value
        elif s.kind in ("list", "pair"):
            entry["valueStringArray"] = [str(v) for v in value or []]
        elif s.kind == "objects":
            entry["valueString"] = json.dumps(value or [])
        else:
            entry["valueString"] = "" if value is None else str(value)
        entries.append(entry)
    return {"kind": "guardphone#appConfiguration", "bundleId": DOMAIN, "settings": entries}


def from_intune(config: dict[str, Any]) -> dict[str, Any]:
    """The managed document an Intune configuration stands for (how the agent reads it)."""
    flat: dict[str, Any] = {}
    for entry in config["settings"]:
        kind = settings.BY_KEY[entry["key"]].kind
        if "valueBool" in entry:
            value: Any = entry["valueBool"]
        elif "valueInteger" in entry:
            value = entry["valueInteger"]
        elif "valueStringArray" in entry:
            value = entry["valueStringArray"]
            value = [int(v) for v in value] if kind == "pair" else value
        elif kind == "objects":
            value = json.loads(entry["valueString"])
        elif kind == "float":
            value = float(entry["valueString"])
        else:
            empty = entry["valueString"] == "" and settings.BY_KEY[entry["key"]].default is None
            value = None if empty else entry["valueString"]
        if value is not None:
            flat[entry["key"]] = value
    return {"locked": True, **settings.unflatten(flat)}


def _policy_id(key: str) -> str:
    return "gp_" + key.replace(".", "_")


def _registry_path(key: str) -> tuple[str, str]:
    section, _, leaf = key.rpartition(".")
    path = REGISTRY_KEY + ("\\" + section.replace(".", "\\") if section else "")
    return path, leaf


def admx() -> str:
    policies = []
    for s in settings.TABLE:
        path, leaf = _registry_path(s.key)
        pid = _policy_id(s.key)
        if s.kind == "bool":
            element = (
                f'<boolean id="{pid}_value" valueName="{leaf}">'
                '<trueValue><decimal value="1" /></trueValue>'
                '<falseValue><decimal value="0" /></falseValue></boolean>'
            )
        elif s.kind == "int":
            element = f'<decimal id="{pid}_value" valueName="{leaf}" maxValue="4294967295" />'
        elif s.kind == "enum":
            items = "".join(
                f'<item displayName="$(string.{pid}_{c})"><value><string>{escape(c)}</string>'
                "</value></item>"
                for c in s.choices
            )
            element = f'<enum id="{pid}_value" valueName="{leaf}">{items}</enum>'
        elif s.kind in ("list", "pair"):
            element = f'<multiText id="{pid}_value" valueName="{leaf}" />'
        else:  # str, float and objects (JSON) travel as REG_SZ
            element = f'<text id="{pid}_value" valueName="{leaf}" />'
        policies.append(
            f'    <policy name="{pid}" class="Machine" displayName="$(string.{pid})" '
            f'explainText="$(string.{pid}_help)" presentation="$(presentation.{pid})" '
            f'key="{escape(path)}">\n'
            f'      <parentCategory ref="guardphone" />\n'
            f'      <supportedOn ref="windows:SUPPORTED_Windows_10_0" />\n'
            f"      <elements>{element}</elements>\n"
            f"    </policy>"
        )
    body = "\n".join(policies)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<policyDefinitions xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" revision="1.0" '
        'schemaVersion="1.0" xmlns="http://schemas.microsoft.com/GroupPolicy/2006/07/PolicyDefinitions">\n'
        "  <policyNamespaces>\n"
        '    <target prefix="guardphone" namespace="Guardphone.Policies.Agent" />\n'
        '    <using prefix="windows" namespace="Microsoft.Policies.Windows" />\n'
        "  </policyNamespaces>\n"
        '  <resources minRequiredRevision="1.0" />\n'
        "  <categories>\n"
        '    <category name="guardphone" displayName="$(string.guardphone)" />\n'
        "  </categories>\n"
        f"  <policies>\n{body}\n  </policies>\n"
        "</policyDefinitions>\n"
    )


def adml() -> str:
    strings = ['      <string id="guardphone">guardphone</string>']
    presentations = []
    for s in settings.TABLE:
        pid = _policy_id(s.key)
        note = " (security setting: users cannot change it while locked)" if s.security else ""
        strings.append(f'      <string id="{pid}">{escape(s.key)}</string>')
        strings.append(f'      <string id="{pid}_help">{escape(s.help + note)}</string>')
        for choice in s.choices:
            strings.append(f'      <string id="{pid}_{choice}">{escape(choice)}</string>')
        if s.kind == "bool":
            control = f'<checkBox refId="{pid}_value">{escape(s.key)}</checkBox>'
        elif s.kind == "int":
            control = f'<decimalTextBox refId="{pid}_value">{escape(s.key)}</decimalTextBox>'
        elif s.kind == "enum":
            control = f'<dropdownList refId="{pid}_value">{escape(s.key)}</dropdownList>'
        elif s.kind in ("list", "pair"):
            control = f'<multiTextBox refId="{pid}_value">{escape(s.key)}</multiTextBox>'
        else:
            control = f'<textBox refId="{pid}_value"><label>{escape(s.key)}</label></textBox>'
        presentations.append(f'      <presentation id="{pid}">{control}</presentation>')
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<policyDefinitionResources xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" revision="1.0" '
        'schemaVersion="1.0" xmlns="http://schemas.microsoft.com/GroupPolicy/2006/07/PolicyDefinitions">\n'
        "  <displayName>guardphone</displayName>\n"
        "  <description>guardphone softphone policies</description>\n"
        "  <resources>\n"
        "    <stringTable>\n" + "\n".join(strings) + "\n    </stringTable>\n"
        "    <presentationTable>\n" + "\n".join(presentations) + "\n    </presentationTable>\n"
        "  </resources>\n"
        "</policyDefinitionResources>\n"
    )


def settings_markdown() -> str:
    """docs/settings.md: every setting, for IT (regenerated by `make mdm`; a test checks it)."""
    rows = [
        "# guardphone settings",
        "",
        "Generated from the settings table (`agent/config.py`) by `make mdm`; do not edit.",
        "Security settings set by the organisation with `locked` (the default) cannot be",
        "changed by the user. Windows: `HKLM\\Software\\Policies\\guardphone`, a subkey per",
        "section. macOS: the `com.guardphone.agent` preference domain. Linux:",
        "`/etc/guardphone/managed.json`.",
        "",
        "| setting | kind | default | security | what it does |",
        "|---|---|---|---|---|",
    ]
    for st in settings.TABLE:
        default = "(required)" if st.required else json.dumps(st.default)
        kind = f"one of {', '.join(st.choices)}" if st.choices else st.kind
        security = "yes" if st.security else "no"
        secret = " Never shown." if st.secret else ""
        rows.append(f"| `{st.key}` | {kind} | `{default}` | {security} | {st.help}{secret} |")
    return "\n".join(rows) + "\n"


def _json_bytes(document: Any) -> bytes:
    return (json.dumps(document, indent=2) + "\n").encode()


def write_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "en-US").mkdir(exist_ok=True)
    files = {
        out / "guardphone.mobileconfig": mobileconfig(),
        out / "guardphone.admx": admx().encode(),
        out / "en-US" / "guardphone.adml": adml().encode(),
        out / "intune-app-configuration.json": _json_bytes(intune_json()),
        out / "managed.json": _json_bytes(managed_document()),
    }
    for path, data in files.items():
        path.write_bytes(data)
    return list(files)


if __name__ == "__main__":
    for written in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "build/mdm")):
        print(written)
    docs = Path(__file__).parents[1] / "docs" / "settings.md"
    docs.write_text(settings_markdown())
    print(docs)
