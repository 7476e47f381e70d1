"""One agent session, assembled the same way for the CLI and the tray app: the settings in
force, the event log (every state is committed to it before it is shown), SIEM forwarding on
its own thread, the fraud guard, and the supervisor on the real SIP engine."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import keystore, managed, settings
from agent.cli_records import open_fraud_guard, open_log, siem_targets
from agent.events import EventLog, event_for
from agent.fleet import FleetLink
from agent.orders import Orders
from agent.reload import ConfigFollower
from agent.service import Emit, Softphone
from agent.siem import BackgroundForwarder
from agent.sip import AudioCheck, SipEngine

Show = Callable[[dict[str, Any]], None]


def logged(show: Show, log: EventLog | None, forwarder: BackgroundForwarder | None) -> Emit:
    """Every state is committed to the event log first, then shown, then forwarded.
    Safe to call from a worker thread: states are shown in the order they were logged."""
    lock = threading.Lock()

    def emit(state: dict[str, Any]) -> None:
        with lock:
            line = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"), **state}
            if log is not None:
                line["seq"] = log.append(*event_for(line), time=line["time"]).seq
            show(line)
        if forwarder is not None:
            forwarder.poke()  # sent from its own thread: a slow SIEM never delays the agent

    return emit


class Session:
    """Owns what a running agent opened; `close` releases it (after the phone stopped)."""

    def __init__(
        self,
        config_path: Path,
        show: Show,
        engine: SipEngine | None = None,
        audio_check: AudioCheck | None = None,
    ) -> None:
        source = managed.open_source()
        self.effective = settings.load(config_path, source)
        config = self.effective.config
        self.log = open_log(config)  # before anything happens: every state is logged
        self.forwarder = (
            BackgroundForwarder(self.log.path, siem_targets(config)) if config.siem else None
        )
        self.emit = logged(show, self.log, self.forwarder)
        self._follower = ConfigFollower(config_path, source, self.effective)
        self._engine = engine
        self._audio_check = audio_check
        self._phone: Softphone | None = None
        self.link: FleetLink | None = None

    @property
    def phone(self) -> Softphone:
        """The supervisor. Raises keystore.KeychainError when there is no usable keychain
        (reported through `emit` by the caller: the log is open by then)."""
        if self._phone is None:
            engine = self._engine
            if engine is None:
                from agent.phone import Pjsua2Engine  # pjsua2 loads only where it is used

                engine = Pjsua2Engine(self._audio_check)
            config = self.effective.config
            store = keystore.OsKeychain()
            orders = None
            if config.portal is not None:
                link = FleetLink(config, store, self.log.path, poll_s=config.portal.poll_interval_s)
                if link.enrolled:  # enrolled through the portal: report to it, obey it
                    link.start()
                    self.link = link
                    orders = Orders(link)
            self._phone = Softphone(
                config,
                store,
                engine,
                self.emit,
                follower=self._follower,
                fraud=open_fraud_guard(config),
                orders=orders,
            )
        return self._phone

    def close(self) -> None:
        if self.link is not None:
            self.link.stop()
        if self.forwarder is not None:
            self.forwarder.stop()
        self.log.close()
