"""The portal part of `make demo`: the lab runs the real portal beside its SBC. dave enrolls
with a one-time token from the portal, registers, and reports; the helpdesk then reads,
through the portal's API after a password + TOTP login, whether dave can call and what is not
compliant.

Usage: demo_portal.py LAB_DIR OUT_DIR   (inside the demo's keychain session)
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyotp

from portal import db, staff

ROOT = Path(__file__).parents[1]
GP = ROOT / ".venv" / "bin" / "guardphone"


def main() -> int:
    lab, out = Path(sys.argv[1]), Path(sys.argv[2])
    db_url = f"sqlite:///{lab / 'portal.db'}"  # the lab runs the real portal
    dave = json.loads((lab / "agents" / "dave.json").read_text())
    dave["portal"]["poll_interval_s"] = 1.0
    url = dave["portal"]["url"]
    config = out / "dave-portal.json"
    config.write_text(json.dumps(dave))
    token = json.loads((lab / "enroll-tokens.json").read_text())["dave"][0]
    with db.sessions(db.engine_for(db_url))() as session:
        secret = staff.add_staff(session, "helpdesk", "demo password for the helpdesk", "helpdesk")
    print("   portal: a one-time enrollment token for dave (only its digest is stored)")
    enrolled = subprocess.run(
        [GP, "--config", config, "enroll"],
        input=token + "\n",
        text=True,
        capture_output=True,
        check=False,
    )
    print("   dave:", enrolled.stdout.strip() or enrolled.stderr.strip())
    if enrolled.returncode != 0:
        return 1
    agent = subprocess.Popen([GP, "--config", config, "register"], stdout=subprocess.DEVNULL)
    time.sleep(6)  # registers, then reports its posture and events to the portal
    agent.send_signal(signal.SIGTERM)
    agent.wait(10)
    with httpx.Client(base_url=url, verify=str(lab / "ca.pem")) as web:
        web.post(
            "/login",
            data={
                "name": "helpdesk",
                "password": "demo password for the helpdesk",
                "code": pyotp.TOTP(secret).now(),
            },
        )
        for row in web.get("/v1/devices", params={"q": "dave"}).json():
            detail = web.get(f"/v1/devices/{row['id']}").json()
            sip = detail["posture"].get("sip", {})
            print(f"   helpdesk: {row['user']} on {row['hostname']} ({row['id']}):")
            print(f"     could call: {sip.get('registered')} · compliant: {row['compliant']}")
            for problem in detail["problems"]:
                print(f"     not compliant: {problem}")
            notable = len(detail["events"])
            print(f"     security events needing a look: {notable or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
