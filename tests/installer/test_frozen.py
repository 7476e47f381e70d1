"""The PyInstaller build (the CLI and the tray app in one folder) starts from the frozen
bundle, finds the Secret Service keychain backend, and answers --version and doctor."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
pytestmark = [pytest.mark.keychain, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def frozen() -> Path:
    pyinstaller = ROOT / ".venv" / "bin" / "pyinstaller"
    if not pyinstaller.exists():
        pytest.skip("PyInstaller is not installed (run `make deps`)")
    done = subprocess.run(["make", "frozen"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return ROOT / "build" / "frozen" / "guardphone"


def test_frozen_cli_and_tray_start_and_find_the_secret_service(
    frozen: Path, env: dict[str, str], tmp_path: Path
) -> None:
    cli, tray = frozen / "guardphone", frozen / "guardphone-tray"
    assert cli.exists() and tray.exists()
    outside = {k: v for k, v in env.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    outside["PATH"] = "/usr/bin:/bin"  # nothing from the build's venv
    version = subprocess.run(
        [cli, "--version"], capture_output=True, text=True, env=outside, check=False
    )
    assert version.returncode == 0 and version.stdout.startswith("guardphone 0."), version.stderr
    config = tmp_path / "agent.json"
    (tmp_path / "ca.pem").write_text("")
    config.write_text(
        json.dumps(
            {
                "version": 1,
                "account": {"user": "nobody", "domain": "corp.example"},
                "sbc": {"host": "127.0.0.1", "ca_file": str(tmp_path / "ca.pem")},
            }
        )
    )
    doctor = subprocess.run(
        [cli, "--config", str(config), "doctor", "--json"],
        capture_output=True,
        text=True,
        env=outside,
        check=False,
    )
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["Keychain"]["result"] == "pass", doctor.stderr[-2000:]
    assert "SecretService" in checks["Keychain"]["detail"]  # the backend made it into the bundle
    assert checks["Device certificate"]["result"] == "fail"  # nobody is enrolled: said plainly
    help_text = subprocess.run(
        [tray, "--help"], capture_output=True, text=True, env=outside, check=False
    )
    assert help_text.returncode == 0 and "--config" in help_text.stdout, help_text.stderr[-2000:]
