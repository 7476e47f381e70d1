"""The lines of requirements/lock.txt the installed app needs at run time: the project's
dependencies and its `ui` extra, followed through their own dependencies (pip's resolver,
constrained to the lock, so the versions are exactly the tested ones)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    lock = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        pinned = Path(tmp) / "pinned.txt"
        pinned.write_text(
            "\n".join(line.split()[0] for line in lock.read_text().splitlines() if "==" in line)
        )
        report = Path(tmp) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed",
             "--disable-pip-version-check", "--report", str(report), "-c", str(pinned),
             ".[ui]"],
            check=True,
        )  # fmt: skip
        names = {
            item["metadata"]["name"].lower().replace("_", "-")
            for item in json.loads(report.read_text())["install"]
            if item["metadata"]["name"].lower() != "guardphone"
        }
    for line in lock.read_text().splitlines():
        if "==" in line and line.split("==")[0].lower().replace("_", "-") in names:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
