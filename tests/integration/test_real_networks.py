"""The agent on networks as remote workers meet them (lab/net.py): a router that drops the
media, a relay that is down, a NAT that rebinds mid-call, a laptop idle behind a NAT for
longer than the NAT remembers it, a laptop that sleeps, and what leaves the laptop on the
SBC path. Asserted on what a person notices: a call that rings or is refused with a reason,
audio heard, silence said.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import net, relay
from tests.audio import TONES, heard, write_tone
from tests.netlab import (
    NAMES,
    NETLAB_MARKS,
    Capture,
    in_ns,
    namespace_of,
    run_in_ns,
    shared_netlab,
    t,
    user_config,
)

pytestmark = NETLAB_MARKS
__all__ = ["shared_netlab"]  # the fixture, used by name

BOB_URI, ALICE_URI = "sip:bob@lab.guardphone.test", "sip:alice@lab.guardphone.test"
HOMEGW, HOME = NAMES.ns("homegw"), NAMES.ns("home")
SLEEP_S = float(os.environ.get("GUARDPHONE_TEST_SLEEP_S", "120"))  # the two minutes


def nft(ns: str, script: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script, text=True, check=True
    )


@contextlib.contextmanager
def nft_table(ns: str, name: str, chain: str) -> Iterator[None]:
    """A table of its own in `ns` with one chain (its own hook and rules), deleted after."""
    nft(ns, f"table ip {name} {{\n{chain}\n}}\n")
    try:
        yield
    finally:
        nft(ns, f"delete table ip {name}\n")


def masquerade(router: str, wan: str, how: str = "", match: str = "") -> None:
    """Replace the router's NAT rule (lab.net.router_ruleset's postrouting chain)."""
    chain = "ip lab postrouting"
    rule = f'oifname "{wan}" {match}masquerade {how}'
    nft(router, f"flush chain {chain}\nadd rule {chain} {rule}\n")


def flush_conntrack(ns: str) -> None:
    # conntrack exits 1 when the table was already empty: not a failure here.
    subprocess.run(["ip", "netns", "exec", ns, "conntrack", "-F"], capture_output=True, check=False)


def home_party(state: Any) -> tuple[str, Path]:
    return namespace_of(state, "alice", "home"), user_config(state, "alice", "home")


def bob(state: Any) -> tuple[str, Path]:
    return namespace_of(state, "bob", "office"), user_config(state, "bob", "office")


def first(lines: list[dict[str, Any]], state: str, **fields: Any) -> dict[str, Any] | None:
    return next(
        (x for x in lines if x["state"] == state and all(x.get(k) == v for k, v in fields.items())),
        None,
    )


def test_a_router_that_drops_the_media_is_said_on_the_side_that_hears_nothing(
    shared_netlab: Any, env: dict[str, str]
) -> None:
    """alice at home; her router starts dropping the media coming back from the SBC: she is
    told she cannot hear bob within 3 s, bob (who still hears her) is told nothing, and she
    is told when the audio is back."""
    home_ns, home_cfg = home_party(shared_netlab)
    desk_ns, desk_cfg = bob(shared_netlab)
    alice = in_ns(home_ns, home_cfg, "answer", "--count", "1", env=env)
    try:
        alice.wait_for("registered", timeout=20)
        calling = in_ns(desk_ns, desk_cfg, "call", ALICE_URI, "--hangup-after", "9", env=env)
        try:
            alice.wait_for("call_established", timeout=15)
            with pytest.raises(AssertionError, match="no 'media_silent'"):
                alice.wait_for("media_silent", timeout=1.5)  # audio flows: nothing to say
            drop = (
                "  chain forward {\n    type filter hook forward priority -10;\n"
                f'    iifname "{NAMES.veth("homegw")}" udp sport {relay.PORTS[0]}-{relay.PORTS[1]}'
                " drop\n  }"
            )
            with nft_table(HOMEGW, "blackhole", drop):
                dropped_at = time.time()
                silent = alice.wait_for("media_silent", timeout=6)
                back_at = time.time() + 0.5
                time.sleep(0.5)
            restored = alice.wait_for("media_restored", timeout=5)
            assert calling.wait(20) == 0, calling.output_tail()
        finally:
            calling.stop()
        assert alice.wait(10) == 0, alice.output_tail()
    finally:
        alice.stop()
    assert silent["direction"] == "in" and silent["reason"].startswith("You can't hear them")
    assert 0 < t(silent) - dropped_at < 3.0, f"said {t(silent) - dropped_at:.1f} s after the drop"
    assert t(restored) - back_at < 2.0
    # bob kept hearing alice (her media still reached the SBC): nothing is said on his side.
    assert first(calling.lines, "media_silent", direction="in") is None, calling.lines
    ended = first(alice.lines, "call_ended")
    assert ended is not None and ended["quality"]["silent_s"]["in"] >= 2.0


def test_a_relay_that_is_down_fails_the_call_with_a_reason_and_never_rings(
    shared_netlab: Any, env: dict[str, str]
) -> None:
    home_ns, home_cfg = home_party(shared_netlab)
    desk_ns, desk_cfg = bob(shared_netlab)
    answering = in_ns(desk_ns, desk_cfg, "answer", env=env)
    try:
        answering.wait_for("registered", timeout=20)
        os.kill(shared_netlab.office_relay_pid, signal.SIGSTOP)  # hung: answers nothing
        try:
            started = time.monotonic()
            lines = run_in_ns(home_ns, home_cfg, "call", BOB_URI, "--hangup-after", "1", env=env)
            took = time.monotonic() - started
        finally:
            os.kill(shared_netlab.office_relay_pid, signal.SIGCONT)
        failed = first(lines, "call_failed")
        assert failed is not None and failed["code"] == "media_relay_down", lines
        assert "media relay" in failed["reason"] and first(lines, "call_established") is None
        with pytest.raises(AssertionError, match="no 'incoming'"):
            answering.wait_for("incoming", timeout=0.5)  # bob's phone must not ring
        assert took < 15, f"the caller waited {took:.0f} s for the failure"
        # Back up, the next call works (the SBC asks the relay again within 2 s).
        time.sleep(2.5)
        lines = run_in_ns(home_ns, home_cfg, "call", BOB_URI, "--hangup-after", "1", env=env)
        assert first(lines, "call_established") is not None, lines
    finally:
        answering.stop()


def test_a_nat_that_rebinds_mid_call_loses_the_audio_for_under_two_seconds(
    shared_netlab: Any, env: dict[str, str], tmp_path: Path
) -> None:
    """alice's home router forgets every mapping mid-call and maps her anew from other ports
    (a router reboot, a carrier NAT's reassignment): the relay latches onto the new source,
    and each side hears the other again within 2 s."""
    home_ns, home_cfg = home_party(shared_netlab)
    desk_ns, desk_cfg = bob(shared_netlab)
    tone_a = write_tone(tmp_path / "alice.wav", TONES["caller"])
    tone_b = write_tone(tmp_path / "bob.wav", TONES["callee"])
    heard_by_a, heard_by_b = tmp_path / "alice-heard.wav", tmp_path / "bob-heard.wav"
    wan = NAMES.veth("homegw")
    answering = in_ns(
        desk_ns, desk_cfg, "answer", "--count", "1",
        "--play", str(tone_b), "--record", str(heard_by_b), env=env,
    )  # fmt: skip
    try:
        answering.wait_for("registered", timeout=20)
        calling = in_ns(
            home_ns, home_cfg, "call", BOB_URI, "--hangup-after", "9",
            "--play", str(tone_a), "--record", str(heard_by_a), env=env,
        )  # fmt: skip
        try:
            established = calling.wait_for("call_established", timeout=15)
            time.sleep(3)
            # New mappings from ports the old ones never used, then forget the old ones.
            masquerade(HOMEGW, wan, "to :50000-50999", "meta l4proto { tcp, udp } ")
            flush_conntrack(HOMEGW)
            rebound_at = time.time()
            assert calling.wait(20) == 0, calling.output_tail()
        finally:
            calling.stop()
            masquerade(HOMEGW, wan)
        # Not asserted: bob's end of the call. alice's hang-up is the first SIP she sends
        # after the rebinding, on a connection the NAT no longer maps; the SBC resets it and
        # that BYE is lost (the connection is renewed at the next keepalive, <= 20 s).
    finally:
        answering.stop()
    after = rebound_at - t(established) + 2.0
    until = 9.0 - 0.5  # alice hangs up at 9 s (bob's end may run on: see above)
    for who, path, tone in (("alice", heard_by_a, "callee"), ("bob", heard_by_b, "caller")):
        got = heard(path, TONES[tone], after_s=after, until_s=until)
        assert got.seconds >= until, f"{who}'s recording is {got.seconds} s"
        assert got.blocks >= 25, f"{who}: only {got.blocks} blocks to judge after the rebinding"
        assert got.share >= 0.9, f"{who} did not hear the other side after the rebinding: {got}"


def test_an_idle_laptop_behind_nat_still_rings(shared_netlab: Any, env: dict[str, str]) -> None:
    """alice at home sits idle for longer than her router keeps an idle TCP mapping (30 s in
    the lab): the agent's keepalives hold it open, and bob's call rings at once."""
    home_ns, home_cfg = home_party(shared_netlab)
    desk_ns, desk_cfg = bob(shared_netlab)
    alice = in_ns(home_ns, home_cfg, "answer", "--count", "1", env=env)
    try:
        alice.wait_for("registered", timeout=20)
        sockets = subprocess.run(
            ["ip", "netns", "exec", home_ns, "ss", "-tno", "state", "established",
             f"dst {net.HOSTS['office']}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "keepalive" in sockets, f"no keepalive timer on the SBC connection:\n{sockets}"
        idle = net.NAT_TIMEOUTS["nf_conntrack_tcp_timeout_established"] + 15
        time.sleep(idle)
        lines = run_in_ns(desk_ns, desk_cfg, "call", ALICE_URI, "--hangup-after", "1", env=env)
        calling = first(lines, "calling")
        incoming = alice.wait_for("incoming", timeout=10)
        assert first(lines, "call_established") is not None, lines
        assert t(incoming) - t(calling) < 3.0, "the call should ring at once"
        assert alice.wait(10) == 0, alice.output_tail()
    finally:
        alice.stop()
    assert sum(1 for x in alice.lines if x["state"] == "registered") == 1, "no reconnect needed"


@pytest.mark.timeout(240)  # the sleep itself is two minutes
def test_a_laptop_that_slept_registers_again_and_rings_within_seconds(
    shared_netlab: Any, env: dict[str, str]
) -> None:
    """alice's laptop sleeps for 2 minutes (the agent stopped, nothing leaves the laptop)
    while her router forgets everything; after she wakes it, the agent registers again on
    its own within a few seconds, and bob's call rings."""
    home_ns, home_cfg = home_party(shared_netlab)
    desk_ns, desk_cfg = bob(shared_netlab)
    asleep = (
        "  chain out {\n    type filter hook output priority 0;\n"
        f'    oifname "{NAMES.veth("home")}" drop\n  }}'
    )
    alice = in_ns(home_ns, home_cfg, "answer", "--count", "1", env=env)
    try:
        alice.wait_for("registered", timeout=20)
        os.kill(alice.pid, signal.SIGSTOP)
        try:
            with nft_table(home_ns, "asleep", asleep):
                time.sleep(SLEEP_S)
                flush_conntrack(HOMEGW)
        finally:
            os.kill(alice.pid, signal.SIGCONT)
        woke = time.time()
        resumed = alice.wait_for("resumed", timeout=10)
        assert resumed["slept_s"] >= SLEEP_S - 10
        again = alice.wait_for("registered", timeout=15)
        lines = run_in_ns(desk_ns, desk_cfg, "call", ALICE_URI, "--hangup-after", "1", env=env)
        incoming = alice.wait_for("incoming", timeout=10)
        assert first(lines, "call_established") is not None, lines
        assert alice.wait(10) == 0, alice.output_tail()
    finally:
        alice.stop()
    assert t(again) - woke < 5.0, f"registered again {t(again) - woke:.1f} s after waking"
    assert t(incoming) - t(first(lines, "calling") or incoming) < 3.0


def test_on_the_sbc_path_media_goes_only_to_the_sbcs_relay(
    shared_netlab: Any, env: dict[str, str], tmp_path: Path
) -> None:
    """Capture on the laptop's public Wi-Fi during a call over the SBC path: every packet
    goes to the SBC's address, SIP only as TLS to its port, media only to its relay ports."""
    laptop_cfg = user_config(shared_netlab, "alice", "laptop", paths=["sbc_mtls"])
    desk_ns, desk_cfg = bob(shared_netlab)
    answering = in_ns(desk_ns, desk_cfg, "answer", "--count", "1", env=env)
    try:
        answering.wait_for("registered", timeout=20)
        capture = Capture(tmp_path / "sbc-path.pcap")
        lines = run_in_ns(
            namespace_of(shared_netlab, "alice", "laptop"), laptop_cfg,
            "call", BOB_URI, "--hangup-after", "3", env=env,
        )  # fmt: skip
        capture.stop()
        assert answering.wait(15) == 0
    finally:
        answering.stop()
    established = first(lines, "call_established")
    assert established is not None and established["security"]["path"] == "sbc_mtls", lines
    packets = capture.fields()
    laptop, sbc = net.HOSTS["laptop"], net.HOSTS["office"]
    media = 0
    for protocols, src, dst, udp, tcp in packets:
        if src != laptop or udp == f"{net.WG_PORT},{net.WG_PORT}":
            continue  # the laptop's tunnel keeps itself alive; this agent does not use it
        assert dst == sbc, f"a packet left for {dst}, not the SBC: {protocols}"
        if tcp:
            assert tcp.split(",")[1] == str(shared_netlab.port), f"TCP to {dst}:{tcp}"
            assert "sip" not in protocols.split(":"), "SIP in clear"
        if udp:
            port = int(udp.split(",")[1])
            assert relay.PORTS[0] <= port <= relay.PORTS[1], f"UDP to {dst}:{port}"
            media += 1
    assert media > 100, f"only {media} media packets to the relay in a 3 s call"
