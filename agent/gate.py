"""The registration gate: a pure decision from (config, observations) to a verdict.

Allow via the first configured path whose every fact is present, fresh and good; otherwise
refuse with one reason per path. A fact that is missing, unknown or could not be observed is
never good: the gate fails closed. No I/O here, so it is tested exhaustively.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config import AgentConfig
from agent.reasons import Reason

SBC_PROBE_MAX_AGE_S = 300.0  # a probe older than this no longer proves the path


@dataclass(frozen=True)
class WireGuardSeen:
    """What the observer saw of the tunnel (None = could not be seen)."""

    interface: str
    error: Reason | None = None
    link_up: bool | None = None
    latest_handshake: float | None = None  # epoch seconds; None or 0 = never
    last_heard: float | None = None  # epoch seconds of the last byte received from the peer
    route_device: str | None = None  # the interface the kernel uses towards the registrar
    route_source: str | None = None  # and the local address it would use
    keepalive_s: int | None = None  # the peer's persistent keepalive; None = off


@dataclass(frozen=True)
class SbcSeen:
    error: Reason | None = None
    probe_ok: bool | None = None
    probe_code: str | None = None
    probe_detail: str | None = None
    checked_at: float | None = None  # epoch seconds of the probe
    route_source: str | None = None
    route_device: str | None = None


@dataclass(frozen=True)
class Observations:
    now: float  # epoch seconds
    wireguard: WireGuardSeen | None = None
    sbc: SbcSeen | None = None


@dataclass(frozen=True)
class Verdict:
    path: str | None  # "wireguard" | "sbc_mtls" | None (refused)
    local_address: str | None = None
    server: tuple[str, int] | None = None
    reasons: tuple[Reason, ...] = ()
    interface: str | None = None  # SIP and media sockets are bound to it

    @property
    def allowed(self) -> bool:
        return self.path is not None

    def same_route(self, other: Verdict) -> bool:
        return (self.path, self.local_address, self.server, self.interface) == (
            other.path,
            other.local_address,
            other.server,
            other.interface,
        )


# Before the first look, and whenever what was seen no longer counts.
NOT_CHECKED = Verdict(
    None, reasons=(Reason("not_checked", "The protected path has not been checked yet."),)
)


def decide(config: AgentConfig, seen: Observations) -> Verdict:
    reasons: list[Reason] = []
    for path in config.paths:
        check = _wireguard if path == "wireguard" else _sbc
        verdict_or_reason = check(config, seen)
        if isinstance(verdict_or_reason, Verdict):
            return verdict_or_reason
        reasons.append(verdict_or_reason)
    return Verdict(None, reasons=tuple(reasons))


def _wireguard(config: AgentConfig, seen: Observations) -> Verdict | Reason:
    wg = config.wireguard
    if wg is None:
        return Reason("wg_not_configured", "The office tunnel is not configured.")
    w = seen.wireguard
    name = wg.interface
    if w is None:
        return Reason("wg_not_observed", f"The state of the office tunnel {name} is unknown.")
    if w.error is not None:
        return w.error
    if w.link_up is not True:
        how = "run `guardphone tunnel up`" if wg.agent_may_connect else "use your VPN client"
        return Reason("tunnel_down", f"The office tunnel {name} is down: connect to it ({how}).")
    if not w.latest_handshake:
        return Reason(
            "wg_no_handshake",
            f"The office tunnel {name} has never reached the office (no handshake).",
        )
    age = seen.now - w.latest_handshake
    if age > wg.handshake_max_age_s:
        return Reason(
            "wg_handshake_stale",
            f"The office tunnel {name} has not reached the office for {age:.0f} s.",
        )
    heard = max(w.last_heard or 0.0, w.latest_handshake)
    # Silence means something only when the peer is meant to speak (persistent keepalive);
    # without it an idle tunnel is quiet and only the handshake age can tell.
    if w.keepalive_s is not None and seen.now - heard > wg.silence_max_s:
        return Reason(
            "wg_peer_silent",
            f"The office stopped answering on the tunnel {name} {seen.now - heard:.0f} s ago.",
        )
    if w.route_device != name:
        return Reason(
            "route_bypasses_tunnel",
            f"The route to the office SBC {wg.registrar} leaves through "
            f"{w.route_device or 'no interface at all'}, not the tunnel {name}: calls stay "
            "paused.",
        )
    if not w.route_source:
        return Reason("no_local_address", f"The tunnel {name} has no local address.")
    return Verdict("wireguard", w.route_source, (wg.registrar, wg.port), interface=name)


def _sbc(config: AgentConfig, seen: Observations) -> Verdict | Reason:
    where = f"{config.sbc.host}:{config.sbc.port}"
    s = seen.sbc
    if s is None:
        return Reason("sbc_not_checked", f"The path to the SBC at {where} was not checked yet.")
    if s.error is not None:
        return s.error
    if s.probe_ok is not True or s.checked_at is None:
        return Reason(
            s.probe_code or "sbc_not_checked",
            s.probe_detail or f"The path to the SBC at {where} was not proven.",
        )
    if seen.now - s.checked_at > SBC_PROBE_MAX_AGE_S:
        return Reason("sbc_check_stale", f"The last check of the SBC at {where} is too old.")
    if not s.route_source or not s.route_device:
        return Reason("no_route", f"There is no route to the SBC at {where}.")
    return Verdict(
        "sbc_mtls", s.route_source, (config.sbc.host, config.sbc.port), interface=s.route_device
    )
