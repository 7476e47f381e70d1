"""Answers "why can't I call?": every check the gate makes, with what was last seen and a fix.

Pure: built from the configuration, the last observations and the supervisor's state, so the
tray app's "why" view, `guardphone status` and posture reports can all say the same thing.
Checks run in the gate's order; after the first failure on a path, the later checks of that
path are "not checked" rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.config import AgentConfig
from agent.gate import (
    SBC_PROBE_MAX_AGE_S,
    Observations,
    SbcSeen,
    Verdict,
    WireGuardSeen,
    decide,
)
from agent.reasons import Reason

if TYPE_CHECKING:
    from agent.service import Softphone

PASS, FAIL, UNKNOWN = "pass", "fail", "unknown"

# Plain fixes by reason code; the observation itself says what was seen.
FIXES = {
    "server_cert_untrusted": "This network may be intercepting connections: use another "
    "network (a phone hotspot) or the office tunnel.",
    "server_name_mismatch": "This network redirects connections: use another network or the "
    "office tunnel.",
    "server_cert_expired": "The company SBC's certificate needs renewing: tell the helpdesk.",
    "pin_mismatch": "The SBC presented a key your organisation did not pin: use another "
    "network and tell the helpdesk.",
    "sbc_unreachable": "Check that you are online (open a web page); hotel networks may need "
    "you to accept their terms first.",
    "sbc_timeout": "The network is slow or blocks the SBC's port: try another network.",
    "route_bypasses_tunnel": "Another VPN or network setting takes the route to the office: "
    "disconnect other VPNs, then reconnect the office tunnel.",
    "wg_handshake_stale": "The office does not answer on the tunnel: reconnect it; if that "
    "does not help, the network may block it.",
    "wg_peer_silent": "The office stopped answering on the tunnel: reconnect it.",
    "wg_no_handshake": "The tunnel never reached the office: reconnect it, or try another network.",
    "auth_failed": "Ask the helpdesk to reset your SIP password.",
    "client_cert_refused": "Contact the helpdesk to re-enroll this device.",
    "identity_mismatch": "Contact the helpdesk: this device is enrolled for someone else.",
    "fraud_suspended": "Contact the helpdesk: they can resume your account.",
}


@dataclass(frozen=True)
class Check:
    name: str  # what is checked, as a person would say it
    result: str  # pass | fail | unknown
    observed: str  # what was last seen
    fix: str = ""  # what to do about a failure

    @property
    def failed(self) -> bool:
        return self.result == FAIL


@dataclass(frozen=True)
class Situation:
    """What the supervisor knows, beyond the gate's observations."""

    verdict: Verdict
    seen: Observations | None
    certificate: str | None  # "valid until ..." or None when there is none
    certificate_problem: Reason | None
    registered: bool
    registration_failure: Reason | None
    suspended: str | None
    support_reference: str = ""  # a short id the helpdesk can look the device up by


def explain(config: AgentConfig, s: Situation) -> list[Check]:
    checks = [_certificate(s)]
    for path in config.paths:
        if path == "wireguard":
            checks += _wireguard(config, s.seen.wireguard if s.seen else None, s)
        else:
            checks += _sbc(config, s.seen.sbc if s.seen else None, s)
    checks.append(_fraud(s))
    checks.append(_registration(s))
    return checks


def _fix(code: str, s: Situation, default: str = "") -> str:
    text = FIXES.get(code, default)
    if text and "helpdesk" in text and s.support_reference:
        text += f" Reference: {s.support_reference}."
    return text


def _certificate(s: Situation) -> Check:
    name = "Device certificate"
    if s.certificate_problem is not None:
        fix = _fix("client_cert_refused", s)
        return Check(name, FAIL, s.certificate_problem.text, fix)
    if s.certificate is None:
        return Check(name, UNKNOWN, "Not read yet.")
    return Check(name, PASS, s.certificate)


def _wireguard(config: AgentConfig, w: WireGuardSeen | None, s: Situation) -> list[Check]:
    wg = config.wireguard
    if wg is None:
        return [Check("Office tunnel", FAIL, "The office tunnel is not configured.")]
    name = wg.interface
    connect = (
        "Connect to the office tunnel: click Connect."
        if wg.agent_may_connect
        else "Connect to the office tunnel with your VPN client."
    )
    steps = [
        ("Office tunnel connected", ("tunnel_down", "wg_no_peer", "wg_not_observed")),
        ("Tunnel reaches the office", ("wg_no_handshake", "wg_handshake_stale", "wg_peer_silent")),
        ("Calls routed through the tunnel", ("route_bypasses_tunnel", "no_local_address")),
    ]
    if w is None:
        return [Check(steps[0][0], UNKNOWN, f"The tunnel {name} has not been looked at yet.")]
    reason = _first_failure(s, w, config)
    observed_ok = [
        f"{name} is up.",
        _handshake_text(w, s.seen.now if s.seen else None),
        f"The route to {wg.registrar} leaves through {w.route_device} (from {w.route_source}).",
    ]
    failing = None  # the step the gate's reason belongs to (the first, if it is unknown)
    if reason is not None:
        failing = next((i for i, (_, codes) in enumerate(steps) if reason.code in codes), 0)
    out: list[Check] = []
    for i, ((title, _), ok_text) in enumerate(zip(steps, observed_ok, strict=True)):
        if failing is None or i < failing:
            out.append(Check(title, PASS, ok_text))
        elif i == failing and reason is not None:
            first = reason.code in ("tunnel_down", "wg_not_observed")
            out.append(
                Check(title, FAIL, reason.text, connect if first else _fix(reason.code, s, connect))
            )
        else:
            out.append(Check(title, UNKNOWN, "Not checked: an earlier check failed."))
    return out


def _first_failure(s: Situation, w: WireGuardSeen, config: AgentConfig) -> Reason | None:
    """The gate's reason for the tunnel, if the tunnel was refused."""
    if w.error is not None:
        return w.error
    if s.verdict.path == "wireguard":
        return None
    # The gate is pure: ask it about this path alone.
    only = config.model_copy(update={"paths": ("wireguard",)})
    verdict = decide(only, Observations(s.seen.now if s.seen else 0.0, w, None))
    return verdict.reasons[0] if verdict.reasons else None


def _handshake_text(w: WireGuardSeen, now: float | None) -> str:
    if not w.latest_handshake or now is None:
        return "No handshake yet."
    return f"Last handshake {max(0.0, now - w.latest_handshake):.0f} s ago."


def _sbc(config: AgentConfig, sbc: SbcSeen | None, s: Situation) -> list[Check]:
    title = "Company SBC reachable and verified"
    where = f"{config.sbc.host}:{config.sbc.port}"
    if sbc is None:
        if s.verdict.path == "wireguard":
            return [Check(title, UNKNOWN, "Not needed: calls use the office tunnel.")]
        return [Check(title, UNKNOWN, f"The SBC at {where} has not been checked yet.")]
    if sbc.error is not None:
        return [Check(title, FAIL, sbc.error.text, _fix(sbc.error.code, s))]
    if sbc.probe_ok is not True:
        code = sbc.probe_code or "sbc_not_checked"
        return [Check(title, FAIL, sbc.probe_detail or f"{where} was not proven.", _fix(code, s))]
    age = (s.seen.now - sbc.checked_at) if s.seen and sbc.checked_at else None
    if age is not None and age > SBC_PROBE_MAX_AGE_S:
        return [Check(title, UNKNOWN, f"Last proven {age:.0f} s ago; checking again.")]
    return [Check(title, PASS, sbc.probe_detail or f"{where}: certificate and pin verified.")]


def _fraud(s: Situation) -> Check:
    title = "Not suspended for suspected fraud"
    if s.suspended:
        return Check(title, FAIL, f"Suspended: {s.suspended}.", _fix("fraud_suspended", s))
    return Check(title, PASS, "Calls are allowed by the fraud guard.")


def _registration(s: Situation) -> Check:
    title = "Registered with the company SBC"
    if s.registered:
        via = {"wireguard": "the office tunnel", "sbc_mtls": "the company SBC (mutual TLS)"}
        return Check(title, PASS, f"Registered over {via.get(s.verdict.path or '', 'TLS')}.")
    if s.registration_failure is not None:
        failure = s.registration_failure
        return Check(title, FAIL, failure.text, _fix(failure.code, s))
    if not s.verdict.allowed:
        return Check(title, UNKNOWN, "Waits for a protected path.")
    return Check(title, UNKNOWN, "Registering…")


# Reasons that are about this device's own credentials (shown on the certificate check).
CREDENTIAL_CODES = ("device_cert", "client_cert", "credentials", "identity", "keychain")


def situation_of(phone: Softphone) -> Situation:
    """The supervisor's state, as `explain` needs it (read through its public side)."""
    verdict = phone.verdict
    cert = phone.certificate
    problem = next((r for r in verdict.reasons if r.code.startswith(CREDENTIAL_CODES)), None)
    return Situation(
        verdict=verdict,
        seen=phone.last_seen,
        certificate=None
        if cert is None
        else f"Valid until {cert.summary.not_after:%Y-%m-%d} (serial {cert.summary.serial}).",
        certificate_problem=problem,
        registered=phone.registered,
        registration_failure=phone.failure,
        suspended=phone.suspended,
        support_reference=phone.config.account_id,
    )
