"""FleetLink with a scripted portal: reports wait in a durable outbox while the portal is
away and go out in order when it is back; events are sent once (a cursor); only commands
signed by the portal for this device are taken; a policy must be signed and newer."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from agent import config, keystore, posture, schemas
from agent.enroll import DEVICE_ID, POLICY_KEY, EnrollError
from agent.events import EventLog
from agent.fleet import FleetLink
from agent.schemas import DiskFacts, OsFacts, canonical
from lab import pki
from portal.keys import PortalKeys, init_state
from tests.unit.fakes import MemoryKeychain

CA = pki.make_ca("Fleet CA")
ACCOUNT = "alice@example.com"


class ScriptedPortal:
    """Answers like the portal; `down` makes every request fail like a dead network."""

    def __init__(self, keys: PortalKeys) -> None:
        self.keys = keys
        self.down = False
        self.posted: list[tuple[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        self.policy: dict[str, Any] | None = None

    def __call__(self, method: str, body: bytes, path: str) -> tuple[int, dict[str, str], Any]:
        if self.down:
            raise EnrollError("portal_unreachable", "no route to the portal")
        path = path.partition("#")[0]
        if method == "POST":
            doc = json.loads(body) if body else None
            self.posted.append((path, doc))
            if path == "/v1/events":
                return 200, {}, {"acked_through": doc["events"][-1]["seq"]}
            return 200, {}, {"accepted": True}
        if path == "/v1/policy":
            return (200, {"etag": '"1"'}, self.policy) if self.policy else (404, {}, {})
        return 200, {}, self.commands

    def sign_command(self, **command: Any) -> dict[str, Any]:
        doc = schemas.Command(**command).model_dump()
        return {"command": doc, "signature": self.keys.sign(doc)}


def host() -> posture.HostFacts:
    return posture.HostFacts(OsFacts(name="Debian"), DiskFacts(), None, None)


def link(tmp_path: Path) -> tuple[FleetLink, ScriptedPortal, EventLog, MemoryKeychain]:
    init_state(tmp_path / "portal")
    keys = PortalKeys(tmp_path / "portal")
    (tmp_path / "ca.pem").write_text(CA.cert_pem)
    cfg = config.parse(
        {
            "version": 1,
            "account": {"user": "alice", "domain": "example.com"},
            "sbc": {"host": "127.0.0.1", "ca_file": str(tmp_path / "ca.pem")},
            "portal": {
                "url": "https://portal.example",
                "ca_file": str(tmp_path / "ca.pem"),
                "spki_pins": ["sha256/" + "A" * 43 + "="],
            },
        }
    )
    store = MemoryKeychain()
    device = pki.issue(CA, "alice", server=False)
    keystore.save_credentials(
        store, "guardphone", ACCOUNT, keystore.Credentials(device.key_pem, device.cert_pem, "pw")
    )
    store.set("guardphone", keystore.entry_name(ACCOUNT, DEVICE_ID), "dev-1")
    store.set("guardphone", keystore.entry_name(ACCOUNT, POLICY_KEY), keys.policy_public_pem)
    log = EventLog(tmp_path / "events.db")
    portal = ScriptedPortal(keys)
    return FleetLink(cfg, store, log.path, send=portal, host_facts=host), portal, log, store


def test_reports_wait_while_the_portal_is_away_and_go_out_in_order(tmp_path: Path) -> None:
    fleet, portal, log, store = link(tmp_path)
    assert fleet.enrolled
    log.append("gate.allowed", "info", {"path": "sbc_mtls"})
    portal.down = True
    for _ in range(3):
        fleet.report_now()
        try:
            fleet.sync()
            raise AssertionError("sync succeeded with the portal down")
        except EnrollError:
            pass
    assert fleet._outbox.count() == 3 and portal.posted == []
    # A restart in between loses nothing: the outbox is a file.
    fleet.stop()
    fleet = FleetLink(fleet.config, store, log.path, send=portal, host_facts=host)
    portal.down = False
    fleet.sync()
    reports = [doc for path, doc in portal.posted if path == "/v1/posture"]
    assert len(reports) == 4  # three queued, one more due at start
    times = [r["time"] for r in reports]
    assert times == sorted(times)  # in the order they were made
    events = [doc for path, doc in portal.posted if path == "/v1/events"]
    assert [e["seq"] for e in events[0]["events"]] == [1]
    fleet.sync()  # nothing new: the events are not sent again
    assert len([p for p, _ in portal.posted if p == "/v1/events"]) == 1
    fleet.stop()


def test_only_commands_signed_by_the_portal_for_this_device_are_taken(tmp_path: Path) -> None:
    fleet, portal, _, _ = link(tmp_path)
    good = portal.sign_command(id=1, device_id="dev-1", kind="suspend", issued_at="t")
    other_device = portal.sign_command(id=2, device_id="dev-2", kind="resume", issued_at="t")
    forged = dict(portal.sign_command(id=3, device_id="dev-1", kind="suspend", issued_at="t"))
    forged["command"] = {**forged["command"], "kind": "resume"}
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = schemas.Command(id=4, device_id="dev-1", kind="resume", issued_at="t").model_dump()
    signature = base64.b64encode(
        rogue_key.sign(canonical(rogue), ec.ECDSA(hashes.SHA256()))
    ).decode()
    portal.commands = [good, other_device, forged, {"command": rogue, "signature": signature}]
    fleet.sync()
    fleet.sync()  # listed again until done: taken once
    taken = []
    while not fleet.commands.empty():
        taken.append(fleet.commands.get_nowait())
    assert [(c.id, c.kind) for c in taken] == [(1, "suspend")]
    fleet.stop()


def test_a_signed_policy_is_kept_across_restarts(tmp_path: Path) -> None:
    fleet, portal, log, store = link(tmp_path)
    doc = schemas.Policy(version=3, issued_at="t", min_agent_version="0.1.0").model_dump()
    portal.policy = {"policy": doc, "signature": portal.keys.sign(doc)}
    fleet.sync()
    assert fleet.policy is not None and fleet.policy.version == 3
    fleet.stop()
    again = FleetLink(fleet.config, store, log.path, send=portal, host_facts=host)
    assert again.policy is not None and again.policy.version == 3  # before any contact
    again.stop()
