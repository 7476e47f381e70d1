"""agent.material: what the SIP engine is started with."""

from __future__ import annotations

from pathlib import Path

from agent import material


def test_the_sip_instance_is_stable_per_account_and_machine(tmp_path: Path) -> None:
    machine = tmp_path / "machine-id"
    machine.write_text("0123456789abcdef0123456789abcdef\n")
    first = material.instance_id("alice@corp.example", machine)
    assert first == material.instance_id("alice@corp.example", machine)  # restarts, flaps
    assert first.startswith("<urn:uuid:") and first.endswith(">")
    assert first != material.instance_id("bob@corp.example", machine)
    machine.write_text("fedcba9876543210fedcba9876543210\n")
    assert first != material.instance_id("alice@corp.example", machine)  # another laptop
    assert "0123456789abcdef" not in first  # the machine id itself is not sent
