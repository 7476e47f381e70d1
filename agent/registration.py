"""The account's registration as pjsip reports it: registered or not, over which TLS, and
why not. Turns transport and registration events into states with plain reasons."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent import calls, reasons
from agent.reasons import Reason
from agent.sip import RegistrationChanged, TlsFacts, TransportChanged


class Registration:
    def __init__(self, emit: Callable[[dict[str, Any]], None]) -> None:
        self._emit = emit
        self.registered = False
        self.tls: TlsFacts | None = None
        self.failure: Reason | None = None
        # Set while the agent renews the connection itself (after a sleep): its closing is
        # then said as that, not as a failure of the SBC.
        self.renewing = False

    def on_transport(self, event: TransportChanged, server: str) -> bool:
        """True when a registered connection to the SBC was lost."""
        if event.connected and event.tls is not None:
            bad_cert = reasons.server_certificate(event.tls, server)
            if bad_cert is not None:
                self.failure = self.failure or bad_cert
                return False
            self.tls = event.tls
            return False
        if event.connected:
            return False
        reason = reasons.transport_failure(event, server, tls_seen=self.tls is not None)
        if self.renewing:
            reason = Reason("renewing", "Renewing the connection to the SBC after a sleep.")
        if self.registered:
            self.registered = False
            self._emit({"state": "unregistered", **reason.as_dict()})
            return True
        if self.failure is None or self.failure.code == reasons.GENERIC_CONNECTION_FAILURE:
            # pjsip reports a cancelled connect before the certificate verdict: keep the more
            # specific reason.
            self.failure = reason
        return False

    def on_registration(
        self,
        event: RegistrationChanged,
        server: str,
        account_id: str,
        user: str,
        path: str | None,
    ) -> None:
        if event.registered:
            self.renewing = False
            if not self.registered:
                self.registered = True
                self._emit(
                    {
                        "state": "registered",
                        "account": account_id,
                        "sbc": server,
                        "path": path,
                        "expires": event.expires,
                        "signaling": calls.signaling_facts(self.tls),
                    }
                )
            return
        if event.code // 100 == 2 and event.expires == 0:
            if self.registered:
                self.registered = False
                self._emit({"state": "unregistered", "reason": "unregistered on request"})
            return
        reason = reasons.registration_failure(event, server, user, self.tls)
        if self.registered:
            self.registered = False
            self._emit({"state": "unregistered", **reason.as_dict()})
        if self.failure is None:
            self.failure = reason
