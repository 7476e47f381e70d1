"""What the tray shows, derived from the agent's states. Plain Python (no Qt), so every state
can be tested quickly; the widgets only draw what this says."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

# Worst last: a change to a later kind is "worse" and gets a notification.
KINDS = (
    "registered_wireguard",
    "registered_sbc",
    "checking",
    "update_required",
    "refused",
    "suspended",
)
PATH_NAMES = {"wireguard": "the office tunnel", "sbc_mtls": "the company SBC (mutual TLS)"}


@dataclass(frozen=True)
class Status:
    kind: str
    headline: str  # a few words: the tooltip's first line and the notification title
    detail: str = ""  # the reason, in the agent's words
    path: str | None = None
    advice: str = ""  # e.g. the organisation recommends an update: shown whatever the state

    @property
    def can_call(self) -> bool:
        return self.kind in ("registered_wireguard", "registered_sbc")

    @property
    def tooltip(self) -> str:
        lines = [f"guardphone: {self.headline}", self.detail, self.advice]
        return "\n".join(line for line in lines if line)

    def worse_than(self, other: Status) -> bool:
        return KINDS.index(self.kind) > KINDS.index(other.kind)


STARTING = Status("checking", "Checking the connection…")


def status_after(current: Status, state: dict[str, Any]) -> Status:
    """The tray's status once the agent reported `state`; advice (an update the
    organisation recommends) stays until the app restarts."""
    if state.get("state") == "update_recommended":
        return replace(current, advice=f"Update recommended: {state.get('reason', '')}")
    new = _status_after(current, state)
    return replace(new, advice=current.advice) if current.advice and not new.advice else new


def _status_after(current: Status, state: dict[str, Any]) -> Status:
    name = state.get("state")
    reason = str(state.get("reason", ""))
    code = state.get("code")
    if name == "registered":
        path = str(state.get("path"))
        kind = "registered_wireguard" if path == "wireguard" else "registered_sbc"
        return Status(kind, f"Ready to call over {PATH_NAMES.get(path, 'TLS')}", "", path)
    if name in ("checking", "connecting"):
        if current.kind in ("suspended", "update_required"):
            return current
        return Status("checking", "Checking the connection…")
    if name == "fraud_suspended" or code == "fraud_suspended":
        return Status(
            "suspended",
            "Suspended for suspected fraud",
            "Calls are suspended for suspected fraud: contact the helpdesk. "
            "Emergency numbers still work.",
        )
    if code == "update_required":
        return Status("update_required", "Update required", reason)
    if name in ("refused", "unregistered"):
        if name == "unregistered" and current.kind in ("suspended", "update_required"):
            return current
        return Status("refused", "Calls paused", reason)
    return current


def notification(before: Status, after: Status) -> tuple[str, str] | None:
    """(title, text) when things got worse, e.g. the tunnel went down; otherwise None."""
    if not after.worse_than(before):
        return None
    return after.headline, after.detail or after.headline


def security_line(security: dict[str, Any], interface: str | None, sbc: str) -> str:
    """What protected a call, as observed on it: signaling, media, path. Never more than
    the facts say (SDES keys are visible to the SBC: "hop by hop", not "end to end")."""
    sig = security.get("signaling") or {}
    med = security.get("media") or {}
    parts = []
    if sig:
        parts.append(f"Signaling: {sig.get('tls_version', 'TLS')} ({sig.get('cipher', '?')})")
    else:
        parts.append("Signaling: unknown")
    if med.get("srtp"):
        parts.append(
            f"Media: SRTP {med.get('crypto_suite') or ''} (encrypted {med.get('scope')})".replace(
                "  ", " "
            )
        )
    else:
        parts.append("Media: not confirmed encrypted")
    if med.get("sent_to"):
        where = "the company SBC's media relay" if med.get("via_sbc") else "the other phone"
        parts.append(f"Audio to {where} {med['sent_to']}")
    path = security.get("path")
    if path == "wireguard":
        parts.append(f"Path: WireGuard {interface or ''}".rstrip())
    elif path == "sbc_mtls":
        parts.append(f"Path: mutual TLS to the company SBC {sbc}")
    return " · ".join(parts)


def dial_target(text: str, domain: str) -> str:
    """What to dial for what the user typed: numbers go to the fraud guard as typed (it
    normalises them); a colleague's name becomes sip:name@company-domain."""
    from agent.numbers import is_phone_number

    text = text.strip()
    if not text or is_phone_number(text) or text.startswith(("sip:", "sips:")):
        return text
    return f"sip:{text}" if "@" in text else f"sip:{text}@{domain}"
