"""The Debian package, installed the way MDM installs it: into a clean Debian 12 root
(debootstrap), silently, with the network cut; it answers --version and doctor there; an
upgrade over it keeps the enrollment stored in the keychain; remove keeps the organisation's
configuration, purge removes it and says what it removed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lab import pki

ROOT = Path(__file__).parents[2]
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap, chroot and unshare need root"),
    pytest.mark.skipif(not shutil.which("debootstrap"), reason="debootstrap is not installed"),
    pytest.mark.timeout(900),
]
CONFIG = (
    '{"version": 1, "account": {"user": "alice", "domain": "corp.example"},'
    ' "sbc": {"host": "127.0.0.1", "ca_file": "/tmp/gp/ca.pem"}}'
)


def build(version: str) -> Path:
    done = subprocess.run(
        ["installer/deb/build.sh"],
        cwd=ROOT,
        env={**os.environ, "VERSION": version},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return ROOT / done.stdout.strip().splitlines()[-1]


@contextmanager
def mounted(root: Path) -> Iterator[None]:
    """/proc, /dev and /dev/pts inside the root (dbus and gnome-keyring need them)."""
    points = [("proc", root / "proc", ["-t", "proc", "proc"]),
              ("dev", root / "dev", ["--bind", "/dev"]),
              ("pts", root / "dev" / "pts", ["--bind", "/dev/pts"])]  # fmt: skip
    done: list[Path] = []
    try:
        for _, where, how in points:
            subprocess.run(["mount", *how, str(where)], check=True)
            done.append(where)
        yield
    finally:
        stop_processes_in(root)  # gnome-keyring-daemon outlives its dbus session
        for where in reversed(done):
            subprocess.run(["umount", "-l", str(where)], check=False)


def stop_processes_in(root: Path) -> None:
    """Every process whose root directory is `root` (started in the chroot), by PID."""
    target = root.resolve()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(os.readlink(entry / "root")).resolve() == target:
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def in_root(root: Path, script: str, network: bool = False) -> subprocess.CompletedProcess[str]:
    prefix = [] if network else ["unshare", "-n"]
    return subprocess.run(
        [*prefix, "chroot", str(root), "sh", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"},
    )


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("debian12") / "root"
    done = subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", str(root), "http://deb.debian.org/debian"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return root


def test_silent_install_without_network_then_upgrade_remove_and_purge(
    clean_root: Path,
) -> None:
    first, second = build("0.1.0"), build("0.1.1")
    root = clean_root
    depends = subprocess.run(
        ["dpkg-deb", "-f", str(first), "Depends"], capture_output=True, text=True, check=True
    ).stdout
    # What the MDM's package repository provides: the declared dependencies (with network).
    names = " ".join(d.split("(")[0].split("|")[0].strip() for d in depends.split(","))
    apt = "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends"
    prepared = in_root(root, f"{apt} {names}", network=True)
    assert prepared.returncode == 0, prepared.stdout[-2000:] + prepared.stderr[-2000:]

    work = root / "tmp" / "gp"
    work.mkdir(parents=True)
    for deb in (first, second):
        shutil.copy(deb, work)
    ca = pki.make_ca("Package test CA")
    device = pki.issue(ca, "alice", server=False)
    (work / "ca.pem").write_text(ca.cert_pem)
    (work / "agent.json").write_text(CONFIG)
    (work / "k.pem").write_text(device.key_pem)
    (work / "c.pem").write_text(device.cert_pem)
    (root / "etc" / "guardphone").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "guardphone" / "managed.json").write_text('{"locked": true}')

    with mounted(root):
        installed = in_root(root, f"{apt} /tmp/gp/{first.name}")  # the network is cut
        assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
        version = in_root(root, "guardphone --version")
        assert version.stdout.strip() == "guardphone 0.1.0"
        doctor = in_root(root, "guardphone --config /tmp/gp/agent.json doctor --json")
        assert doctor.returncode == 1 and '"name": "Keychain"' in doctor.stdout  # no session

        # In a desktop session with a keychain: store the enrollment, upgrade, still there.
        session = (
            "printf pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null; "
            "echo sip-password | guardphone --config /tmp/gp/agent.json credentials import "
            "--key /tmp/gp/k.pem --cert /tmp/gp/c.pem >/dev/null; "
            f"{apt} /tmp/gp/{second.name} >/dev/null 2>&1; "
            "dpkg-query -W -f='\\${Version}\\n' guardphone; "
            "guardphone --config /tmp/gp/agent.json credentials show --json"
        )
        upgraded = in_root(root, f'dbus-run-session -- sh -c "{session}"')
        assert upgraded.stdout.splitlines()[0] == "0.1.1", upgraded.stderr[-2000:]
        assert '"subject": "alice"' in upgraded.stdout, upgraded.stdout + upgraded.stderr[-2000:]

        removed = in_root(root, "dpkg -r guardphone")
        assert removed.returncode == 0
        assert not (root / "opt" / "guardphone").exists()
        assert (root / "etc" / "guardphone" / "managed.json").exists()  # kept on remove
        purged = in_root(root, "dpkg -P guardphone")
        assert purged.returncode == 0
        assert "guardphone: removed /etc/guardphone" in purged.stdout
        assert "keychain entries" in purged.stdout
        assert not (root / "etc" / "guardphone").exists()
