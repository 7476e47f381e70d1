"""The SBC's media relay: Debian's rtpengine-daemon beside Kamailio (in the office namespace
with `lab up --net`, on loopback for the loopback lab).

Hosted SBCs anchor media: each side of a call sends SRTP to the relay, which latches onto
the address packets really come from (so NAT on either side, or both, does not matter) and
re-keys SRTP per leg (SDES on each hop). The relay has one logical interface per network the
SBC has a leg on (`INTERFACES`); Kamailio picks the pair for each call from the addresses
the caller and the callee reached it on. Userspace only (`--table=-1`): no kernel module.
Started and stopped by PID, its command line built as data.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from lab import daemons, net, sbc

NG_PORT = 2223  # rtpengine's control protocol, on the office namespace's own loopback
PORTS = (30000, 30999)
# rtpengine's logical interfaces, by the office address each one stands on.
INTERFACES = {
    "pub": net.HOSTS["office"],  # the internet
    "tun": net.TUNNEL["office"],  # inside the WireGuard tunnel
    "lan": net.OFFICE_LAN["office"],  # the office LAN
}


# The loopback lab's relay: one interface, where the loopback SBC listens.
LOOPBACK = {"pub": sbc.GOOD}


def for_sbc(interfaces: dict[str, str] = INTERFACES, ng_port: int = NG_PORT) -> sbc.MediaRelay:
    """What Kamailio needs to know of the relay."""
    return sbc.MediaRelay(ng_port, {address: name for name, address in interfaces.items()})


def free_ng_port() -> int:
    """A free UDP port on loopback for the control protocol (the loopback lab shares the
    machine's loopback with whatever else runs there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RelayError(sbc.LabError):
    """The media relay could not start; the message says why."""


def command(
    netns: str | None, interfaces: dict[str, str] = INTERFACES, ng_port: int = NG_PORT
) -> list[str]:
    """rtpengine in the foreground, reading no configuration file (it would otherwise read
    /etc/rtpengine/rtpengine.conf and open the listeners written there)."""
    return [
        *(["ip", "netns", "exec", netns] if netns else []),
        "rtpengine", "--config-file=none", "--foreground", "--table=-1",
        *(f"--interface={name}/{address}" for name, address in interfaces.items()),
        f"--listen-ng=127.0.0.1:{ng_port}",
        f"--port-min={PORTS[0]}", f"--port-max={PORTS[1]}",
        "--log-stderr", "--log-level=6", "--delete-delay=0",
        "--tos=184",  # EF on what it relays, as a carrier SBC marks voice
    ]  # fmt: skip


def start(
    netns: str | None,
    logfile: Path,
    interfaces: dict[str, str] = INTERFACES,
    ng_port: int = NG_PORT,
    timeout: float = 10.0,
) -> int:
    """Start the relay; return its PID once its control port answers."""
    if not Path("/usr/bin/rtpengine").exists():
        raise RelayError("rtpengine is not installed: run `make deps` (rtpengine-daemon).")
    argv = command(netns, interfaces, ng_port)
    return daemons.launch(argv, logfile, lambda: _listening(netns, ng_port), "rtpengine", timeout)


def _listening(netns: str | None, ng_port: int) -> bool:
    done = subprocess.run(
        [
            *(["ip", "netns", "exec", netns] if netns else []),
            "ss",
            "-Hlun",
            f"src 127.0.0.1:{ng_port}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return bool(done.stdout.strip())


def stop(pid: int, timeout: float = 5.0) -> bool:
    """Stop the relay with this PID, only if it is an rtpengine. True if it was running."""
    if not any(arg.endswith(b"rtpengine") for arg in daemons.cmdline(pid)[:6]):
        return False
    daemons.stop_group(pid, timeout)
    return True
