"""The pjsua2 softphone: the only module that talks to PJSIP.

One TLS transport and nothing else (no UDP or TCP SIP transport is ever created), TLS 1.2
with server verification and a pinned cipher list, key material passed as buffers, SRTP
mandatory. pjsua2 is pumped by the thread that calls `start` (threadCnt=0, no media
thread), so idle costs almost nothing; callbacks only append plain events to a list.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import time
from typing import Any

from agent import pjcall, pjfacts
from agent.pjaudio import AudioEnds
from agent.sip import (
    AudioCheck,
    AudioDevice,
    CallEnded,
    CallMediaActive,
    CallQuality,
    CallStateChanged,
    EngineSettings,
    IncomingCall,
    RegistrationChanged,
    SipEvent,
    TlsFacts,
    TlsMaterial,
    TransportChanged,
    UnsolicitedRequest,
)

log = logging.getLogger(__name__)

# IANA ids: ECDHE with AES-GCM only (what OpenSSL 1.0.2 in the wheel offers that is modern).
CIPHERS = (0xC02B, 0xC02C, 0xC02F, 0xC030)
DSCP_EF = 46  # media
DSCP_CS3 = 24  # signaling
# IPPROTO_TCP, TCP_NODELAY: saves a 40 ms delayed-ACK wait per request.
TCP_NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
# Keepalives on the connection to the SBC, more often than home and hotel routers forget an
# idle connection (the lab's: 30 s; real ones from a few minutes): without them a call to
# the laptop finds no NAT mapping and never rings. The kernel sends them (the agent does not
# wake up). pjsip applies at most four socket options and the path's interface binding is
# one of them, so the probe interval and count stay the kernel's; a connection that died
# while the laptop slept is renewed on waking (agent.service.ASLEEP_S).
KEEPALIVE_IDLE_S = 20
TCP_KEEPALIVE = (
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE_S),
)
STATS_EVERY_S = 0.5

_CALL_STATES = {
    1: "calling",
    2: "incoming",
    3: "early",
    4: "connecting",
    5: "confirmed",
    6: "disconnected",
}


class Pjsua2Engine:
    """SipEngine over pjsua2. Not thread-safe: use it from the thread that started it."""

    def __init__(self, audio_check: AudioCheck | None = None) -> None:
        import pjsua2

        self._pj: Any = pjsua2
        self._audio = AudioEnds(self._pj, audio_check or AudioCheck())
        self._sockopt_values: list[Any] = []  # see pjfacts.sock_opts: must outlive the transport
        self._ep: Any = None
        self._acc: Any = None
        self._transport_id: int | None = None
        self._events: list[SipEvent] = []
        self._calls: dict[int, Any] = {}
        self._quality: dict[int, CallQuality] = {}
        self._null_audio = False
        self._clock_running = False  # the null sound device (a 20 ms clock thread) is open
        self._stats_at: dict[int, float] = {}
        self._last_tls: TlsFacts | None = None
        self._unsolicited: set[int] = set()
        self._foreign: set[int] = set()  # handles of TLS connections not from the SBC
        self._sbc_handles: set[int] = set()  # our live connection(s) to the SBC

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, settings: EngineSettings, material: TlsMaterial) -> None:
        pj = self._pj
        engine = self
        self._settings = settings

        class Endpoint(pj.Endpoint):  # type: ignore[misc,name-defined]
            def onTransportState(self, prm: Any) -> None:
                engine._on_transport(prm)

        with pjfacts.stdout_silenced():
            ep = Endpoint()
            ep.libCreate()
        self._ep = ep
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.userAgent = "guardphone"
        cfg.medConfig.hasIoqueue = False  # media sockets on the SIP ioqueue we pump
        cfg.medConfig.threadCnt = 0
        cfg.medConfig.noVad = True  # keep RTP (and so RTCP quality figures) flowing
        cfg.logConfig.level = 1
        cfg.logConfig.consoleLevel = 0
        ep.libInit(cfg)

        tcfg = pj.TransportConfig()
        tcfg.port = 0
        tcfg.boundAddress = settings.bind_address
        tls = tcfg.tlsConfig
        tls.method = pj.PJSIP_TLSV1_2_METHOD
        tls.proto = pj.PJ_SSL_SOCK_PROTO_TLS1_2
        tls.CaBuf = material.ca_pem
        tls.certBuf = material.cert_pem
        tls.privKeyBuf = material.key_pem
        tls.verifyServer = True
        # Our listener (pjsip always opens one) only talks to peers with a certificate from
        # the company CA, i.e. the SBC; anything else is dropped during the handshake.
        tls.verifyClient = True
        tls.requireClientCert = True
        ciphers = pj.IntVector()
        for cipher in CIPHERS:
            ciphers.append(cipher)
        tls.ciphers = ciphers
        tls.sockOptParams.sockOpts, self._sockopt_values = pjfacts.sock_opts(
            pj, (TCP_NODELAY, *TCP_KEEPALIVE), settings.bind_ifindex
        )
        tls.sockOptIgnoreError = False
        if settings.qos:
            pjfacts.set_dscp(pj, tls.qosParams, DSCP_CS3)
            tls.qosIgnoreError = True
        self._transport_id = ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tcfg)
        ep.libStart()

        adm = ep.audDevManager()
        # Without a sound device, the conference bridge needs a clock only while a call has
        # media: the null device's clock thread wakes the CPU 50 times a second, so it runs
        # only then (see _clock_for_calls); a real device closes itself when idle.
        self._null_audio = settings.null_audio or not pjfacts.has_sound_device(adm)
        if self._null_audio:
            adm.setNoDev()
        else:
            pjfacts.choose_devices(adm, settings.input_device, settings.output_device)
        self._material = material

    def register(self) -> None:
        pj = self._pj
        s = self._settings
        engine = self

        class Account(pj.Account):  # type: ignore[misc,name-defined]
            def onRegState(self, prm: Any) -> None:
                engine._on_reg_state(self, prm)

            def onIncomingCall(self, prm: Any) -> None:
                engine._on_incoming(self, prm)

        acfg = pj.AccountConfig()
        acfg.idUri = s.id_uri
        acfg.regConfig.registrarUri = s.registrar_uri
        acfg.regConfig.retryIntervalSec = 30
        # A lost connection (a NAT that forgot us, a laptop that slept) is re-registered
        # within 0-3 s, spread so that a fleet behind one SBC restart does not come back at
        # the same instant; later failures wait retryIntervalSec (pjsua_acc's schedule).
        acfg.regConfig.firstRetryIntervalSec = 1
        acfg.regConfig.randomRetryIntervalSec = 2
        acfg.regConfig.timeoutSec = 300
        acfg.sipConfig.transportId = self._transport_id
        proxies = pj.StringVector()
        proxies.append(s.proxy_uri)
        acfg.sipConfig.proxies = proxies
        creds = pj.AuthCredInfoVector()
        creds.append(pj.AuthCredInfo("digest", s.domain, s.user, 0, self._material.sip_password))
        acfg.sipConfig.authCreds = creds
        # A stable RFC 5626 instance: a re-REGISTER replaces the binding (agent.material).
        acfg.natConfig.sipOutboundUse = 1 if s.instance_id else 0
        acfg.natConfig.sipOutboundInstanceId = s.instance_id
        acfg.natConfig.sipOutboundRegId = "1"
        acfg.natConfig.iceEnabled = False
        acfg.natConfig.sdpNatRewriteUse = 0
        med = acfg.mediaConfig
        med.srtpUse = pj.PJMEDIA_SRTP_MANDATORY
        med.srtpSecureSignaling = 1  # SRTP only over a TLS hop
        keyings = pj.IntVector()
        keyings.append(pj.PJMEDIA_SRTP_KEYING_SDES)
        med.srtpOpt.keyings = keyings
        med.transportConfig.boundAddress = s.bind_address
        med.transportConfig.port = 0
        if s.qos:
            pjfacts.set_dscp(pj, med.transportConfig.qosParams, DSCP_EF)
        # No SO_BINDTOIFINDEX for media: pjsua2 keeps a dangling pointer to the option value
        # in the account config (seen as "127.0.0.1%if32656" in `ss -uap`), so RTP sockets
        # would bind to a random interface. Media binds to the path's address; the gate's
        # route watch tears calls down when the route moves.
        acc = Account()
        acc.create(acfg, True)
        self._acc = acc

    def reconnect(self) -> None:
        """Drop the connection to the SBC and register again on a fresh one (after a sleep:
        the old one may be dead without a word). Calls in progress are re-INVITEd over it."""
        if self._ep is None:
            return
        change = self._pj.IpChangeParam()
        change.restartListener = False
        with contextlib.suppress(Exception):  # nothing registered yet: nothing to renew
            self._ep.handleIpChange(change)

    def unregister(self) -> None:
        if self._acc is not None and self._acc.isValid():
            with contextlib.suppress(Exception):
                self._acc.setRegistration(False)

    def shutdown(self, send: bool = True) -> None:
        """Destroy pjsua2 without waiting on the network.

        send=True: hang up and unregister on the way out (a normal exit).
        send=False: the path is gone, so nothing may be sent: no BYE, no un-REGISTER. The
        sockets are bound to the path's interface, so a dropped Call's hang-up cannot leave
        by another one, and libDestroy runs with PJSUA_DESTROY_NO_NETWORK.
        """
        if self._ep is None:
            return
        ep, self._ep = self._ep, None
        pj = self._pj
        if send:
            with contextlib.suppress(Exception):
                ep.hangupAllCalls()
        self._calls.clear()
        self._audio.close()  # before libDestroy (the recorder's WAV header)
        self._clock_running = False
        self._quality.clear()
        self._stats_at.clear()
        self._foreign.clear()
        self._sbc_handles.clear()
        self._unsolicited.clear()
        gc.collect()  # a Call that outlives libDestroy aborts the process at exit
        if self._acc is not None and send:
            with contextlib.suppress(Exception):
                self._acc.shutdown()
        ep.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG if send else pj.PJSUA_DESTROY_NO_NETWORK)
        self._acc = None
        self._transport_id = None
        self._sockopt_values = []  # the transport is gone: its options' values may go too
        del ep
        gc.collect()  # the Endpoint singleton must be gone before the next start()

    # -- calls -----------------------------------------------------------------------------

    def call(self, uri: str) -> int:
        pj = self._pj
        c = self._new_call(pj.PJSUA_INVALID_ID)
        prm = pj.CallOpParam(True)
        c.makeCall(uri, prm)
        cid = int(c.getId())
        self._calls[cid] = c
        return cid

    def answer(self, call_id: int) -> None:
        prm = self._pj.CallOpParam()
        prm.statusCode = 200
        self._calls[call_id].answer(prm)

    def hangup(self, call_id: int) -> None:
        c = self._calls.get(call_id)
        if c is None:
            return
        self._sample_quality(call_id, c, force=True)
        pjcall.hang_up(self._pj, c)

    def set_mute(self, call_id: int, muted: bool) -> None:
        c = self._calls.get(call_id)
        if c is not None and self._ep is not None:
            pjcall.set_mute(self._pj, self._ep, c, muted)

    def microphone_live(self, call_id: int) -> bool:
        c = self._calls.get(call_id)
        return (
            c is not None and self._ep is not None and pjcall.microphone_live(self._pj, self._ep, c)
        )

    def set_hold(self, call_id: int, held: bool) -> bool:
        c = self._calls.get(call_id)
        return c is not None and pjcall.set_hold(self._pj, c, held)

    def on_hold(self, call_id: int) -> bool:
        c = self._calls.get(call_id)
        return c is not None and pjcall.on_hold(self._pj, c)

    def send_dtmf(self, call_id: int, digits: str) -> bool:
        c = self._calls.get(call_id)
        return c is not None and pjcall.send_dtmf(self._pj, c, digits)

    # -- pumping ---------------------------------------------------------------------------

    def poll(self, timeout_s: float) -> list[SipEvent]:
        """Handle pjsua2 events for up to `timeout_s` (returns early when something happens)."""
        if self._ep is not None:
            self._ep.libHandleEvents(max(0, int(timeout_s * 1000)))
            now = time.monotonic()
            for cid, c in list(self._calls.items()):
                if now - self._stats_at.get(cid, 0.0) >= STATS_EVERY_S:
                    self._sample_quality(cid, c)
        events, self._events = self._events, []
        return events

    def quality(self, call_id: int) -> CallQuality | None:
        """The stream's counters as last sampled (every STATS_EVERY_S while confirmed)."""
        return self._quality.get(call_id)

    def audio_devices(self) -> list[AudioDevice]:
        """The sound devices pjsip sees (empty before start, or with none present)."""
        if self._ep is None:
            return []
        return pjfacts.audio_devices(self._ep.audDevManager())

    def versions(self) -> dict[str, str]:
        ver = self._ep.libVersion().full if self._ep is not None else None
        return {
            # Before start, the wheel's version names the pjsip it bundles (2.15.1.post1).
            "pjsip": ver or str(getattr(self._pj, "__version__", "unknown")).split(".post")[0],
            "pjsip_openssl": "OpenSSL 1.0.2k (bundled with pjsua2-python; TLS 1.2 ceiling)",
        }

    # -- callbacks (record plain events only; they may run inside API calls) -------------------

    def _new_call(self, call_id: int) -> Any:
        pj = self._pj
        engine = self

        class Call(pj.Call):  # type: ignore[misc,name-defined]
            def onCallState(self, prm: Any) -> None:
                engine._on_call_state(self)

            def onCallMediaState(self, prm: Any) -> None:
                engine._on_call_media(self)

        return Call(self._acc, call_id)

    def _on_transport(self, prm: Any) -> None:
        pj = self._pj
        tls = pjfacts.tls_facts(prm.tlsInfo) if not prm.tlsInfo.isEmpty() else None
        handle = int(prm.hnd)
        if prm.state not in (pj.PJSIP_TP_STATE_CONNECTED, pj.PJSIP_TP_STATE_DISCONNECTED):
            if prm.state == pj.PJSIP_TP_STATE_DESTROY:
                self._foreign.discard(handle)
            return  # SHUTDOWN / DESTROY follow a DISCONNECTED we already reported
        connected = prm.state == pj.PJSIP_TP_STATE_CONNECTED
        if handle in self._foreign:
            return
        if not connected and not self._about_sbc(handle, tls):
            return  # an inbound handshake that failed (a scanner): not our SBC connection
        if connected and tls is not None and not self._is_sbc(tls.remote):
            # Someone other than the SBC completed a TLS handshake with our listener (it
            # needs a company certificate for that). Only the SBC may talk to us: close it.
            self._foreign.add(handle)
            with contextlib.suppress(Exception):
                self._ep.transportShutdown(prm.hnd)
            self._events.append(UnsolicitedRequest(tls.remote, "TLS connection", tls.server_cn))
            return
        if connected:
            self._sbc_handles.add(handle)
        else:
            self._sbc_handles.discard(handle)
        if tls is not None:
            self._last_tls = tls
        self._events.append(
            TransportChanged(
                connected=prm.state == pj.PJSIP_TP_STATE_CONNECTED,
                tls=tls,
                error=int(prm.lastError),
                error_text=pjfacts.status_text(pj, int(prm.lastError)),
            )
        )

    def _about_sbc(self, handle: int, tls: TlsFacts | None) -> bool:
        """Is a DISCONNECTED event about our connection to the SBC?"""
        if handle in self._sbc_handles:
            return True
        if tls is not None:
            return self._is_sbc(tls.remote)
        # No TLS facts: a connect that failed early. Ours, unless we are already connected
        # (then it is someone else's inbound attempt that died in the handshake).
        return not self._sbc_handles

    def _is_sbc(self, address: str) -> bool:
        host, _, port = address.rpartition(":")
        s = self._settings
        return host.strip("[]") == s.sbc_host and port == str(s.sbc_port)

    def _on_reg_state(self, acc: Any, prm: Any) -> None:
        info = acc.getInfo()
        self._events.append(
            RegistrationChanged(
                registered=bool(info.regIsActive) and prm.code // 100 == 2,
                code=int(prm.code),
                reason=str(prm.reason),
                status=int(prm.status),
                expires=int(prm.expiration),
            )
        )

    def _on_incoming(self, acc: Any, prm: Any) -> None:
        c = self._new_call(prm.callId)
        cid = int(prm.callId)
        self._calls[cid] = c
        source = str(prm.rdata.srcAddress)
        if source.rpartition(":")[0].strip("[]") != self._settings.sbc_host:
            # Only the SBC may call us. Anyone else who got through the TLS handshake (a
            # device with a company certificate, say) is refused before anything rings.
            self._unsolicited.add(cid)
            prm403 = self._pj.CallOpParam()
            prm403.statusCode = 403
            with contextlib.suppress(Exception):
                c.hangup(prm403)
            self._events.append(UnsolicitedRequest(source, "INVITE", str(c.getInfo().remoteUri)))
            return
        asserted = pjfacts.header(str(prm.rdata.wholeMsg), "P-Asserted-Identity")
        self._events.append(IncomingCall(cid, str(c.getInfo().remoteUri), asserted))

    def _on_call_state(self, c: Any) -> None:
        info = c.getInfo()
        cid = int(info.id)
        if cid in self._unsolicited:
            if int(info.state) == self._pj.PJSIP_INV_STATE_DISCONNECTED:
                self._unsolicited.discard(cid)
                self._calls.pop(cid, None)
            return
        state = _CALL_STATES.get(int(info.state), "unknown")
        self._events.append(
            CallStateChanged(
                cid, state, int(info.lastStatusCode), str(info.lastReason), str(info.remoteUri)
            )
        )
        if state == "disconnected":
            duration = info.connectDuration.sec + info.connectDuration.msec / 1000
            self._events.append(
                CallEnded(
                    cid,
                    int(info.lastStatusCode),
                    str(info.lastReason),
                    round(duration, 3),
                    self._quality.pop(cid, None),
                )
            )
            self._stats_at.pop(cid, None)
            # Dropping the last reference inside the callback is safe: pjsua2 is done with it.
            self._calls.pop(cid, None)
            self._clock_for_calls()

    def _on_call_media(self, c: Any) -> None:
        pj = self._pj
        info = c.getInfo()
        for i, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            self._clock_for_calls(active=True)
            self._audio.connect(c.getAudioMedia(i), self._ep.audDevManager())
            self._events.append(CallMediaActive(int(info.id), pjfacts.media_facts(pj, c, i)))

    def _clock_for_calls(self, active: bool = False) -> None:
        """Null audio: the bridge's clock (the null device) runs only while calls exist."""
        if not self._null_audio or self._ep is None:
            return
        wanted = active or bool(self._calls)
        if wanted != self._clock_running:
            pjcall.null_clock(self._ep.audDevManager(), wanted)
            self._clock_running = wanted

    def _sample_quality(self, cid: int, c: Any, force: bool = False) -> None:
        self._stats_at[cid] = time.monotonic()
        with contextlib.suppress(Exception):  # no stream yet, or already gone
            if not force and c.getInfo().state != self._pj.PJSIP_INV_STATE_CONFIRMED:
                return
            stat = c.getStreamStat(0)  # owns .rtcp (see agent.pjcall's docstring)
            self._quality[cid] = pjfacts.quality(stat.rtcp)
