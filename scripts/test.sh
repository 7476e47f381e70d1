#!/usr/bin/env bash
# Lint, type-check, then every test. Integration tests start their own services (Kamailio,
# a private Secret Service) from fixtures and stop them by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv/bin
echo "== ruff"; $V/ruff check . && $V/ruff format --check .
echo "== mypy"; $V/mypy
echo "== pytest"; $V/pytest "$@"
