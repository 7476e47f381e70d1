"""Orders: what the portal decides, carried out by a supervisor on a scripted SIP engine.
Each command is logged before it is acted upon and acknowledged after."""

from __future__ import annotations

from pathlib import Path

from agent import keystore, schemas
from agent.fraud import FraudGuard, Policy
from agent.orders import Orders
from tests.unit.fakes import ScriptedEngine
from tests.unit.test_fleet import link
from tests.unit.test_service import REGISTERED, ca_file, make

__all__ = ["ca_file"]  # the fixture, used by name


def command(cid: int, kind: str) -> schemas.Command:
    return schemas.Command(id=cid, device_id="dev-1", kind=kind, issued_at="t", reason="test")  # type: ignore[arg-type]


def test_suspend_resume_and_reenroll_from_the_portal(ca_file: Path, tmp_path: Path) -> None:
    engine = ScriptedEngine(REGISTERED, [], REGISTERED)  # start, the un-REGISTER, resume
    phone, states = make(ca_file, engine)
    phone._fraud = FraudGuard(Policy(region="US"), tmp_path / "f.db")
    fleet, _, _, _ = link(tmp_path)
    phone.orders = Orders(fleet)
    phone.start()

    fleet.commands.put(command(1, "suspend"))
    phone.orders.follow(phone)
    names = [s["state"] for s in states]
    assert names[-3:] == ["portal_command", "refused", "unregistered"]  # logged, then done
    assert (
        states[-2]["code"] == "fraud_suspended" and "by your organisation" in states[-2]["reason"]
    )
    assert engine.names()[-2:] == ["unregister", "shutdown"]  # left properly: un-REGISTER sent
    assert phone.suspended and fleet._outbox.first() is not None  # acknowledged via the outbox

    fleet.commands.put(command(2, "resume"))
    phone.orders.follow(phone)
    assert "fraud_resumed" in [s["state"] for s in states] and phone.suspended is None
    phone.pump(0)
    assert phone.registered

    fleet.commands.put(command(3, "reenroll"))
    phone.orders.follow(phone)
    assert states[-2]["code"] == "reenroll_required" and not phone.registered
    gone = keystore.load_credentials  # the device's credentials are deleted from the keychain
    try:
        gone(phone.store, "guardphone", "alice@example.com")
        raise AssertionError("credentials survived a re-enroll command")
    except keystore.KeychainError:
        pass
    fleet.stop()


def test_a_policy_above_this_version_refuses_with_update_required(
    ca_file: Path, tmp_path: Path
) -> None:
    engine = ScriptedEngine(REGISTERED)
    phone, states = make(ca_file, engine)
    fleet, _, _, _ = link(tmp_path)
    phone.orders = Orders(fleet)
    phone.start()
    fleet.keeper.current = schemas.Policy(
        version=2, issued_at="t", min_agent_version="9.0.0", below_min_version="warn"
    )
    phone.orders.follow(phone)
    assert states[-1]["state"] == "update_recommended" and phone.registered  # only a warning
    fleet.keeper.current = schemas.Policy(
        version=3, issued_at="t", min_agent_version="9.0.0", below_min_version="refuse"
    )
    phone.orders.follow(phone)
    refused = [s for s in states if s["state"] == "refused"]
    assert refused[-1]["code"] == "update_required" and not phone.registered
    fleet.stop()
