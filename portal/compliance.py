"""Is a device fit to call, by its latest posture report? Each problem is named; a fact the
agent reported as unknown counts as a problem (fail closed), said as "unknown"."""

from __future__ import annotations

from agent.schemas import Policy, PostureReport


def version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def problems(report: PostureReport, policy: Policy | None) -> list[str]:
    found = []
    if report.disk.root_encrypted is not True:
        found.append(_say("disk encryption (root)", report.disk.root_encrypted))
    if report.firewall_active is not True:
        found.append(_say("host firewall", report.firewall_active))
    if report.screen_lock is not True:
        found.append(_say("screen lock", report.screen_lock))
    updates = report.os.pending_security_updates
    if updates is None:
        found.append("pending security updates: unknown")
    elif updates > 0:
        found.append(f"{updates} pending security update(s)")
    if report.srtp_mandatory is not True:
        found.append(_say("SRTP mandatory", report.srtp_mandatory))
    if report.sip.plaintext_listener:
        found.append("a SIP listener outside the protected path")
    if report.fraud.suspended:
        found.append(f"suspended for suspected fraud ({report.fraud.suspended})")
    if policy is not None and version_tuple(report.agent_version) < version_tuple(
        policy.min_agent_version
    ):
        found.append(f"agent {report.agent_version} is below {policy.min_agent_version}")
    return found


def _say(what: str, value: bool | None) -> str:
    return f"{what}: unknown" if value is None else f"{what}: off"
