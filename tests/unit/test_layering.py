"""The core stays free of Qt, of the lab and of the portal (DESIGN.md, dependencies)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def assert_prints_ok(code: str) -> None:
    """Run `code` in a fresh interpreter (what it imports is all that is loaded) and expect
    it to print "ok"; its stderr says why not."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_core_imports_without_qt_lab_or_pjsua2() -> None:
    # A meta-path hook makes PySide6 and lab unimportable; every core module must still load,
    # and importing them must not load pjsua2 (only starting the engine does).
    code = """
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('PySide6', 'shiboken6', 'lab', 'portal', 'ui'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import agent, tunnel
for pkg in (agent, tunnel):
    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name != 'cli':
            importlib.import_module(pkg.__name__ + '.' + mod.name)
assert 'pjsua2' not in sys.modules, 'pjsua2 loaded at import time'
print('ok')
"""
    assert_prints_ok(code)


def test_agent_package_init_imports_nothing() -> None:
    assert (ROOT / "agent" / "__init__.py").read_text().strip() in ("", '"""guardphone agent."""')


def test_portal_imports_only_the_shared_schemas_from_the_agent() -> None:
    # The portal never loads pjsua2, Qt, the keychain or the agent's supervisor.
    code = """
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        top = name.split('.')[0]
        if top in ('PySide6', 'pjsua2', 'keyring', 'ui', 'lab', 'tunnel') or (
            top == 'agent' and name not in ('agent', 'agent.schemas')
        ):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import portal
for mod in pkgutil.iter_modules(portal.__path__):
    importlib.import_module('portal.' + mod.name)
print('ok')
"""
    assert_prints_ok(code)


def test_the_command_line_loads_the_lab_only_for_lab_commands() -> None:
    # Every `guardphone` run in the source tree builds the parser with the lab's commands;
    # the lab itself (its PKI, Kamailio and namespace code) is start-up time it must not pay.
    code = """
import sys
from agent.cli import build_parser
args = build_parser().parse_args(["lab", "down", "--dir", "/nonexistent"])
assert args.func.__module__ == "lab.cli", args.func
assert not [m for m in ("lab.lab", "lab.pki", "lab.net", "lab.sbc") if m in sys.modules]
print("ok")
"""
    assert_prints_ok(code)


def test_libphonenumber_waits_for_the_first_number() -> None:
    # Loading it costs ~9 ms of every start, before the REGISTER; a dial may never come.
    code = """
import sys
import agent.cli, agent.session, agent.service, agent.fraud, agent.numbers
assert 'phonenumbers' not in sys.modules, 'libphonenumber loaded at start'
assert agent.numbers.classify('+19005550199', 'US').kind == 'premium_rate'
print('ok')
"""
    assert_prints_ok(code)
