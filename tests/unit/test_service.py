"""The supervisor's decisions, against a scripted engine (no PJSIP)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from agent import config, keystore
from agent.service import Refused, Softphone
from agent.sip import (
    CallEnded,
    CallMediaActive,
    CallQuality,
    CallStateChanged,
    MediaFacts,
    RegistrationChanged,
    TlsFacts,
    TransportChanged,
)
from lab import pki
from tests.unit.fakes import FixedObserver, MemoryKeychain, QuietNetWatch, ScriptedEngine

CA = pki.make_ca("Unit CA")
GOOD_TLS = TlsFacts("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256", True, 0, ("OK",), "sbc", "a", "b")
SRTP = MediaFacts(True, "RTP/SAVP", "AES_CM_128_HMAC_SHA1_80", "SDES", "PCMA", "l", "r")
REGISTERED = [TransportChanged(True, GOOD_TLS, 0, ""), RegistrationChanged(True, 200, "OK", 0, 300)]


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text(CA.cert_pem)
    return path


def make(
    ca_file: Path, engine: ScriptedEngine, cn: str = "alice", **cert: Any
) -> tuple[Softphone, list[dict[str, Any]]]:
    cfg = config.parse(
        {
            "version": 1,
            "account": {"user": "alice", "domain": "example.com"},
            "sbc": {"host": "127.0.0.1", "port": 5061, "ca_file": str(ca_file)},
        }
    )
    store = MemoryKeychain()
    device = pki.issue(CA, cn, server=False, **cert)
    keystore.save_credentials(
        store,
        "guardphone",
        "alice@example.com",
        keystore.Credentials(device.key_pem, device.cert_pem, "pw"),
    )
    states: list[dict[str, Any]] = []
    phone = Softphone(
        cfg,
        store,
        engine,
        states.append,
        observer=FixedObserver(),  # type: ignore[arg-type]
        netwatch=QuietNetWatch(),
        clock=FakeClock(),
    )
    return phone, states


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.1
        return self.now


def test_registers_and_reports_tls(ca_file: Path) -> None:
    engine = ScriptedEngine(REGISTERED)
    phone, states = make(ca_file, engine)
    phone.start()
    assert engine.names() == ["start", "register"]
    assert [s["state"] for s in states] == ["checking", "connecting", "registered"]
    assert states[-1]["signaling"]["tls_version"] == "TLSv1.2"
    assert engine.settings is not None and engine.settings.bind_address == "127.0.0.1"
    assert engine.settings.bind_ifindex == 1  # lo


@pytest.mark.parametrize("cn", ["bob"])
def test_local_refusal_never_starts_the_engine(ca_file: Path, cn: str) -> None:
    engine = ScriptedEngine()
    phone, _ = make(ca_file, engine, cn=cn)
    with pytest.raises(Refused) as err:
        phone.start()
    assert err.value.reason.code == "device_cert_invalid"
    assert engine.names() == []  # nothing touched the network


def test_expired_device_cert_never_starts_the_engine(ca_file: Path) -> None:
    engine = ScriptedEngine()
    now = dt.datetime.now(dt.UTC)
    phone, _ = make(ca_file, engine, not_before=now - 9 * pki.DAY, not_after=now - pki.DAY)
    with pytest.raises(Refused, match="expired"):
        phone.start()
    assert engine.names() == []


def test_unreadable_ca_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    engine = ScriptedEngine()
    phone, _ = make(bad, engine)
    with pytest.raises(Refused) as err:
        phone.start()
    assert err.value.reason.code == "ca_invalid"
    assert engine.names() == []


def test_certificate_reason_wins_over_the_cancelled_connect(ca_file: Path) -> None:
    untrusted = TlsFacts("TLSv1.2", "x", False, 2, ("untrusted",), "evil", "a", "b")
    engine = ScriptedEngine(
        [
            TransportChanged(False, None, 70014, "Operation cancelled (PJ_ECANCELLED)"),
            TransportChanged(False, untrusted, 171173, "SSL certificate verification error"),
            RegistrationChanged(False, 503, "SSL certificate verification error", 0, 300),
        ]
    )
    phone, _ = make(ca_file, engine)
    with pytest.raises(Refused) as err:
        phone.start()
    assert err.value.reason.code == "server_cert_untrusted"


def test_registration_timeout_is_refused(ca_file: Path) -> None:
    phone, _ = make(ca_file, ScriptedEngine())
    with pytest.raises(Refused) as err:
        phone.start(timeout_s=1.0)
    assert err.value.reason.code == "sbc_timeout"


def test_unencrypted_media_is_hung_up(ca_file: Path) -> None:
    engine = ScriptedEngine(REGISTERED)
    phone, _ = make(ca_file, engine)
    phone.start()
    phone.call("sip:bob@example.com")
    plain = MediaFacts(False, "RTP/AVP", None, None, "PCMA", "l", "r")
    phone.handle(CallMediaActive(0, plain))
    assert ("hangup", 0) in engine.calls


def test_call_reports_security_and_quality(ca_file: Path) -> None:
    engine = ScriptedEngine(REGISTERED)
    phone, states = make(ca_file, engine)
    phone.start()
    record = phone.call("sip:bob@example.com")
    for event in (
        CallStateChanged(0, "early", 180, "Ringing", "sip:bob@example.com"),
        CallMediaActive(0, SRTP),
        CallStateChanged(0, "confirmed", 200, "OK", "sip:bob@example.com"),
        CallEnded(0, 200, "Normal call clearing", 3.0, CallQuality(150, 150, 3, 1.5, 0.8)),
    ):
        phone.handle(event)
    names = [s["state"] for s in states]
    assert names[-4:] == ["calling", "ringing", "call_established", "call_ended"]
    security = states[-2]["security"]
    assert security["media"]["crypto_suite"] == "AES_CM_128_HMAC_SHA1_80"
    assert security["media"]["end_to_end"] is False
    assert states[-1]["quality"]["loss_percent"] == 1.96
    assert record.ended


def test_488_is_reported_as_srtp_required(ca_file: Path) -> None:
    engine = ScriptedEngine(REGISTERED)
    phone, states = make(ca_file, engine)
    phone.start()
    phone.call("sip:old-phone@example.com")
    phone.handle(CallEnded(0, 488, "Not Acceptable Here", 0.0))
    assert states[-1]["state"] == "call_failed"
    assert states[-1]["code"] == "srtp_required"


def test_losing_the_connection_unregisters(ca_file: Path) -> None:
    engine = ScriptedEngine(REGISTERED)
    phone, states = make(ca_file, engine)
    phone.start()
    phone.handle(TransportChanged(False, None, 70016, "End of file"))
    assert not phone.registered
    assert states[-1]["state"] == "unregistered"


def test_calls_refused_while_not_registered(ca_file: Path) -> None:
    engine = ScriptedEngine()
    phone, _ = make(ca_file, engine)
    with pytest.raises(Refused):
        phone.call("sip:bob@example.com")
    assert "call" not in engine.names()


def test_stop_unregisters_then_shuts_down(ca_file: Path) -> None:
    engine = ScriptedEngine(REGISTERED, [RegistrationChanged(False, 200, "OK", 0, 0)])
    phone, states = make(ca_file, engine)
    phone.start()
    phone.stop()
    assert engine.calls[-2:] == [("unregister", None), ("shutdown", True)]
    assert states[-1] == {"state": "unregistered", "reason": "unregistered on request"}


def test_dialled_numbers_pass_the_fraud_guard_and_count_their_minutes(
    ca_file: Path, tmp_path: Path
) -> None:
    from agent.fraud import FraudGuard, Policy

    engine = ScriptedEngine(REGISTERED)
    phone, states = make(ca_file, engine)
    guard = FraudGuard(Policy(region="US", daily_international_minutes=2), tmp_path / "f.db")
    phone._fraud = guard
    phone.start()
    phone.call("+44 20 7946 0018")
    assert ("call", "sip:+442079460018@example.com;user=phone") in engine.calls
    phone.handle(CallStateChanged(0, "confirmed", 200, "OK", "sip:+442079460018@example.com"))
    phone.handle(CallEnded(0, 200, "OK", 150.0))
    assert guard._international_minutes_today() == 2.5
    with pytest.raises(Refused) as err:
        phone.call("+44 20 7946 0099")  # today's minutes are used up: no INVITE
    assert err.value.reason.code == "call_blocked"
    assert [c for c in engine.calls if c[0] == "call"] == [
        ("call", "sip:+442079460018@example.com;user=phone")
    ]
    assert states[-1]["state"] == "call_blocked" and states[-1]["rule"] == "daily_minutes"
    with pytest.raises(Refused):
        phone.call("+1 900 555 0199")  # premium rate
    assert states[-1]["rule"] == "type:premium_rate"


@pytest.mark.parametrize(
    "uri",
    [
        "sip:+19005550199@example.com;user=phone",
        "sips:+1-900-555-0199@elsewhere.example",
        "tel:+19005550199",
        "sip:%2B19005550199@example.com",
    ],
)
def test_a_number_inside_a_sip_uri_meets_the_fraud_guard_too(
    ca_file: Path, tmp_path: Path, uri: str
) -> None:
    from agent.fraud import FraudGuard, Policy

    engine = ScriptedEngine(REGISTERED)
    phone, _ = make(ca_file, engine)
    phone._fraud = FraudGuard(Policy(region="US"), tmp_path / "f.db")
    phone.start()
    with pytest.raises(Refused) as err:
        phone.call(uri)
    assert err.value.reason.code == "call_blocked"
    assert "call" not in engine.names()  # no INVITE for a premium number, however written
    phone.call("sip:bob@example.com")  # a colleague's address is not a number
    assert ("call", "sip:bob@example.com") in engine.calls


def test_the_supervisor_watches_media_while_a_call_is_up(ca_file: Path) -> None:
    engine = ScriptedEngine(REGISTERED)
    phone, states = make(ca_file, engine)
    phone.start()
    phone.call("sip:bob@example.com")
    phone.handle(CallMediaActive(0, SRTP))
    phone.handle(CallStateChanged(0, "confirmed", 200, "OK", "sip:bob@example.com"))
    engine.counters[0] = CallQuality(50, 50, 0, 1.0, 1.0)
    for _ in range(40):  # the fake clock moves 0.1 s per reading: a few seconds
        phone.pump(0)
    names = [s["state"] for s in states]
    assert names.count("media_silent") == 2  # nothing moves: neither in nor out
    assert {s["direction"] for s in states if s["state"] == "media_silent"} == {"in", "out"}
    report_call = phone.last_call
    assert report_call is not None and report_call["media_silent"] == ["in", "out"]


def test_waking_from_a_sleep_proves_the_path_then_renews_the_sbc_connection(
    ca_file: Path,
) -> None:
    engine = ScriptedEngine(REGISTERED)
    phone, states = make(ca_file, engine)
    awake = [1000.0]
    phone._awake_clock = lambda: awake[0]
    phone.start()
    phone.pump(0)
    assert "reconnect" not in engine.names()
    awake[0] += 3.0  # a slow pump is not a sleep
    phone.pump(0)
    assert "reconnect" not in engine.names()
    probes = phone._observer.probes  # type: ignore[union-attr]
    awake[0] += 120.0  # the lid was closed for two minutes
    phone.pump(0)
    assert any(s["state"] == "resumed" and s["slept_s"] == 120.0 for s in states)
    assert phone._observer.probes == probes + 1, "the SBC is probed again first"  # type: ignore[union-attr]
    assert engine.names().count("reconnect") == 1 and engine.names()[-1] == "reconnect"
    # The connection pjsip closes for the renewal is said as that, not as an SBC failure.
    phone.handle(TransportChanged(False, None, 70014, "Operation cancelled (PJ_ECANCELLED)"))
    assert states[-1]["state"] == "unregistered" and states[-1]["code"] == "renewing"
    phone.handle(RegistrationChanged(True, 200, "OK", 0, 300))
    assert states[-1]["state"] == "registered" and not phone._registration.renewing
