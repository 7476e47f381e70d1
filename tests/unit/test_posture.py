"""Posture collectors: the Linux one for real on this machine, every parser on recorded
output, and "unknown" (None) whenever a fact cannot be observed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from agent import posture

REC = Path(__file__).parent / "recordings" / "posture"


def read(name: str) -> str:
    return (REC / name).read_text()


def test_linux_collector_on_this_machine() -> None:
    facts = posture.linux()
    assert facts.os.name and facts.os.kernel  # /etc/os-release and uname are always there
    assert facts.os.pending_security_updates is None or facts.os.pending_security_updates >= 0
    # This VM's root is a plain virtio disk: not encrypted (or unknown in a container).
    assert facts.disk.root_encrypted in (False, None)


def test_nothing_observable_is_unknown_not_false() -> None:
    def nothing(argv: Sequence[str]) -> str | None:
        return None

    facts = posture.linux(run=nothing, root=Path("/nonexistent"))
    assert facts.os.pending_security_updates is None
    assert facts.disk.root_encrypted is None and facts.disk.home_encrypted is None
    assert facts.firewall_active is None and facts.screen_lock is None


def test_linux_parsers() -> None:
    assert posture.parse_apt_simulation(read("apt-upgrade-simulation.txt")) == 2
    assert posture.parse_lsblk_crypt(read("lsblk-luks.json")) is True
    assert posture.parse_lsblk_crypt(read("lsblk-plain.json")) is False
    assert posture.parse_lsblk_crypt("not json") is None
    assert posture.parse_nft_active(read("nft-ruleset-drop.json")) is True
    assert posture.parse_nft_active(read("nft-ruleset-empty.json")) is False


def test_mount_source_picks_the_longest_mount(tmp_path: Path) -> None:
    info = tmp_path / "proc" / "self"
    info.mkdir(parents=True)
    (info / "mountinfo").write_text(
        "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/mapper/vg0-root rw\n"
        "30 22 254:2 / /home rw,relatime shared:2 - ext4 /dev/mapper/vg0-home rw\n"
        "40 22 0:5 / /proc rw - proc proc rw\n"
    )
    assert posture.mount_source("/", tmp_path) == "/dev/mapper/vg0-root"
    assert posture.mount_source("/home", tmp_path) == "/dev/mapper/vg0-home"
    assert posture.mount_source("/home/alice", tmp_path) == "/dev/mapper/vg0-home"
    assert posture.encrypted("proc", lambda argv: None) is None  # not a block device


@pytest.mark.parametrize(
    ("parser", "name", "expected"),
    [
        (posture.parse_fdesetup, "fdesetup-on.txt", True),
        (posture.parse_fdesetup, "fdesetup-off.txt", False),
        (posture.parse_socketfilterfw, "socketfilterfw-enabled.txt", True),
        (posture.parse_socketfilterfw, "socketfilterfw-disabled.txt", False),
        (posture.parse_softwareupdate, "softwareupdate-two.txt", 2),
        (posture.parse_softwareupdate, "softwareupdate-none.txt", 0),
        (posture.parse_manage_bde, "manage-bde-status.txt", True),
        (posture.parse_netsh_firewall, "netsh-allprofiles.txt", False),  # Public is OFF
    ],
)
def test_macos_and_windows_parsers(parser: object, name: str, expected: object) -> None:
    assert parser(read(name)) == expected  # type: ignore[operator]


def test_parsers_say_unknown_for_what_they_cannot_read() -> None:
    assert posture.parse_fdesetup("") is None
    assert posture.parse_socketfilterfw("huh") is None
    assert posture.parse_softwareupdate("") is None
    assert posture.parse_manage_bde(read("manage-bde-status.txt"), "E:") is None
    assert posture.parse_manage_bde(read("manage-bde-status.txt"), "D:") is False
    assert posture.parse_netsh_firewall("") is None
    assert posture.parse_windows_update_count("3\n") == 3
    assert posture.parse_windows_update_count("error") is None
