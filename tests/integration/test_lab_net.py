"""The lab network's own promises, and the tunnel commands the agent may run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from lab import net
from tests.netlab import NETLAB_MARKS, netlab
from tests.services import GUARDPHONE

__all__ = ["netlab"]  # the fixture, used by name

pytestmark = NETLAB_MARKS


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
