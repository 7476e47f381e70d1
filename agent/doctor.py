"""`guardphone doctor`: everything the agent depends on, checked in one go, each with what
was found and a plain fix. For the helpdesk on the phone and for MDM scripts (`--json`);
the exit code is non-zero when anything blocks calling. It observes the paths (a TLS probe
of the SBC, a look at the tunnel) but never registers.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent import keystore, managed, material, settings
from agent.certwatch import CertWatch
from agent.config import AgentConfig, ConfigError
from agent.gate import decide
from agent.reasons import Refused

PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclass(frozen=True)
class Finding:
    name: str
    result: str  # pass | warn | fail
    detail: str
    fix: str = ""
    blocks_calls: bool = False


def examine(config_path: Path) -> list[Finding]:
    found: list[Finding] = []
    try:
        effective = settings.load(config_path, managed.open_source())
    except ConfigError as exc:
        fix = "Correct the named setting, or ask IT to fix the managed configuration."
        return [Finding("Configuration", FAIL, str(exc), fix, True)]
    cfg = effective.config
    source = effective.managed_by or "none (not managed)"
    found.append(Finding("Configuration", PASS, f"valid; managed by {source}"))
    try:
        store = keystore.OsKeychain()
    except keystore.KeychainError as exc:
        fix = "Log in to the desktop session (the keychain unlocks with it)."
        found.append(Finding("Keychain", FAIL, str(exc), fix, True))
        return found
    found.append(Finding("Keychain", PASS, store.backend_name))
    try:
        tls = material.load(cfg, store)
    except Refused as exc:
        fix = "Enroll this device (`guardphone enroll`) or ask the helpdesk."
        found.append(Finding("Device certificate", FAIL, exc.reason.text, fix, True))
        return found
    watch = CertWatch(tls.cert_pem)
    warning = watch.warning()
    ends = f"valid until {watch.summary.not_after:%Y-%m-%d}, serial {watch.summary.serial}"
    if warning:
        found.append(Finding("Device certificate", WARN, ends, str(warning["reason"])))
    else:
        found.append(Finding("Device certificate", PASS, ends))
    found += _tools(cfg)
    found += _paths(cfg, tls)
    found += _portal(cfg, store)
    found += _siem(cfg)
    return found


def _tools(cfg: AgentConfig) -> list[Finding]:
    if "wireguard" not in cfg.paths:
        return []
    if shutil.which("wg"):
        return [Finding("wireguard-tools", PASS, shutil.which("wg") or "wg")]
    only = cfg.paths == ("wireguard",)
    fix = "Install wireguard-tools (IT's package includes it)."
    return [Finding("wireguard-tools", FAIL, "`wg` is not installed", fix, only)]


def _paths(cfg: AgentConfig, tls: Any) -> list[Finding]:
    from agent.cli_records import open_fraud_guard
    from agent.observe import PathObserver
    from agent.why import FAIL as WHY_FAIL
    from agent.why import Situation, explain

    seen = PathObserver(cfg).observe(tls, probe_sbc=True, include_sbc=True)
    verdict = decide(cfg, seen)
    guard = open_fraud_guard(cfg)
    suspended = guard.suspended
    guard.close()
    situation = Situation(verdict, seen, "-", None, False, None, suspended, cfg.account_id)
    found = []
    for check in explain(cfg, situation):
        if check.name in ("Device certificate", "Registered with the company SBC"):
            continue  # checked above; doctor never registers
        result = {"pass": PASS, WHY_FAIL: FAIL}.get(check.result, WARN)
        blocks = check.failed and bool(suspended) and "suspended" in check.name
        found.append(Finding(check.name, result, check.observed, check.fix, blocks))
    if not verdict.allowed:
        reason = verdict.reasons[0]
        found.append(Finding("Protected path", FAIL, reason.text, "", True))
    else:
        found.append(Finding("Protected path", PASS, f"calls would use {verdict.path}"))
    return found


def _portal(cfg: AgentConfig, store: keystore.SecretStore) -> list[Finding]:
    if cfg.portal is None:
        return []
    from agent.enroll import EnrollError, request_pinned
    from agent.fleet import AGENT_VERSION, FleetLink, summary
    from agent.orders import version_tuple

    found = []
    try:
        status, _, _ = request_pinned(
            cfg.portal.url.rstrip("/") + "/openapi.json",
            material.read_ca(cfg.portal.ca_file),
            cfg.portal.spki_pins,
            "GET",
            b"",
            {},
        )
        found.append(Finding("Portal", PASS, f"reachable, key pinned (HTTP {status})"))
    except EnrollError as exc:
        fix = "Reports wait in the outbox until the portal is back; tell IT if it lasts."
        found.append(Finding("Portal", WARN, str(exc), fix))
    link = FleetLink(cfg, store, cfg.event_log or _default_log())
    facts = summary(link)
    link.stop()
    if link.enrolled:
        queued = facts["queued_reports"] + facts["events_not_yet_sent"]
        detail = f"{queued} item(s) waiting; last contact {facts['last_contact']}"
        found.append(Finding("Portal outbox", PASS if queued < 100 else WARN, detail))
        minimum = facts.get("min_agent_version")
        if minimum and version_tuple(AGENT_VERSION) < version_tuple(minimum):
            policy = link.policy
            blocks = policy is not None and policy.below_min_version == "refuse"
            detail = f"guardphone {AGENT_VERSION} is below the required {minimum}"
            fix = "Install the update IT provides."
            found.append(Finding("Version", FAIL if blocks else WARN, detail, fix, blocks))
        else:
            found.append(Finding("Version", PASS, f"guardphone {AGENT_VERSION}"))
    return found


def _siem(cfg: AgentConfig) -> list[Finding]:
    if not cfg.siem:
        return []
    from agent.cli_records import open_forwarder, open_log

    log = open_log(cfg)
    forwarder = open_forwarder(cfg, log)
    assert forwarder is not None
    rows = forwarder.status()
    forwarder.close()
    log.close()
    found = []
    for row in rows:
        lag = int(row.get("lag", 0))
        result = PASS if lag == 0 else WARN
        detail = f"{row['target']}: {lag} event(s) waiting" + (
            f" ({row['last_error']})" if row.get("last_error") else ""
        )
        found.append(
            Finding(
                "SIEM forwarding",
                result,
                detail,
                "" if lag == 0 else "It catches up once the SIEM answers.",
            )
        )
    return found


def _default_log() -> Path:
    from agent.cli_records import default_log_path

    return default_log_path()


def as_json(found: list[Finding]) -> dict[str, Any]:
    return {
        "ok": not any(f.blocks_calls for f in found),
        "checks": [asdict(f) for f in found],
    }


def as_text(found: list[Finding]) -> str:
    marks = {PASS: "ok  ", WARN: "warn", FAIL: "FAIL"}
    lines = []
    for f in found:
        lines.append(f"[{marks[f.result]}] {f.name}: {f.detail}")
        if f.fix and f.result != PASS:
            lines.append(f"       fix: {f.fix}")
    blocked = [f.name for f in found if f.blocks_calls]
    lines.append(
        "Calls are blocked by: " + ", ".join(blocked) if blocked else "Nothing blocks calling."
    )
    return "\n".join(lines)
