"""The lab's hosted SBC: a real Kamailio with TLS only, started and stopped by PID."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sysconfig
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lab import daemons

LabError = daemons.LabError  # what lab callers catch as sbc.LabError, wherever it is raised

# Every listener of the lab SBC; the addresses stand for different servers a device might meet.
GOOD = "127.0.0.1"  # the real SBC: lab CA, name matches
NAME_MISMATCH = "127.0.0.2"  # same certificate, reached under an address it does not name
EXPIRED = "127.0.0.3"  # lab CA, but the certificate has expired
ROGUE = "127.0.0.4"  # a server whose certificate comes from another CA

CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"


@dataclass(frozen=True)
class SbcFiles:
    """Paths of the PEM files the SBC needs (the SBC's own keys live in the lab directory)."""

    device_ca: Path
    good_cert: Path
    good_key: Path
    expired_cert: Path
    expired_key: Path
    rogue_cert: Path
    rogue_key: Path
    crl: Path | None = None  # revoked device certificates (signed by the device CA)


def ha1(user: str, realm: str, password: str) -> str:
    """The digest HA1 the SBC stores instead of the password (RFC 2617)."""
    return hashlib.md5(f"{user}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()


def module_dir() -> Path:
    multiarch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    return Path("/usr/lib") / multiarch / "kamailio" / "modules"


OPENSSL_NO_TICKETS = """\
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_section
[ssl_section]
system_default = system_default_section
[system_default_section]
Options = -SessionTicket
"""


def render_tls_cfg(files: SbcFiles, port: int, impostors: bool = True) -> str:
    """tls.cfg; `impostors` adds the expired and rogue servers (loopback lab only)."""

    def server(section: str, cert: Path, key: Path) -> str:
        return (
            f"[server:{section}]\n"
            "method = TLSv1.2+\n"
            "verify_certificate = yes\n"
            "require_certificate = yes\n"
            f"certificate = {cert}\n"
            f"private_key = {key}\n"
            f"ca_list = {files.device_ca}\n"
            + (f"crl = {files.crl}\n" if files.crl else "")
            + f"cipher_list = {CIPHERS}\n\n"
        )

    extra = (
        server(f"{EXPIRED}:{port}", files.expired_cert, files.expired_key)
        + server(f"{ROGUE}:{port}", files.rogue_cert, files.rogue_key)
        if impostors
        else ""
    )
    return (
        server("default", files.good_cert, files.good_key)
        + extra
        + "[client:default]\nverify_certificate = no\nrequire_certificate = no\n"
    )


# What the relay does to every offer and answer: its own addresses in the SDP, media sent
# first to where the SIP came from (it latches onto where packets really come from anyway),
# no ICE, and none of the weak SRTP suites rtpengine offers by default (NULL, F8). The RTP
# profile is left as offered: a plain-RTP offer stays plain, so the callee refuses it.
# media-handover: when a NAT maps a phone anew mid-call, the relay follows the new source
# (only packets that pass SRTP authentication count) instead of sending into the void.
RELAY_FLAGS = (
    "replace-origin replace-session-connection SIP-source-address ICE=remove media-handover "
    "SDES-no-NULL_HMAC_SHA1_80 SDES-no-NULL_HMAC_SHA1_32 "
    "SDES-no-F8_128_HMAC_SHA1_80 SDES-no-F8_128_HMAC_SHA1_32"
)


@dataclass(frozen=True)
class MediaRelay:
    """rtpengine's control port and its logical interfaces by the SBC address they stand on."""

    ng_port: int
    interfaces: dict[str, str]  # address -> interface name


def render_kamailio_cfg(
    domain: str,
    port: int,
    tls_cfg: Path,
    ha1s: dict[str, str],
    addresses: tuple[str, ...] = (GOOD, NAME_MISMATCH, EXPIRED, ROGUE),
    relay: MediaRelay | None = None,
) -> str:
    """Kamailio's configuration; with `relay`, every call's media is anchored at rtpengine."""
    template = resources.files("lab").joinpath("templates/kamailio.cfg").read_text()
    listen = "\n".join(f"listen=tls:{ip}:{port}" for ip in addresses)
    entries = "\n".join(f'    $sht(ha1=>{user}) = "{h}";' for user, h in sorted(ha1s.items()))
    interfaces = relay.interfaces if relay else {}
    return template.format(
        domain=domain,
        listen=listen,
        defines="#!define WITH_RELAY" if relay else "",
        mpath=module_dir(),
        tls_cfg=tls_cfg,
        ha1_entries=entries,
        relay_port=relay.ng_port if relay else 0,
        relay_entries="\n".join(
            f'    $sht(relayif=>{address}) = "{name}";' for address, name in interfaces.items()
        ),
        relay_flags=RELAY_FLAGS,
    )


def start(
    cfg: Path,
    pidfile: Path,
    logfile: Path,
    port: int,
    timeout: float = 10.0,
    netns: str | None = None,
    probe_host: str = GOOD,
) -> int:
    """Start Kamailio in the foreground of its own session; return its PID once it listens.

    With `netns`, it runs inside that network namespace (`ip netns exec` execs, so the PID
    is Kamailio's own).
    """
    if not Path("/usr/sbin/kamailio").exists():
        raise LabError("Kamailio is not installed: run `make deps` (Debian package kamailio).")
    check = subprocess.run(
        ["/usr/sbin/kamailio", "-c", "-f", str(cfg)], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        raise LabError(f"Kamailio rejected {cfg}:\n{check.stderr[-2000:]}")
    prefix = ["ip", "netns", "exec", netns] if netns else []
    # No TLS session tickets: Debian 12's Kamailio 5.6 with OpenSSL 3 can crash (SIGSEGV in
    # d2i_SSL_SESSION under tls_accept, seen in CI) when a client resumes with one; and the
    # agent never resumes anyway (every connection is a full, freshly verified handshake).
    openssl_conf = cfg.with_name("openssl-sbc.cnf")
    openssl_conf.write_text(OPENSSL_NO_TICKETS)
    env = {**os.environ, "OPENSSL_CONF": str(openssl_conf)}
    argv = [
        *prefix,
        "/usr/sbin/kamailio",
        "-f",
        str(cfg),
        "-P",
        str(pidfile),
        "-DD",
        "-E",
        "-m",
        "64",
        "-M",
        "8",
    ]
    return daemons.launch(
        argv, logfile, lambda: _listening(probe_host, port, netns), "Kamailio", timeout, env
    )


def _listening(host: str, port: int, netns: str | None = None) -> bool:
    if netns:
        done = subprocess.run(
            ["ip", "netns", "exec", netns, "ss", "-Hltn", f"src {host}:{port}"],
            capture_output=True,
            text=True,
            check=False,
        )
        return bool(done.stdout.strip())
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def stop(pid: int, cfg: Path, timeout: float = 5.0) -> bool:
    """Stop the Kamailio with this PID, but only if it runs our config. True if it was running."""
    if not _is_ours(pid, cfg):
        return False
    daemons.stop_group(pid, timeout)
    return True


def _is_ours(pid: int, cfg: Path) -> bool:
    argv = daemons.cmdline(pid)
    return bool(argv) and argv[0].endswith(b"kamailio") and str(cfg).encode() in argv
