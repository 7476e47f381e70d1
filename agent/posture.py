"""Device posture: what the helpdesk needs to know about this laptop, collected per OS behind
one interface. Linux is collected for real; macOS and Windows are read from their standard
commands' output by small parsers. Anything that cannot be observed is None ("unknown"):
never a guess.
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.schemas import DiskFacts, OsFacts

Run = Callable[[Sequence[str]], "str | None"]  # a command's stdout, or None if it failed
TIMEOUT_S = 20.0


def run_command(argv: Sequence[str]) -> str | None:
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


@dataclass(frozen=True)
class HostFacts:
    os: OsFacts
    disk: DiskFacts
    firewall_active: bool | None
    screen_lock: bool | None


# -- Linux -------------------------------------------------------------------------------


def linux(run: Run = run_command, root: Path = Path("/")) -> HostFacts:
    release = _os_release(root / "etc" / "os-release")
    return HostFacts(
        os=OsFacts(
            name=release.get("NAME"),
            version=release.get("VERSION_ID"),
            kernel=platform.release(),
            pending_security_updates=pending_updates_linux(run),
        ),
        disk=DiskFacts(
            root_encrypted=encrypted(mount_source("/", root), run),
            home_encrypted=encrypted(mount_source("/home", root), run),
        ),
        firewall_active=firewall_linux(run),
        screen_lock=screen_lock_linux(run),
    )


def _os_release(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k: v.strip().strip('"') for k, v in pairs}


def pending_updates_linux(run: Run) -> int | None:
    """Security updates the package manager would install (from its local lists)."""
    apt = run(["apt-get", "-s", "-o", "Debug::NoLocking=1", "upgrade"])
    if apt is not None:
        return parse_apt_simulation(apt)
    dnf = run(["dnf", "-q", "updateinfo", "list", "--security"])
    if dnf is not None:
        return len([line for line in dnf.splitlines() if line.strip()])
    return None


def parse_apt_simulation(text: str) -> int:
    """`apt-get -s upgrade`: the "Inst" lines that come from a security archive."""
    return sum(
        1 for line in text.splitlines() if line.startswith("Inst ") and "-security" in line.lower()
    )


def mount_source(mount_point: str, root: Path = Path("/")) -> str | None:
    """The device behind the filesystem that holds `mount_point` (longest mount prefix)."""
    try:
        lines = (root / "proc" / "self" / "mountinfo").read_text().splitlines()
    except OSError:
        return None
    best: tuple[int, str] | None = None
    for line in lines:
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        point = fields[4]
        after = line.split(" - ", 1)[1].split()
        source = after[1] if len(after) > 1 else ""
        covers = mount_point == point or mount_point.startswith(point.rstrip("/") + "/")
        if covers and (best is None or len(point) > best[0]):
            best = (len(point), source)
    return best[1] if best else None


def encrypted(device: str | None, run: Run) -> bool | None:
    """dm-crypt/LUKS anywhere under the device (lsblk's inverse tree); unknown when the
    filesystem is not on a block device (overlay, network, container)."""
    if not device or not device.startswith("/dev/"):
        return None
    out = run(["lsblk", "--json", "--inverse", "--output", "NAME,TYPE", device])
    if out is None:
        return None
    return parse_lsblk_crypt(out)


def parse_lsblk_crypt(text: str) -> bool | None:
    try:
        tree = json.loads(text)["blockdevices"]
    except (ValueError, KeyError, TypeError):
        return None

    def walk(nodes: list[dict[str, object]]) -> bool:
        for node in nodes:
            if node.get("type") == "crypt":
                return True
            children = node.get("children")
            if isinstance(children, list) and walk(children):
                return True
        return False

    return walk(tree)


def firewall_linux(run: Run) -> bool | None:
    ufw = run(["ufw", "status"])
    if ufw is not None and "Status: active" in ufw:
        return True
    ruleset = run(["nft", "-j", "list", "ruleset"])
    if ruleset is not None:
        return parse_nft_active(ruleset)
    return False if ufw is not None else None


def parse_nft_active(text: str) -> bool | None:
    """Active means: an input-hook chain that drops by default, or drops/rejects something."""
    try:
        items = json.loads(text)["nftables"]
    except (ValueError, KeyError, TypeError):
        return None
    for item in items:
        chain = item.get("chain") if isinstance(item, dict) else None
        if chain and chain.get("hook") == "input" and chain.get("policy") == "drop":
            return True
        rule = item.get("rule") if isinstance(item, dict) else None
        if rule and any(("drop" in expr or "reject" in expr) for expr in rule.get("expr", [])):
            return True
    return False


def screen_lock_linux(run: Run) -> bool | None:
    out = run(["gsettings", "get", "org.gnome.desktop.screensaver", "lock-enabled"])
    if out is not None:
        return out.strip() == "true"
    out = run(
        ["kreadconfig5", "--file", "kscreenlockerrc", "--group", "Daemon", "--key", "Autolock"]
    )
    if out is not None:
        return out.strip().lower() != "false"
    return None


# -- macOS (parsers of the standard commands) --------------------------------------------


def parse_fdesetup(text: str) -> bool | None:
    if "FileVault is On" in text:
        return True
    if "FileVault is Off" in text:
        return False
    return None


def parse_socketfilterfw(text: str) -> bool | None:
    match = re.search(r"\(State = (\d)\)", text)
    if match:
        return match.group(1) != "0"
    if "Firewall is disabled" in text:
        return False
    return True if "Firewall is enabled" in text else None


def parse_softwareupdate(text: str) -> int | None:
    if "No new software available" in text:
        return 0
    labels = [line for line in text.splitlines() if line.strip().startswith("* Label:")]
    return len(labels) if labels or "Software Update found" in text else None


# -- Windows (parsers of the standard commands) ------------------------------------------


def parse_manage_bde(text: str, volume: str = "C:") -> bool | None:
    """`manage-bde -status`: the volume's "Protection Status"."""
    section = text.split(f"Volume {volume}", 1)
    if len(section) < 2:
        return None
    body = section[1].split("Volume ", 1)[0]
    match = re.search(r"Protection Status:\s*Protection (On|Off)", body)
    return None if match is None else match.group(1) == "On"


def parse_netsh_firewall(text: str) -> bool | None:
    """`netsh advfirewall show allprofiles`: active only if every profile's State is ON."""
    states = re.findall(r"^State\s+(ON|OFF)\s*$", text, flags=re.MULTILINE)
    return None if len(states) < 3 else all(s == "ON" for s in states)


def parse_windows_update_count(text: str) -> int | None:
    """The count printed by the Windows Update searcher query (one integer)."""
    stripped = text.strip()
    return int(stripped) if stripped.isdigit() else None
