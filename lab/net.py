"""The lab's network: the places a remote worker calls from, and the office they call.

    gp-laptop ──┐  (public Wi-Fi: a public address, no NAT)
    gp-hotel  ──┤  (a neighbour on that Wi-Fi: the scanner)      gp-office (the SBC: Kamailio,
    gp-homegw ──┼── gp-inet bridge 192.0.2.0/24 (internet) ────    rtpengine, WireGuard end)
    gp-hotelgw──┘                                                    │ office LAN 10.30.0.0/24
       │  │                                                          gp-desk (office users)
       │  gp-home  10.1.0.2 behind the home router (masquerade)
       gp-guest 10.2.0.2 on the hotel's guest network (masquerade, UDP to WireGuard blocked)

The routers are namespaces with nftables (NAT, a forward policy that lets nothing in that
was not asked for) and short conntrack timeouts (`NAT_TIMEOUTS`), so keepalives are really
tested. The office LAN is private: nothing on the internet has a route to it; the SBC has a
leg on both. A wireguard-go tunnel (198.51.100.0/24) joins the office and each laptop (the
hotel's one never comes up: the hotel drops it). Every command is built as data first
(tests compare them); `up` runs them, `down` removes everything by name and PID, also after a
crash. Interface names are unique on the host because wireguard-go's control sockets
(/var/run/wireguard/NAME.sock) are shared by all namespaces.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

INET_PREFIX = 24
TUN_PREFIX = 24
LAN_PREFIX = 24
WG_PORT = 51820
KEEPALIVE_S = 1  # lets the laptop notice a silent office within seconds
# On the internet bridge: the SBC, the laptop on public Wi-Fi, its neighbour, and the two
# routers' public sides.
HOSTS = {
    "office": "192.0.2.1",
    "laptop": "192.0.2.2",
    "hotel": "192.0.2.3",
    "homegw": "192.0.2.20",
    "hotelgw": "192.0.2.30",
}


@dataclass(frozen=True)
class Router:
    """A masquerading router between a private network with one laptop and the internet."""

    client: str  # the namespace behind it
    lan: str  # the router's own address on the private network
    client_address: str
    blocks_wireguard: bool  # drops UDP to the WireGuard port, as many hotels do


ROUTERS = {
    "homegw": Router("home", "10.1.0.1", "10.1.0.2", blocks_wireguard=False),
    "hotelgw": Router("guest", "10.2.0.1", "10.2.0.2", blocks_wireguard=True),
}
OFFICE_LAN = {"office": "10.30.0.1", "desk": "10.30.0.10"}
TUNNEL = {
    "office": "198.51.100.1",
    "laptop": "198.51.100.2",
    "home": "198.51.100.3",
    "guest": "198.51.100.4",
}
# Conntrack on the routers, in seconds: a home router forgets an idle TCP connection, and a
# UDP flow, much sooner than Linux's defaults (5 days for TCP). Short, so tests can wait it out.
NAT_TIMEOUTS = {
    "nf_conntrack_tcp_timeout_established": 30,
    "nf_conntrack_udp_timeout": 10,
    "nf_conntrack_udp_timeout_stream": 30,
}
WG_ENV = {"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}


class NetError(RuntimeError):
    """The lab network could not be built; the message names the command that failed."""


@dataclass(frozen=True)
class Names:
    """Every name the lab network creates, derived from one short prefix."""

    prefix: str = "gp"

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    @property
    def inet(self) -> str:
        return f"{self.prefix}-inet"

    @property
    def bridge(self) -> str:
        return f"{self.prefix}-br"

    def veth(self, host: str) -> str:  # inside the host's namespace
        return f"{self.prefix}-{host}-e"

    def port(self, host: str) -> str:  # the bridge side
        return f"{self.prefix}-{host}-b"

    def lan(self, host: str) -> str:  # the other end of a private-network host's cable
        return f"{self.prefix}-{host}-l"

    def wg(self, host: str) -> str:
        return f"{self.prefix}-wg-{host}"

    def namespaces(self) -> tuple[str, ...]:
        private = (*(r.client for r in ROUTERS.values()), "desk")
        return (self.inet, *(self.ns(h) for h in HOSTS), *(self.ns(h) for h in private))


@dataclass(frozen=True)
class NetState:
    prefix: str
    wireguard_pids: dict[str, int]
    public_keys: dict[str, str]

    @property
    def names(self) -> Names:
        return Names(self.prefix)


def topology_commands(names: Names) -> list[list[str]]:
    """Namespaces, the internet bridge, one veth per host, the private networks behind the
    routers and the office LAN (no WireGuard, no firewall yet)."""
    cmds = [["ip", "netns", "add", ns] for ns in names.namespaces()]
    cmds += [
        ["ip", "-n", names.inet, "link", "add", names.bridge, "type", "bridge"],
        ["ip", "-n", names.inet, "link", "set", names.bridge, "up"],
    ]
    for ns in names.namespaces()[1:]:
        cmds.append(["ip", "-n", ns, "link", "set", "lo", "up"])
    for host, addr in HOSTS.items():
        ns = names.ns(host)
        cmds += [
            _veth(names.veth(host), ns, names.port(host), names.inet),
            ["ip", "-n", names.inet, "link", "set", names.port(host), "master", names.bridge],
            ["ip", "-n", names.inet, "link", "set", names.port(host), "up"],
            ["ip", "-n", ns, "addr", "add", f"{addr}/{INET_PREFIX}", "dev", names.veth(host)],
            ["ip", "-n", ns, "link", "set", names.veth(host), "up"],
        ]
    cables = [(router, r.client, r.lan, r.client_address) for router, r in ROUTERS.items()]
    cables.append(("office", "desk", OFFICE_LAN["office"], OFFICE_LAN["desk"]))
    for gateway, client, gateway_addr, client_addr in cables:
        gw_ns, client_ns = names.ns(gateway), names.ns(client)
        cmds += [
            _veth(names.veth(client), client_ns, names.lan(client), gw_ns),
            ["ip", "-n", gw_ns, "addr", "add", f"{gateway_addr}/{LAN_PREFIX}",
             "dev", names.lan(client)],
            ["ip", "-n", gw_ns, "link", "set", names.lan(client), "up"],
            ["ip", "-n", client_ns, "addr", "add", f"{client_addr}/{LAN_PREFIX}",
             "dev", names.veth(client)],
            ["ip", "-n", client_ns, "link", "set", names.veth(client), "up"],
            ["ip", "-n", client_ns, "route", "add", "default", "via", gateway_addr],
        ]  # fmt: skip
    return cmds


def _veth(inside: str, ns: str, peer: str, peer_ns: str) -> list[str]:
    return ["ip", "link", "add", inside, "netns", ns, "type", "veth", "peer", "name", peer,
            "netns", peer_ns]  # fmt: skip


def router_ruleset(names: Names, router: str) -> str:
    """nftables for a home or hotel router: masquerade out of the public side, let in only
    what answers a flow from inside, and (the hotel) drop UDP to the WireGuard port."""
    r = ROUTERS[router]
    wan, lan = names.veth(router), names.lan(r.client)
    block = (
        f'        iifname "{lan}" udp dport {WG_PORT} counter drop comment "no VPN here"\n'
        if r.blocks_wireguard
        else ""
    )
    return (
        "table ip lab {\n"
        "    chain forward {\n"
        "        type filter hook forward priority filter; policy drop;\n"
        "        ct state established,related accept\n"
        f"{block}"
        f'        iifname "{lan}" oifname "{wan}" accept\n'
        "    }\n"
        "    chain postrouting {\n"
        "        type nat hook postrouting priority srcnat;\n"
        f'        oifname "{wan}" masquerade\n'
        "    }\n"
        "}\n"
    )


def router_commands(names: Names, router: str) -> list[list[str]]:
    """A router's namespace: its nftables ruleset first (given on stdin; it loads conntrack,
    whose settings exist only then), forwarding on, short conntrack timeouts."""
    ns = names.ns(router)
    cmds = [
        ["ip", "netns", "exec", ns, "nft", "-f", "-"],
        ["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
    ]
    cmds += [
        ["ip", "netns", "exec", ns, "sysctl", "-qw", f"net.netfilter.{key}={value}"]
        for key, value in NAT_TIMEOUTS.items()
    ]
    return cmds


def wireguard_commands(names: Names, host: str, peer_public_key: str) -> list[list[str]]:
    """Configure a laptop's end of the tunnel (the private key is given on stdin, separately)."""
    ns, iface = names.ns(host), names.wg(host)
    return [
        ["ip", "netns", "exec", ns, "wg", "set", iface, "private-key", "/dev/stdin",
         "listen-port", str(WG_PORT), "peer", peer_public_key,
         "endpoint", f"{HOSTS['office']}:{WG_PORT}", "allowed-ips", f"{TUNNEL['office']}/32",
         "persistent-keepalive", str(KEEPALIVE_S)],
        ["ip", "-n", ns, "addr", "add", f"{TUNNEL[host]}/{TUN_PREFIX}", "dev", iface],
        ["ip", "-n", ns, "link", "set", iface, "up"],
    ]  # fmt: skip


def office_wireguard_commands(names: Names, laptop_keys: dict[str, str]) -> list[list[str]]:
    """The office's end: one peer per laptop, each kept alive from this end too (the laptop's
    gate counts the office silent when nothing arrives from it). Only the laptop on public
    Wi-Fi has a known endpoint; the ones behind NAT are learnt from their handshakes."""
    ns, iface = names.ns("office"), names.wg("office")
    cmd = ["ip", "netns", "exec", ns, "wg", "set", iface, "private-key", "/dev/stdin",
           "listen-port", str(WG_PORT)]  # fmt: skip
    for host, public_key in laptop_keys.items():
        cmd += ["peer", public_key, "allowed-ips", f"{TUNNEL[host]}/32",
                "persistent-keepalive", str(KEEPALIVE_S)]  # fmt: skip
        if host in HOSTS:
            cmd += ["endpoint", f"{HOSTS[host]}:{WG_PORT}"]
    return [
        cmd,
        ["ip", "-n", ns, "addr", "add", f"{TUNNEL['office']}/{TUN_PREFIX}", "dev", iface],
        ["ip", "-n", ns, "link", "set", iface, "up"],
    ]


def wg_keypair() -> tuple[str, str]:
    key = x25519.X25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(private).decode(), base64.b64encode(public).decode()


def run(cmd: list[str], stdin: str | None = None) -> str:
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetError(f"`{' '.join(cmd)}` failed: {done.stderr.strip() or done.returncode}")
    return done.stdout


def state_file(directory: Path) -> Path:
    return directory / "net.json"


def up(directory: Path, prefix: str = "gp") -> NetState:
    """Build the namespaces, the routers and the tunnels. Leftovers of an earlier crash are
    removed first."""
    if os.geteuid() != 0:
        raise NetError("the lab network needs root (network namespaces)")
    names = Names(prefix)
    down(directory, prefix)
    try:
        for cmd in topology_commands(names):
            run(cmd)
        for router in ROUTERS:
            load, *settings = router_commands(names, router)
            run(load, stdin=router_ruleset(names, router))
            for cmd in settings:
                run(cmd)
        keys = {host: wg_keypair() for host in TUNNEL}
        pids = {host: start_wireguard(names, host) for host in TUNNEL}
        laptops = {host: keys[host][1] for host in TUNNEL if host != "office"}
        office_cmds = office_wireguard_commands(names, laptops)
        run(office_cmds[0], stdin=keys["office"][0])
        for cmd in office_cmds[1:]:
            run(cmd)
        for host in laptops:
            cmds = wireguard_commands(names, host, keys["office"][1])
            run(cmds[0], stdin=keys[host][0])
            for cmd in cmds[1:]:
                run(cmd)
    except Exception:
        down(directory, prefix)
        raise
    state = NetState(prefix, pids, {host: pair[1] for host, pair in keys.items()})
    directory.mkdir(parents=True, exist_ok=True)
    state_file(directory).write_text(json.dumps(asdict(state), indent=2) + "\n")
    return state


def start_wireguard(names: Names, host: str, timeout: float = 10.0) -> int:
    """wireguard-go in the foreground of its own session, inside the host's namespace.
    One retry: a previous instance of the same name may still be on its way out."""
    for attempt in (1, 2):
        try:
            return _start_wireguard_once(names, host, timeout)
        except NetError:
            if attempt == 2:
                raise
            stop_wireguard(names, host)
    raise AssertionError("unreachable")


def _start_wireguard_once(names: Names, host: str, timeout: float) -> int:
    iface = names.wg(host)
    Path(f"/var/run/wireguard/{iface}.sock").unlink(missing_ok=True)  # a stale one lies
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", names.ns(host), "wireguard-go", "-f", iface],
            env={**os.environ, **WG_ENV},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not Path(f"/var/run/wireguard/{iface}.sock").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.kill()
                errors.seek(0)
                said = errors.read().decode(errors="replace").strip().splitlines()[-3:]
                raise NetError(f"wireguard-go did not start {iface}: {' / '.join(said)}")
            time.sleep(0.02)
    return proc.pid


def stop_wireguard(names: Names, host: str) -> None:
    """Stop one tunnel end (what a crashed or unplugged office looks like to the laptop)."""
    iface = names.wg(host)
    for pid in _pids_of(iface):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while _pids_of(iface) and time.monotonic() < deadline:
        time.sleep(0.02)
    Path(f"/var/run/wireguard/{iface}.sock").unlink(missing_ok=True)


def _pids_of(iface: str) -> list[int]:
    """wireguard-go processes serving `iface`, found by their command line."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"wireguard-go") and iface.encode() in argv:
            pids.append(int(proc.name))
    return pids


def down(directory: Path, prefix: str = "gp") -> bool:
    """Remove the lab network by name and PID. True if anything was there."""
    names = Names(prefix)
    found = False
    for host in TUNNEL:
        if _pids_of(names.wg(host)):
            found = True
        stop_wireguard(names, host)
    existing = run(["ip", "netns", "list"]) if os.geteuid() == 0 else ""
    for ns in names.namespaces():
        if any(line.split()[0] == ns for line in existing.splitlines() if line.strip()):
            found = True
            for pid in _pids_in_netns(ns):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    state_file(directory).unlink(missing_ok=True)
    return found


def _pids_in_netns(ns: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    return [int(p) for p in done.stdout.split() if p.isdigit()]
