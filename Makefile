# guardphone: `make demo` runs the main job on the local lab, `make test` runs every test.
# Both install what is missing first (Debian packages, then .venv from requirements/lock.txt).
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV := .venv/bin

.PHONY: help deps demo test lint format typecheck unit schema bench mdm package frozen lock clean

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## install Debian packages and build .venv (only what is missing)
	@scripts/deps.sh

demo: deps ## the lab: alice calls bob through the tunnel, falls back to mTLS, is refused
	@scripts/demo.sh

test: deps ## lint, types and every test (Kamailio, wireguard-go, gnome-keyring, rsyslog)
	@scripts/test.sh

lint: deps ## ruff lint and format check
	@$(VENV)/ruff check . && $(VENV)/ruff format --check .

format: deps ## apply ruff's formatting and safe fixes
	@$(VENV)/ruff format . && $(VENV)/ruff check --fix .

typecheck: deps ## mypy (strict on agent/ and tunnel/)
	@$(VENV)/mypy

unit: deps ## only the unit tests (no services)
	@$(VENV)/pytest -q tests/unit

schema: deps ## regenerate schemas/*.schema.json from the settings in agent/config.py
	@$(VENV)/python -m agent.schema_export > schemas/agent-config.schema.json
	@$(VENV)/python -m agent.schema_export managed > schemas/managed-config.schema.json

bench: deps ## every benchmark beside its peer, one table -> bench/results/ (ONLY="softphones portal")
	@scripts/keychain-session.sh scripts/desktop-session.sh $(VENV)/python -m bench.all $(if $(ONLY),--only $(ONLY))

mdm: deps ## MDM templates from the settings table into build/mdm/ (and docs/settings.md)
	@$(VENV)/python -m installer.mdm build/mdm

package: deps ## the Debian package (build/guardphone_VERSION_amd64.deb)
	@installer/deb/build.sh

frozen: deps ## the PyInstaller build of the CLI and the tray app (build/frozen/guardphone/)
	@cd installer/pyinstaller && ../../$(VENV)/pyinstaller --noconfirm --log-level WARN \
		--distpath ../../build/frozen --workpath ../../build/pyinstaller guardphone.spec

lock: ## re-resolve requirements/direct.txt into requirements/lock.txt
	@scripts/lock.sh

clean: ## remove the venv and caches
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
