"""Who is calling: internal (asserted by the SBC) or external, from the raw INVITE."""

from __future__ import annotations

import pytest

from agent.calls import caller_identity, security_facts
from agent.pjfacts import header
from agent.sip import MediaFacts, TlsFacts


@pytest.mark.parametrize(
    ("remote", "asserted", "internal", "caller"),
    [
        # The SBC vouches for an authenticated colleague.
        ('"Alice" <sip:alice@lab.test>', "<sip:alice@lab.test>", True, "sip:alice@lab.test"),
        # An outside line calling itself "IT Helpdesk": no assertion, so external.
        ('"IT Helpdesk" <sip:+15550100@gw.example>', None, False, "sip:+15550100@gw.example"),
        # An assertion for somebody else's domain does not make a caller internal.
        ('"IT" <sip:it@lab.test>', "<sip:it@evil.example>", False, "sip:it@lab.test"),
        ("sip:bob@lab.test", "sip:bob@LAB.test;user=phone", True, "sip:bob@LAB.test"),
    ],
)
def test_caller_identity_is_internal_only_when_the_sbc_asserts_our_domain(
    remote: str, asserted: str | None, internal: bool, caller: str
) -> None:
    seen = caller_identity(remote, asserted, "lab.test")
    assert seen["internal"] is internal and seen["caller"] == caller


def test_header_reads_the_message_head_only() -> None:
    message = (
        "INVITE sip:bob@lab.test SIP/2.0\r\nFrom: <sip:a@lab.test>;tag=1\r\n"
        "p-asserted-identity:  <sip:alice@lab.test>\r\n\r\nP-Asserted-Identity: <sip:x@y>\r\n"
    )
    assert header(message, "P-Asserted-Identity") == "<sip:alice@lab.test>"
    assert header("INVITE x SIP/2.0\r\nTo: <sip:b@c>\r\n\r\n", "P-Asserted-Identity") is None


def test_security_facts_say_where_the_audio_goes_and_whether_the_sbc_relays_it() -> None:
    tls = TlsFacts("TLSv1.2", "ECDHE", True, 0, (), "sbc", "10.1.0.2:40000", "192.0.2.1:5061")
    relayed = MediaFacts(True, "RTP/SAVP", "AES_CM_128_HMAC_SHA1_80", "SDES", "speex",
                         "10.1.0.2:4000", "192.0.2.1:30012")  # fmt: skip
    direct = MediaFacts(True, "RTP/SAVP", "AES_CM_128_HMAC_SHA1_80", "SDES", "speex",
                        "10.1.0.2:4000", "192.0.2.77:4000")  # fmt: skip
    media = security_facts("sbc_mtls", tls, relayed)["media"]
    assert media["sent_to"] == "192.0.2.1:30012" and media["via_sbc"] is True
    assert security_facts("sbc_mtls", tls, direct)["media"]["via_sbc"] is False
    assert security_facts("sbc_mtls", None, relayed)["media"]["via_sbc"] is False
