"""The lab's network: a laptop, an office and a hotel neighbour on an untrusted "internet".

    gp-laptop ──veth──┐                 ┌──veth── gp-office (Kamailio, WireGuard end)
                      ├── gp-inet bridge ┤
    gp-hotel  ──veth──┘  192.0.2.0/24   (internet; documentation range, namespaces only)

A wireguard-go tunnel (198.51.100.0/24) joins laptop and office. Every command is built as
data first (tests compare them); `up` runs them, `down` removes everything by name and PID,
also after a crash. Interface names are unique on the host because wireguard-go's control
sockets (/var/run/wireguard/NAME.sock) are shared by all namespaces.
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
WG_PORT = 51820
KEEPALIVE_S = 1  # lets the laptop notice a silent office within seconds
HOSTS = {"office": "192.0.2.1", "laptop": "192.0.2.2", "hotel": "192.0.2.3"}
TUNNEL = {"office": "198.51.100.1", "laptop": "198.51.100.2"}
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

    def wg(self, host: str) -> str:
        return f"{self.prefix}-wg-{host}"

    def namespaces(self) -> tuple[str, ...]:
        return (self.inet, *(self.ns(h) for h in HOSTS))


@dataclass(frozen=True)
class NetState:
    prefix: str
    wireguard_pids: dict[str, int]
    laptop_public_key: str
    office_public_key: str

    @property
    def names(self) -> Names:
        return Names(self.prefix)


def topology_commands(names: Names) -> list[list[str]]:
    """Namespaces, the bridge and one veth per host (no WireGuard yet)."""
    cmds = [["ip", "netns", "add", ns] for ns in names.namespaces()]
    cmds += [
        ["ip", "-n", names.inet, "link", "add", names.bridge, "type", "bridge"],
        ["ip", "-n", names.inet, "link", "set", names.bridge, "up"],
    ]
    for host, addr in HOSTS.items():
        ns = names.ns(host)
        cmds += [
            [
                "ip",
                "link",
                "add",
                names.veth(host),
                "netns",
                ns,
                "type",
                "veth",
                "peer",
                "name",
                names.port(host),
                "netns",
                names.inet,
            ],
            ["ip", "-n", names.inet, "link", "set", names.port(host), "master", names.bridge],
            ["ip", "-n", names.inet, "link", "set", names.port(host), "up"],
            ["ip", "-n", ns, "link", "set", "lo", "up"],
            ["ip", "-n", ns, "addr", "add", f"{addr}/{INET_PREFIX}", "dev", names.veth(host)],
            ["ip", "-n", ns, "link", "set", names.veth(host), "up"],
        ]
    return cmds


def wireguard_commands(names: Names, host: str, peer: str, peer_public_key: str) -> list[list[str]]:
    """Configure `host`'s end of the tunnel (the private key is given on stdin, separately)."""
    ns, iface = names.ns(host), names.wg(host)
    return [
        [
            "ip",
            "netns",
            "exec",
            ns,
            "wg",
            "set",
            iface,
            "private-key",
            "/dev/stdin",
            "listen-port",
            str(WG_PORT),
            "peer",
            peer_public_key,
            "endpoint",
            f"{HOSTS[peer]}:{WG_PORT}",
            "allowed-ips",
            f"{TUNNEL[peer]}/32",
            "persistent-keepalive",
            str(KEEPALIVE_S),
        ],
        ["ip", "-n", ns, "addr", "add", f"{TUNNEL[host]}/{TUN_PREFIX}", "dev", iface],
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
    """Build the namespaces and the tunnel. Leftovers of an earlier crash are removed first."""
    if os.geteuid() != 0:
        raise NetError("the lab network needs root (network namespaces)")
    names = Names(prefix)
    down(directory, prefix)
    try:
        for cmd in topology_commands(names):
            run(cmd)
        keys = {host: wg_keypair() for host in TUNNEL}
        pids = {host: start_wireguard(names, host) for host in TUNNEL}
        for host, peer in (("laptop", "office"), ("office", "laptop")):
            cmds = wireguard_commands(names, host, peer, keys[peer][1])
            run(cmds[0], stdin=keys[host][0])
            for cmd in cmds[1:]:
                run(cmd)
    except Exception:
        down(directory, prefix)
        raise
    state = NetState(prefix, pids, keys["laptop"][1], keys["office"][1])
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
