"""What a neighbour on the hotel network gets from the laptop: nothing, and a report."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from lab import net
from tests.netlab import LAPTOP, NAMES, NETLAB_MARKS, in_ns, netlab, user_config

__all__ = ["netlab"]  # the fixture, used by name

pytestmark = NETLAB_MARKS


def test_hotel_neighbour_gets_no_sip_and_an_inside_caller_never_rings(
    netlab: Any, env: dict[str, str], tmp_path: Path
) -> None:
    import sys

    from lab import pki

    directory = Path(netlab.directory)
    ca = pki.load_ca(directory)
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
