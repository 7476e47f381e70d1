"""No protected path, no SIP: the gate in real namespaces with a real wireguard-go tunnel.

A laptop, an office (Kamailio + the other tunnel end) and a hotel neighbour share an
"internet" bridge (lab/net.py). Agents run inside the laptop namespace; a capture on the
laptop's internet-side veth shows what really left the laptop.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import lab as lab_mod
from lab import net, sbc
from tests.services import GUARDPHONE, AgentProcess, free_port

pytestmark = [
    pytest.mark.root,
    pytest.mark.kamailio,
    pytest.mark.keychain,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root (CI runs as root)"),
]
PREFIX = "gt"
NAMES = net.Names(PREFIX)
LAPTOP, OFFICE = NAMES.ns("laptop"), NAMES.ns("office")
WG_LAPTOP = NAMES.wg("laptop")


@pytest.fixture
def netlab(tmp_path: Path, store: Any) -> Iterator[Any]:
    """A fresh lab network per test: tests cut links and kill tunnel ends."""
    port = free_port((sbc.GOOD, sbc.NAME_MISMATCH, sbc.EXPIRED, sbc.ROGUE))
    state = lab_mod.up(
        tmp_path / "lab",
        store,
        port=port,
        with_net=True,
        prefix=PREFIX,
        keychain_service="guardphone-netlab",
    )
    yield state
    lab_mod.down(tmp_path / "lab", store)


def user_config(state: Any, name: str, **changes: Any) -> Path:
    """The lab's agent config for `name`, with top-level changes (e.g. paths)."""
    user = next(u for u in state.net_users if u.name == name)
    data = json.loads(Path(user.config).read_text())
    data.update(changes)
    path = Path(state.directory) / f"{name}-{'-'.join(changes) or 'plain'}.json"
    path.write_text(json.dumps(data))
    return path


def in_ns(ns: str, config: Path, *args: str, env: dict[str, str]) -> AgentProcess:
    return AgentProcess(config, *args, env=env, prefix=["ip", "netns", "exec", ns])


def run_in_ns(ns: str, config: Path, *args: str, env: dict[str, str]) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, GUARDPHONE, "--config", str(config), *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


class Capture:
    """tshark on the laptop's internet-side veth, inside the laptop namespace."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                LAPTOP,
                "tshark",
                "-q",
                "-i",
                NAMES.veth("laptop"),
                "-w",
                str(path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if "Capturing on" in line:
                break

    def stop(self) -> list[tuple[str, str, str]]:
        """(protocol stack, udp ports, tcp ports) of every IP packet captured."""
        time.sleep(0.3)
        self.proc.terminate()
        self.proc.wait(10)
        out = subprocess.run(
            [
                "tshark",
                "-r",
                str(self.path),
                "-Y",
                "ip",
                "-T",
                "fields",
                "-e",
                "frame.protocols",
                "-e",
                "udp.port",
                "-e",
                "tcp.port",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [tuple(([*line.split("\t"), "", ""])[:3]) for line in out.splitlines()]  # type: ignore[misc]


def only_wireguard(packets: list[tuple[str, str, str]]) -> None:
    assert packets, "the capture saw nothing: it proves nothing"
    wireguard = 0
    for protocols, udp, tcp in packets:
        assert not tcp, f"TCP left the laptop outside the tunnel: {protocols} {tcp}"
        assert "sip" not in protocols and "rtp" not in protocols
        if udp:  # (the kernel's own IGMP reports carry no port)
            assert udp == f"{net.WG_PORT},{net.WG_PORT}", f"non-WireGuard UDP: {protocols} {udp}"
            wireguard += 1
    assert wireguard > 50, "the call's media should have crossed as WireGuard"


def t(line: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(line["time"]).timestamp()


def test_registers_and_calls_through_the_tunnel_only(
    netlab: Any, env: dict[str, str], tmp_path: Path
) -> None:
    capture = Capture(tmp_path / "veth.pcap")
    bob = in_ns(OFFICE, user_config(netlab, "bob"), "answer", "--count", "1", env=env)
    try:
        bob.wait_for("registered")
        alice = run_in_ns(
            LAPTOP,
            user_config(netlab, "alice"),
            "call",
            "sip:bob@lab.guardphone.test",
            "--hangup-after",
            "1.5",
            env=env,
        )
        assert bob.wait(10) == 0
    finally:
        bob.stop()
    packets = capture.stop()
    connecting = next(line for line in alice if line["state"] == "connecting")
    assert (connecting["path"], connecting["local_address"]) == ("wireguard", "198.51.100.2")
    established = next(line for line in alice if line["state"] == "call_established")
    assert established["security"]["path"] == "wireguard"
    assert established["security"]["media"]["srtp"] is True
    ended = next(line for line in alice if line["state"] == "call_ended")
    assert ended["quality"]["rx_packets"] > 20
    only_wireguard(packets)


def test_no_tunnel_and_no_sbc_is_refused_and_sends_nothing(
    netlab: Any, env: dict[str, str], tmp_path: Path
) -> None:
    subprocess.run(["ip", "-n", LAPTOP, "link", "del", WG_LAPTOP], check=True)
    subprocess.run(
        [
            "ip",
            "-n",
            OFFICE,
            "addr",
            "del",
            f"{net.HOSTS['office']}/24",
            "dev",
            NAMES.veth("office"),
        ],
        check=True,
    )
    capture = Capture(tmp_path / "veth.pcap")
    lines = run_in_ns(LAPTOP, user_config(netlab, "alice"), "register", "--once", env=env)
    packets = capture.stop()
    refused = lines[-1]
    assert refused["state"] == "refused"
    codes = [r["code"] for r in refused["reasons"]]
    assert codes[0] in ("wg_interface_absent", "tunnel_down")
    assert codes[1] in ("sbc_unreachable", "sbc_timeout")
    assert not any(line["state"] in ("connecting", "registered") for line in lines)
    # Only the probe's TCP SYNs towards the (gone) SBC address may appear; never SIP or RTP.
    for protocols, udp, _tcp in packets:
        assert "sip" not in protocols and "rtp" not in protocols and not udp


def test_link_loss_mid_call_ends_call_and_refuses_within_a_second(
    netlab: Any, env: dict[str, str], tmp_path: Path
) -> None:
    wg_only = user_config(netlab, "alice", paths=["wireguard"])
    bob = in_ns(OFFICE, user_config(netlab, "bob"), "answer", "--count", "1", env=env)
    bob.wait_for("registered")
    alice = in_ns(LAPTOP, wg_only, "call", "sip:bob@lab.guardphone.test", env=env)
    try:
        alice.wait_for("call_established")
        capture = Capture(tmp_path / "veth.pcap")
        cut = time.time()
        subprocess.run(["ip", "-n", LAPTOP, "link", "del", WG_LAPTOP], check=True)
        ended = alice.wait_for("call_ended", timeout=5)
        refused = alice.wait_for("refused", timeout=5)
        packets = capture.stop()
    finally:
        alice.stop()
        bob.stop()
    reaction = t(refused) - cut
    assert t(ended) - cut < 1.0
    assert reaction < 1.0, f"refused {reaction:.3f} s after the link went"
    assert ended["code"] == "path_lost"
    assert refused["code"] in ("wg_interface_absent", "tunnel_down")
    # Nothing went out in clear after the tunnel vanished (not even a BYE).
    for protocols, _udp, tcp in packets:
        assert not tcp and "sip" not in protocols and "rtp" not in protocols, protocols


def test_silent_office_is_refused_after_the_threshold(netlab: Any, env: dict[str, str]) -> None:
    wg_only = user_config(netlab, "alice", paths=["wireguard"])
    alice = in_ns(LAPTOP, wg_only, "register", env=env)
    try:
        alice.wait_for("registered")
        stopped = time.time()
        net.stop_wireguard(NAMES, "office")
        refused = alice.wait_for("refused", timeout=10)
    finally:
        alice.stop()
    waited = t(refused) - stopped
    assert refused["code"] == "wg_peer_silent"
    assert 1.0 < waited < 3 + 2.0, f"refused after {waited:.2f} s (threshold 3 s, checks 1 s apart)"


def test_route_around_the_tunnel_is_refused(netlab: Any, env: dict[str, str]) -> None:
    wg_only = user_config(netlab, "alice", paths=["wireguard"])
    alice = in_ns(LAPTOP, wg_only, "register", env=env)
    try:
        alice.wait_for("registered")
        changed = time.time()
        subprocess.run(
            [
                "ip",
                "-n",
                LAPTOP,
                "route",
                "add",
                f"{net.TUNNEL['office']}/32",
                "via",
                net.HOSTS["office"],
                "dev",
                NAMES.veth("laptop"),
            ],
            check=True,
        )
        refused = alice.wait_for("refused", timeout=5)
    finally:
        alice.stop()
    assert refused["code"] == "route_bypasses_tunnel"
    assert t(refused) - changed < 1.0


def test_falls_back_to_the_sbc_path_and_returns_to_the_tunnel(
    netlab: Any, env: dict[str, str]
) -> None:
    alice = in_ns(LAPTOP, user_config(netlab, "alice"), "register", env=env)
    try:
        first = alice.wait_for("connecting")
        alice.wait_for("registered")
        assert first["path"] == "wireguard"
        subprocess.run(["ip", "-n", LAPTOP, "link", "set", WG_LAPTOP, "down"], check=True)
        fallback = alice.wait_for("connecting", timeout=5)
        alice.wait_for("registered", timeout=5)
        assert (fallback["path"], fallback["sbc"]) == ("sbc_mtls", f"192.0.2.1:{netlab.port}")
        subprocess.run(["ip", "-n", LAPTOP, "link", "set", WG_LAPTOP, "up"], check=True)
        back = alice.wait_for("connecting", timeout=8)
        alice.wait_for("registered", timeout=5)
        assert back["path"] == "wireguard"
    finally:
        alice.stop()


def test_twenty_quick_flaps_during_a_call(netlab: Any, env: dict[str, str], tmp_path: Path) -> None:
    wg_only = user_config(netlab, "alice", paths=["wireguard"])
    alice = in_ns(LAPTOP, wg_only, "answer", env=env)
    bob = None
    windows: list[tuple[float, float]] = []
    try:
        alice.wait_for("registered")
        capture = Capture(tmp_path / "veth.pcap")
        bob = in_ns(
            OFFICE, user_config(netlab, "bob"), "call", "sip:alice@lab.guardphone.test", env=env
        )
        alice.wait_for("call_established")
        for _ in range(20):
            down = time.time()
            subprocess.run(["ip", "-n", LAPTOP, "link", "set", WG_LAPTOP, "down"], check=True)
            time.sleep(0.15)
            up = time.time()
            subprocess.run(["ip", "-n", LAPTOP, "link", "set", WG_LAPTOP, "up"], check=True)
            windows.append((down, up))
            time.sleep(0.15)
        last_up = windows[-1][1]
        alice.wait_for("registered", timeout=5)
        time.sleep(2.0)  # nothing more may happen once the path is stable
        packets = capture.stop()
    finally:
        if bob is not None:
            bob.stop()
        alice.stop()

    registered = [t(line) for line in alice.lines if line["state"] == "registered"]
    for when in registered:
        assert not any(down < when < up for down, up in windows), "registered while down"
    assert len([when for when in registered if when > last_up]) == 1
    after = [line["state"] for line in alice.lines if t(line) > last_up]
    assert after.count("connecting") <= 1
    assert "refused" not in after[after.index("registered") :], after
    assert any(
        line["state"] == "call_ended" and line.get("code") == "path_lost" for line in alice.lines
    )
    only_wireguard(packets)

    # Every flap that hit a registered agent was seen (the netlink latch), however short.
    # (A flap that hits while the agent is still re-connecting finds nothing to tear down.)
    unregistered = [t(line) for line in alice.lines if line["state"] == "unregistered"]
    intervals = [
        (r, min([u for u in unregistered if u > r], default=float("inf"))) for r in registered
    ]
    reactions, recoveries = [], []
    for down, up in windows:
        if any(r <= down < u for r, u in intervals):
            lost = min((u for u in unregistered if u >= down), default=float("inf"))
            assert lost - down < 1.0, f"a flap at {down:.3f} went unnoticed"
            reactions.append(lost - down)
        recoveries.append(min(w for w in registered if w >= up) - up)
    assert len(reactions) >= 10, "most flaps should hit a registered agent"
    reactions.sort()
    recoveries.sort()
    print(
        f"\nflap reaction (n={len(reactions)}): median {reactions[len(reactions) // 2]:.3f} s, "
        f"worst {reactions[-1]:.3f} s; tunnel up -> registered (n={len(recoveries)}): "
        f"median {recoveries[len(recoveries) // 2]:.3f} s, worst {recoveries[-1]:.3f} s"
    )


def test_hotel_neighbour_gets_no_sip_and_an_inside_caller_never_rings(
    netlab: Any, env: dict[str, str], tmp_path: Path
) -> None:
    import sys

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from lab import pki

    directory = Path(netlab.directory)
    ca = pki.Issued(
        x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes()),
        serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None),  # type: ignore[arg-type]
    )
    company = pki.issue(ca, "mallory", server=False)  # a colleague's laptop, compromised
    rogue = pki.issue(pki.make_ca("Hotel CA"), "alice", server=False)
    files = {}
    for name, issued in (("good", company), ("rogue", rogue)):
        files[name] = (tmp_path / f"{name}.pem", tmp_path / f"{name}.key")
        files[name][0].write_text(issued.cert_pem)
        files[name][1].write_text(issued.key_pem)

    sbc_only = user_config(netlab, "alice", paths=["sbc_mtls"])
    alice = in_ns(LAPTOP, sbc_only, "answer", env=env)
    try:
        alice.wait_for("registered")
        listeners = subprocess.run(
            ["ip", "netns", "exec", LAPTOP, "ss", "-Hltnp"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (line,) = [entry for entry in listeners.splitlines() if "guardphone" in entry]
        local = line.split()[3]  # e.g. 192.0.2.2%gt-laptop-e:40121
        assert local.startswith(f"{net.HOSTS['laptop']}%{NAMES.veth('laptop')}:")
        port = local.rsplit(":", 1)[1]
        scan = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                NAMES.ns("hotel"),
                sys.executable,
                str(Path(__file__).with_name("hotel_scanner.py")),
                net.HOSTS["laptop"],
                port,
                netlab.ca_file,
                *map(str, files["rogue"]),
                *map(str, files["good"]),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        results = json.loads(scan.stdout)
        print("\nhotel scan:", results)
        time.sleep(0.5)
        unsolicited = alice.wait_for("sip.unsolicited", timeout=5)
    finally:
        alice.stop()

    assert results["udp_5060"] in ("no answer", "refused")
    assert results["udp_tls_port"] in ("no answer", "refused")
    assert results["tcp_5060"] == "refused"
    for attempt in ("tcp_plain_on_tls_port", "tls_no_cert", "tls_rogue_cert"):
        assert "SIP/2.0" not in results[attempt], (attempt, results[attempt])
    assert results["tls_no_cert"].startswith(("error", "closed"))
    assert results["tls_rogue_cert"].startswith(("error", "closed"))
    # A device with a company certificate gets through TLS, but only the SBC may talk to
    # us: the connection is closed before anything is read, and reported with its source.
    assert results["tls_company_cert_options"] == "closed"
    assert results["tls_company_cert_invite"] == "closed"
    assert unsolicited["source"].startswith(net.HOSTS["hotel"] + ":")
    assert unsolicited["method"] == "TLS connection"
    assert unsolicited["from"] == "mallory"
    states = [line["state"] for line in alice.lines]
    assert states.count("sip.unsolicited") == 2
    # A scanner cannot knock us off the SBC (the only unregistration is our own at the end).
    assert [line for line in alice.lines if line["state"] == "unregistered"] == [
        {**alice.lines[-1], "reason": "unregistered on request"}
    ]
    assert not any(line["state"] in ("incoming", "call_established") for line in alice.lines)


def test_net_down_cleans_up_by_name_after_a_crash(tmp_path: Path) -> None:
    names = net.Names("gc")
    net.up(tmp_path, "gc")
    net.state_file(tmp_path).unlink()  # the lab's own record is lost, as in a crash
    assert net.down(tmp_path, "gc") is True
    left = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert not any(ns in left for ns in names.namespaces())
    assert not net._pids_of(names.wg("laptop")) and not net._pids_of(names.wg("office"))
    assert not Path(f"/var/run/wireguard/{names.wg('laptop')}.sock").exists()
    assert net.down(tmp_path, "gc") is False  # idempotent


def test_tunnel_up_and_down_only_when_the_organisation_allows(
    tmp_path: Path, env: dict[str, str]
) -> None:
    ns, iface = "gq-laptop", "gq-wg"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        private, _ = net.wg_keypair()
        _, peer = net.wg_keypair()
        profile = tmp_path / f"{iface}.conf"
        profile.write_text(
            f"[Interface]\nPrivateKey = {private}\nAddress = 198.51.100.9/24\n\n"
            f"[Peer]\nPublicKey = {peer}\nAllowedIPs = 198.51.100.1/32\n"
        )
        profile.chmod(0o600)
        base = {
            "version": 1,
            "account": {"user": "alice", "domain": "lab.guardphone.test"},
            "paths": ["wireguard"],
            "sbc": {"host": "192.0.2.1", "ca_file": "/nonexistent"},
            "wireguard": {
                "interface": iface,
                "registrar": "198.51.100.1",
                "profile": str(profile),
                "agent_may_connect": False,
            },
        }
        denied, allowed = tmp_path / "denied.json", tmp_path / "allowed.json"
        denied.write_text(json.dumps(base))
        base["wireguard"]["agent_may_connect"] = True  # type: ignore[index]
        allowed.write_text(json.dumps(base))
        userspace = {**env, **net.WG_ENV, "WG_QUICK_USERSPACE_IMPLEMENTATION": "wireguard-go"}

        def tunnel(config: Path, action: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["ip", "netns", "exec", ns, GUARDPHONE, "--config", str(config), "tunnel", action],
                env=userspace,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )

        def present() -> bool:
            return (
                subprocess.run(
                    ["ip", "-n", ns, "link", "show", iface], capture_output=True, check=False
                ).returncode
                == 0
            )

        refused = tunnel(denied, "up")
        assert refused.returncode == 1 and "does not let guardphone" in refused.stderr
        assert not present()
        assert tunnel(allowed, "up").returncode == 0
        assert present()
        assert tunnel(allowed, "up").returncode == 0  # already up is fine
        assert tunnel(allowed, "down").returncode == 0
        assert not present()
        again = tunnel(allowed, "down")
        assert again.returncode == 1 and "not up" in again.stderr
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
        for pid in net._pids_of(iface):
            os.kill(pid, 9)
        Path(f"/var/run/wireguard/{iface}.sock").unlink(missing_ok=True)
