"""The supervisor: checks, registers, places and answers calls, and reports every state.

It owns the decisions (refuse, register, hang up) and turns what the SIP engine reports into
states with plain reasons. It never talks to PJSIP directly, so it is unit-tested with a fake
engine. Every state is handed to `emit` as one JSON-ready dict.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psutil

from agent import enroll, keystore, material
from agent.calling import CallControls
from agent.calls import CallBook
from agent.certwatch import CertWatch
from agent.config import AgentConfig
from agent.fraud import FraudGuard
from agent.gate import NOT_CHECKED, Observations, Verdict, decide
from agent.leaving import Leaving
from agent.numbers import Number
from agent.observe import PathObserver
from agent.reasons import Reason, Refused
from agent.registration import Registration
from agent.reload import ConfigFollower
from agent.sip import (
    AudioDevice,
    SipEngine,
    SipEvent,
    TlsFacts,
    TlsMaterial,
)
from agent.why import Situation, situation_of

if TYPE_CHECKING:
    from agent.orders import Orders
from tunnel.netwatch import NetEvents, NetWatch, open_watch

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]
REGISTER_TIMEOUT_S = 15.0
IDLE_POLL_S = 1.0  # pjsip wakes us earlier for its own timers and for any packet
# While SIP runs, pjsip's wait is cut to this so a netlink change is acted on within it
# (pjsip's poll cannot wait on our netlink socket): the bound on path-loss reaction time.
# During a call the bound is what matters (the call must end at once), and pjsip wakes
# for every media packet anyway, but not once the link is gone: then the short tick is
# what notices.
TICK_S = 0.25
TICK_IN_CALL_S = 0.02
# Registered, no call, and nothing from SIP for this long: no transaction is waiting on
# pjsip's timers, so the agent sleeps on its SIP connection and netlink instead of the tick.
QUIET_S = 2.0
RECHECK_WG_S = 1.0  # handshake age and peer silence need a look every second
RECHECK_SBC_S = 30.0
CONFIG_POLL_S = 1.0  # even when idle and refused, a changed configuration is noticed
# The pump runs at least every second or two; a gap this long on a clock that counts sleep
# means the laptop slept (or the process was stopped): the connection to the SBC may be dead
# without a word (the NAT forgot it, the SBC gave up), so the path is proven again and SIP
# gets a fresh connection at once instead of after TCP's own minutes-long timeout.
ASLEEP_S = 10.0


def awake_time() -> float:
    """A clock that keeps counting while the machine sleeps (CLOCK_MONOTONIC does not)."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(boottime) if boottime is not None else time.monotonic()


# Refusals decided by policy, not by the path: the path still works, so the agent leaves the
# SBC properly (un-REGISTER) instead of dropping everything without a word.
POLICY_REFUSALS = ("fraud_suspended", "update_required", "reenroll_required")


class Softphone(CallControls, Leaving):
    """One account on one SIP engine, driven from a single thread."""

    def __init__(
        self,
        config: AgentConfig,
        store: keystore.SecretStore,
        engine: SipEngine,
        emit: Emit,
        observer: PathObserver | None = None,
        netwatch: NetWatch | None = None,
        clock: Callable[[], float] = time.monotonic,
        follower: ConfigFollower | None = None,
        fraud: FraudGuard | None = None,
        orders: Orders | None = None,
        awake_clock: Callable[[], float] = awake_time,
    ) -> None:
        self.config = config
        self.orders = orders
        self._follower = follower
        self._fraud = fraud
        self._dialed: dict[int, Number] = {}
        # Set when this session exists to dial an emergency number: a fraud suspension must
        # never block or delay that (the guard still refuses every other number).
        self.emergency_dial = False
        self._cert: CertWatch | None = None
        self._store = store
        self._engine = engine
        self._emit = emit
        self._observer = observer
        self._netwatch = netwatch
        self._clock = clock
        self._awake_clock = awake_clock
        self._last_pump_at: float | None = None
        self._reconnect_after_check = False  # woke from a sleep: see ASLEEP_S
        self._registration = Registration(emit)
        self._calls = CallBook(emit, clock)
        self._auto_answer = False
        self._running = False  # the SIP engine is started (transports exist)
        self._leaving = False  # leave() sent the un-REGISTER; stop() finishes
        self._material: TlsMaterial | None = None
        self._verdict = NOT_CHECKED
        self._sip_key: tuple[Any, ...] | None = None  # what sip_sockets() was found for
        self._last_sip_event = 0.0
        self._quiet: list[int] | None = None  # what _quiet_fds() found, until SIP stirs
        self._sip_fds: list[int] = []
        self._refusal_shown: tuple[str, ...] = ()
        self._last_check = 0.0
        self._recheck_s = RECHECK_WG_S if "wireguard" in config.paths else RECHECK_SBC_S
        self._probe_again = True
        self.server = f"{config.sbc.host}:{config.sbc.port}"
        self.last_seen: Observations | None = None
        # How a due check is run: at once by default; a desktop app replaces this to run
        # `observe` off its UI thread and `conclude` back on it.
        self.request_check: Callable[[bool], Any] = self.check

    # -- checks before anything touches the network ----------------------------------------

    def prepare(self) -> TlsMaterial:
        """Everything that must hold before a single packet is sent; raises Refused."""
        return material.load(self.config, self._store)

    def _enroll(self) -> bool:
        try:
            return enroll.enroll_if_possible(self.config, self._store, self._emit)
        except enroll.EnrollError as exc:
            raise Refused(Reason(exc.code, f"Enrollment failed: {exc}")) from None

    # -- the gate ------------------------------------------------------------------------

    def begin(self) -> None:
        """Everything before the first check: credentials (enrolling a managed device on its
        first run, renewing a certificate that is due), the certificate watch, the observers.
        Touches no SIP; raises Refused."""
        self._emit({"state": "checking", "account": self.config.account_id})
        try:
            try:
                self._material = self.prepare()
            except Refused as exc:
                # A managed device's first run: enroll with the token MDM delivered, go on.
                if exc.reason.code != "credentials_missing" or not self._enroll():
                    raise
                self._material = self.prepare()
            if enroll.renew_if_due(self.config, self._store, self._material.cert_pem, self._emit):
                self._material = self.prepare()
        except Refused as exc:
            self._verdict = Verdict(None, reasons=(exc.reason,))  # what "why" shows
            raise
        self._watch_certificate()
        if self._observer is None:
            self._observer = PathObserver(self.config)
        if self._netwatch is None:
            self._netwatch = open_watch()

    def start(self, timeout_s: float = REGISTER_TIMEOUT_S, wait_for_path: bool = False) -> None:
        """Check, then register once the gate allows a path.

        Returns once registered. Raises Refused when the SBC refuses, when the time runs
        out, or (unless `wait_for_path`) when the gate refuses.
        """
        self.begin()
        self.check(probe=True)
        deadline = self._clock() + timeout_s
        while not self._registration.registered:
            if self._registration.failure is not None:
                raise Refused(self._registration.failure)
            if not self._verdict.allowed and not wait_for_path:
                raise Refused(self._verdict.reasons[0], reported=True)
            remaining = deadline - self._clock()
            if remaining <= 0 and not wait_for_path:
                raise Refused(
                    Reason("sbc_timeout", f"The SBC at {self.server} did not answer in time.")
                )
            self.pump(min(max(remaining, 0.05), 0.5) if not wait_for_path else IDLE_POLL_S)

    def check(self, probe: bool = False) -> Verdict:
        """Observe the paths, decide, and act on the verdict at once."""
        return self.conclude(self.observe(probe))

    def observe(self, probe: bool = False) -> Observations:
        """Look at the paths. Blocking (subprocesses, a TLS probe) but touches no SIP, so a
        desktop app may run it on a worker thread and hand the result to `conclude`."""
        assert self._observer is not None and self._material is not None
        probe = probe or self._probe_again
        self._probe_again = False
        paths, config, observer = self.config.paths, self.config, self._observer
        # The SBC is only probed when it could be chosen: the tunnel is refused or not wanted.
        sbc_first = paths[0] == "sbc_mtls"
        seen = observer.observe(self._material, probe_sbc=probe, include_sbc=sbc_first)
        if not sbc_first and "sbc_mtls" in paths and not decide(config, seen).allowed:
            seen = observer.observe(self._material, probe_sbc=probe, include_sbc=True)
        return seen

    def conclude(self, seen: Observations) -> Verdict:
        """Decide on what was observed and act on it at once (on the SIP thread)."""
        self._last_check = self._clock()
        self.last_seen = seen
        verdict = decide(self.config, seen)
        if self._fraud is not None and self._fraud.suspended and not self.emergency_dial:
            text = f"Calls are suspended for suspected fraud ({self._fraud.suspended})."
            verdict = Verdict(None, reasons=(Reason("fraud_suspended", text),))
        outdated = self.orders.update_required() if self.orders is not None else None
        if outdated is not None and not self.emergency_dial:
            verdict = Verdict(None, reasons=(outdated,))
        if self._material is None:
            return self._verdict  # the certificate ended while the observation ran
        self._apply(verdict)
        return verdict

    @property
    def verdict(self) -> Verdict:
        return self._verdict

    def _apply(self, verdict: Verdict) -> None:
        previous, self._verdict = self._verdict, verdict
        if not verdict.allowed:
            # The refusal is logged first, then acted upon (invariant 4).
            codes = tuple(r.code for r in verdict.reasons)
            first = verdict.reasons[0]
            if codes != self._refusal_shown:
                self._refusal_shown = codes
                self._emit(
                    {
                        "state": "refused",
                        **first.as_dict(),
                        "reasons": [r.as_dict() for r in verdict.reasons],
                    }
                )
            if self._running and first.code in POLICY_REFUSALS:
                self._unregister_and_free(first)  # the path is fine: leave properly
            elif self._running:
                self._teardown("path_lost", "The protected path was lost: calls are paused.")
            return
        self._refusal_shown = ()
        if self._running and verdict.same_route(previous):
            if self._reconnect_after_check:
                self._reconnect_after_check = False
                self._registration.renewing = True
                self._engine.reconnect()
            return
        self._reconnect_after_check = False  # a new route starts on a new connection anyway
        if self._running:
            self._teardown("path_changed", "The protected path changed: reconnecting.")
        assert self._material is not None and verdict.server is not None
        self.server = f"{verdict.server[0]}:{verdict.server[1]}"
        self._emit(
            {
                "state": "connecting",
                "sbc": self.server,
                "path": verdict.path,
                "local_address": verdict.local_address,
            }
        )
        self._registration.failure = None
        self._engine.start(material.engine_settings(self.config, verdict), self._material)
        self._running = True
        self._engine.register()

    @property
    def registered(self) -> bool:
        return self._registration.registered

    @property
    def failure(self) -> Reason | None:
        return self._registration.failure

    @property
    def suspended(self) -> str | None:
        """Why calls are suspended for suspected fraud, or None."""
        return self._fraud.suspended if self._fraud is not None else None

    # -- what the portal decides (agent.orders) --------------------------------------------

    def emit(self, state: dict[str, Any]) -> None:
        self._emit(state)

    @property
    def store(self) -> keystore.SecretStore:
        return self._store

    @property
    def tls(self) -> TlsFacts | None:
        return self._registration.tls

    def situation(self) -> Situation:
        """What `agent.why.explain` needs to answer "why can't I call?"."""
        return situation_of(self)

    @property
    def recheck_s(self) -> float:
        """How often the path must be looked at even when nothing happens."""
        return self._recheck_s

    def network_fd(self) -> int | None:
        """Readable when an interface, address or route changes (None: no such descriptor)."""
        return self._netwatch.fileno() if self._netwatch is not None else None

    def audio_devices(self) -> list[AudioDevice]:
        return self._engine.audio_devices()

    def versions(self) -> dict[str, str]:
        return self._engine.versions()

    @property
    def certificate(self) -> CertWatch | None:
        """The device certificate in use (None before `begin` or after it ended)."""
        return self._cert

    # -- the event loop ------------------------------------------------------------------

    def sip_sockets(self) -> list[int]:
        """The descriptors of our TLS connection(s) to the SBC while registered (found by
        the SBC's port and our local address): the tray app wakes on them, so an incoming
        call rings at once. Looked up again only when the registration or the path changes."""
        verdict = self._verdict
        key = (self.registered, verdict.server, verdict.local_address)
        if key != self._sip_key:
            self._sip_key, self._sip_fds = key, []
            if self.registered and verdict.server is not None:
                port, local = verdict.server[1], verdict.local_address
                self._sip_fds = [
                    c.fd
                    for c in psutil.Process().net_connections(kind="tcp")
                    if c.fd >= 0 and c.raddr and c.raddr.port == port and c.laddr.ip == local
                ]
        return self._sip_fds

    def pump(self, timeout_s: float = IDLE_POLL_S) -> None:
        """Wait for SIP or network events (at most `timeout_s`) and act on them."""
        self._notice_sleep()
        net = NetEvents()
        if self._running:
            events = self._sip_events(timeout_s)
            if self._netwatch is not None:
                net = self._netwatch.drain()
            if self._path_broke(net):
                # The link flapped while SIP waited: what arrived over it (a 200 to a
                # REGISTER, say) no longer counts. Everything that ran over it is gone.
                self._teardown("path_lost", "The protected path was lost: calls are paused.")
                self._verdict = NOT_CHECKED
            else:
                for event in events:
                    self.handle(event)
                if self._calls.active:
                    self._calls.watch_media(self._engine.quality, self._engine.on_hold)
        elif self._netwatch is not None:
            net = self._netwatch.wait(min(timeout_s, self._recheck_s, CONFIG_POLL_S))
        if self._follower is not None:
            self._follow_config()  # first: a fixed configuration revives a refused agent
        if self.orders is not None and self._material is not None:
            self.orders.follow(self)
        if self._material is None:
            return
        if self._certificate_ended():
            return
        if net.changed or self._probe_again or self._clock() - self._last_check >= self._recheck_s:
            self._last_check = self._clock()  # one request per interval, even if it runs late
            self.request_check(net.changed)

    def _notice_sleep(self) -> None:
        now = self._awake_clock()
        slept = None if self._last_pump_at is None else now - self._last_pump_at
        self._last_pump_at = now
        if slept is None or slept < ASLEEP_S or not self._running:
            return
        log.info("awake after %.0f s: proving the path, then a fresh SBC connection", slept)
        self._emit({"state": "resumed", "slept_s": round(slept, 1)})
        self._probe_again = True
        self._reconnect_after_check = True

    def _follow_config(self) -> None:
        assert self._follower is not None
        new, states = self._follower.poll()
        for state in states:
            self._emit(state)
        if new is None:
            return
        # Any change of the effective configuration re-runs the whole gate under it: a
        # stricter setting (a new pin, one path fewer) takes effect at once.
        self.config = new.config
        self._observer = PathObserver(new.config)
        self._recheck_s = RECHECK_WG_S if "wireguard" in new.config.paths else RECHECK_SBC_S
        if self._running:
            self._teardown("config_changed", "The configuration changed: reconnecting.")
        self._verdict = NOT_CHECKED
        try:
            self._material = self.prepare()
        except Refused as exc:
            self._material = None
            self._emit({"state": "refused", **exc.reason.as_dict()})
            return
        self._watch_certificate()
        self.request_check(True)

    def _watch_certificate(self) -> None:
        assert self._material is not None
        self._cert = CertWatch(self._material.cert_pem)
        warning = self._cert.warning()
        if warning:
            self._emit(warning)

    def _certificate_ended(self) -> bool:
        """At the certificate's end, stop at once; until then, warn once a day."""
        if self._cert is None:
            return False
        if not self._cert.expired():
            warning = self._cert.warning()
            if warning:
                self._emit(warning)
            return False
        reason = self._cert.refusal()
        self._emit({"state": "refused", **reason.as_dict()})  # logged, then acted upon
        if self._running:
            self._teardown(reason.code, reason.text)
        self._verdict = Verdict(None, reasons=(reason,))
        self._material, self._cert = None, None  # a renewed certificate needs a new start
        return True

    def _path_broke(self, net: NetEvents) -> bool:
        if not net.down or self._verdict.interface is None:
            return False
        try:
            index = socket.if_nametoindex(self._verdict.interface)
        except OSError:
            return True  # the interface is gone
        return index in net.down or -1 in net.down

    def _sip_events(self, timeout_s: float) -> list[SipEvent]:
        quiet = self._quiet_fds()
        # Whatever the caller's wait, a stale handshake is still refused within its recheck.
        wait = min(timeout_s, self._recheck_s, CONFIG_POLL_S)
        try:
            woken = bool(quiet) and bool(select.select(quiet, [], [], wait)[0])
        except OSError:  # a connection closed under us: tick, and look again
            quiet, woken = [], True
        if quiet:
            events = self._engine.poll(0)
        else:
            tick = TICK_IN_CALL_S if self._calls.active else TICK_S
            events = self._engine.poll(min(timeout_s, tick))
        if events or woken:
            # Something is happening (a transaction, a caller, a stranger's handshake on our
            # listener): tick until it is quiet again, then look for the sockets afresh.
            self._last_sip_event, self._quiet = self._clock(), None
        return events

    def _quiet_fds(self) -> list[int]:
        """What to sleep on while SIP is quiet (see QUIET_S): every TCP socket of ours (the
        connection to the SBC, pjsip's listener) and netlink; empty (tick instead) when busy
        or when the SBC connection or netlink cannot be found."""
        if not self.registered or self._calls.active or self._netwatch is None:
            return []
        if self._clock() - self._last_sip_event < QUIET_S:
            return []
        if self._quiet is None:
            net = self._netwatch.fileno()
            tcp = [c.fd for c in psutil.Process().net_connections(kind="tcp") if c.fd >= 0]
            self._quiet = [*tcp, net] if self.sip_sockets() and net is not None else []
        return self._quiet

    def pump_sip(self, timeout_s: float) -> None:
        """SIP events only (no path checks): for the moments around a shutdown."""
        for event in self._engine.poll(timeout_s):
            self.handle(event)
