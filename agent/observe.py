"""Collect what the gate decides on, from the tunnel adapters. Every error becomes a reason.

The observer keeps the little memory the gate needs: when bytes last arrived from the
WireGuard peer (rx counter changes), and the last SBC probe (re-run on network changes and
before each registration, since it costs a TLS handshake).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import psutil

from agent.config import AgentConfig
from agent.gate import Observations, SbcSeen, WireGuardSeen
from agent.reasons import Reason
from agent.sip import TlsMaterial
from tunnel.route import Route, RouteError, RouteTable
from tunnel.sbc import ProbeResult, ProbeTarget, probe
from tunnel.wireguard import Peer, WireGuard, WireGuardError

log = logging.getLogger(__name__)
DSCP_CS3 = 24

Prober = Callable[[ProbeTarget], ProbeResult]


def link_is_up(iface: str) -> bool | None:
    stats = psutil.net_if_stats().get(iface)
    return None if stats is None else bool(stats.isup)


class PathObserver:
    def __init__(
        self,
        config: AgentConfig,
        wireguard: WireGuard | None = None,
        routes: RouteTable | None = None,
        prober: Prober = probe,
        link_state: Callable[[str], bool | None] = link_is_up,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._cfg = config
        self._wg = wireguard or WireGuard()
        self._routes = routes or RouteTable()
        self._probe = prober
        self._link = link_state
        self._clock = clock
        self._sleep = sleep
        self._rx: tuple[int, float] | None = None  # (rx bytes, when they last changed)
        self._sbc: SbcSeen | None = None

    def observe(
        self, material: TlsMaterial, probe_sbc: bool, include_sbc: bool = True
    ) -> Observations:
        """Look at the configured paths. `include_sbc=False` leaves the SBC alone: while the
        tunnel carries SIP, nothing (not even a probe) goes to the internet SBC."""
        now = self._clock()
        wg = self._wireguard(now) if "wireguard" in self._cfg.paths else None
        sbc = None
        if "sbc_mtls" in self._cfg.paths and include_sbc:
            if probe_sbc or self._sbc is None:
                self._sbc = self._probe_sbc(material, now)
            sbc = self._sbc
        return Observations(now, wg, sbc)

    def forget_sbc(self) -> None:
        """The SBC path must be proven again (the connection to it dropped)."""
        self._sbc = None

    def _wireguard(self, now: float) -> WireGuardSeen:
        wg = self._cfg.wireguard
        assert wg is not None  # config validation guarantees it when the path is allowed
        name = wg.interface
        try:
            link = self._link(name)
            state = self._wg.show(name)
        except WireGuardError as exc:
            self._rx = None
            return WireGuardSeen(name, error=Reason(exc.code, str(exc)))
        except Exception as exc:
            log.exception("observing the tunnel failed")
            return WireGuardSeen(
                name, error=Reason("observe_failed", f"Tunnel check failed: {exc}")
            )
        try:
            route = self._routes.get(wg.registrar)
        except RouteError:
            # No route at all (typically: the tunnel is down and took its routes with it).
            route = Route(wg.registrar, "", None, None)
        peers = [p for p in state.peers if any(_covers(a, wg.registrar) for a in p.allowed_ips)]
        if not peers:
            return WireGuardSeen(
                name,
                link_up=link,
                route_device=route.device,
                route_source=route.source,
                error=Reason("wg_no_peer", f"The tunnel {name} has no peer for {wg.registrar}."),
            )
        peer = peers[0]
        if self._rx is None:
            # First sight: the handshake is the last sign of life we know of. If that is
            # already too old to call the peer alive, watch one keepalive interval for bytes.
            self._rx = (peer.rx_bytes, float(peer.latest_handshake))
            if (
                peer.keepalive_s
                and peer.latest_handshake
                and (now - peer.latest_handshake > wg.silence_max_s)
            ):
                self._sleep(min(peer.keepalive_s + 0.3, float(wg.silence_max_s)))
                peer = self._again(name, peer)
                now = self._clock()
        if self._rx[0] != peer.rx_bytes:
            self._rx = (peer.rx_bytes, now)  # any new byte from the peer is a sign of life
        return WireGuardSeen(
            name,
            link_up=link,
            latest_handshake=float(peer.latest_handshake),
            last_heard=self._rx[1],
            route_device=route.device,
            route_source=route.source,
            keepalive_s=peer.keepalive_s,
        )

    def _again(self, name: str, before: Peer) -> Peer:
        try:
            peers = self._wg.show(name).peers
        except WireGuardError:
            return before
        return next((p for p in peers if p.public_key == before.public_key), before)

    def _probe_sbc(self, material: TlsMaterial, now: float) -> SbcSeen:
        cfg = self._cfg
        try:
            route = self._routes.get(_resolve(cfg.sbc.host))
        except RouteError:
            return SbcSeen(
                error=Reason("no_route", f"This network has no route to the SBC {cfg.sbc.host}.")
            )
        except OSError as exc:
            return SbcSeen(
                error=Reason(
                    "sbc_unresolvable", f"The SBC name {cfg.sbc.host} cannot be resolved ({exc})."
                )
            )
        result = self._probe(
            ProbeTarget(
                cfg.sbc.host,
                cfg.sbc.port,
                cfg.account.domain,
                cfg.account.user,
                material.ca_pem,
                material.cert_pem,
                material.key_pem,
                cfg.sbc.spki_pins,
                dscp=DSCP_CS3 if cfg.media.qos else None,
            )
        )
        log.info("sbc probe: %s %s", result.code, result.latency_ms)
        return SbcSeen(
            None, result.ok, result.code, result.detail, now, route.source, _egress(route)
        )


def _egress(route: Route) -> str:
    """The interface sockets must be bound to for this route.

    For one of our own addresses the kernel answers "local ... dev lo", but a socket bound
    to lo cannot reach an address that lives on another interface: bind to its owner.
    """
    if route.kind == "local" and route.source:
        for name, addrs in psutil.net_if_addrs().items():
            if any(a.address == route.source for a in addrs):
                return str(name)
    return route.device


def _resolve(host: str) -> str:
    import socket

    return str(socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)[0][4][0])


def _covers(allowed: str, address: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(allowed, strict=False)
    except ValueError:
        return False
