"""The tray's status model (no Qt): states in, what the tray says out."""

from __future__ import annotations

from ui.status import STARTING, dial_target, notification, security_line, status_after


def test_worse_states_notify_and_better_ones_do_not() -> None:
    ready = status_after(STARTING, {"state": "registered", "path": "wireguard"})
    paused = status_after(
        ready, {"state": "refused", "code": "tunnel_down", "reason": "The tunnel is down."}
    )
    assert notification(ready, paused) == ("Calls paused", "The tunnel is down.")
    assert notification(paused, ready) is None
    assert notification(STARTING, ready) is None


def test_security_line_tells_only_what_was_observed() -> None:
    security = {
        "path": "wireguard",
        "signaling": {"tls_version": "TLSv1.2", "cipher": "ECDHE-RSA-AES128-GCM-SHA256"},
        "media": {
            "srtp": True,
            "crypto_suite": "AES_CM_128_HMAC_SHA1_80",
            "scope": "hop by hop to the company SBC",
        },
    }
    assert security_line(security, "wg-office", "sbc:5061") == (
        "Signaling: TLSv1.2 (ECDHE-RSA-AES128-GCM-SHA256) · Media: SRTP AES_CM_128_HMAC_SHA1_80 "
        "(encrypted hop by hop to the company SBC) · Path: WireGuard wg-office"
    )
    relayed = {**security, "media": {**security["media"], "sent_to": "192.0.2.1:30004"}}
    relayed["media"]["via_sbc"] = True
    assert " · Audio to the company SBC's media relay 192.0.2.1:30004 · " in security_line(
        relayed, "wg-office", "sbc:5061"
    )
    relayed["media"]["via_sbc"] = False
    assert "Audio to the other phone 192.0.2.1:30004" in security_line(relayed, None, "s:1")
    unknown = security_line({"path": "sbc_mtls", "signaling": None, "media": None}, None, "s:1")
    assert "Media: not confirmed encrypted" in unknown and "Signaling: unknown" in unknown


def test_what_the_user_types_becomes_what_is_dialled() -> None:
    assert dial_target(" bob ", "corp.example") == "sip:bob@corp.example"
    assert dial_target("bob@other.example", "corp.example") == "sip:bob@other.example"
    assert dial_target("+44 20 7946 0018", "corp.example") == "+44 20 7946 0018"  # to the guard
    assert dial_target("sip:carol@corp.example", "x") == "sip:carol@corp.example"


def test_a_recommended_update_is_said_and_stays_without_blocking_calls() -> None:
    ready = status_after(STARTING, {"state": "registered", "path": "sbc_mtls"})
    advised = status_after(
        ready,
        {
            "state": "update_recommended",
            "reason": "Your organisation asks for guardphone 9.0.0 or newer (this is 0.1.0).",
        },
    )
    assert advised.can_call and advised.kind == ready.kind
    assert "Update recommended: Your organisation asks for guardphone 9.0.0" in advised.tooltip
    # Through later changes the advice stays in the tooltip.
    paused = status_after(advised, {"state": "refused", "reason": "The tunnel is down."})
    back = status_after(paused, {"state": "registered", "path": "wireguard"})
    assert "guardphone 9.0.0" in paused.tooltip and "guardphone 9.0.0" in back.tooltip
    assert "guardphone 9.0.0" not in ready.tooltip
