#!/usr/bin/env bash
# The tray app part of the demo, run on a desktop (scripts/desktop-session.sh gives one when
# there is none): start alice's tray app, wait until it is registered, take a picture of the
# screen, and keep it running until Enter (or at once when nobody is at the terminal).
# Usage: demo-tray.sh CONFIG OUT_DIR [PREFIX...]   (PREFIX: e.g. ip netns exec gp-laptop)
set -euo pipefail
config=$1 out=$2; shift 2
cd "$(dirname "$0")/.."
"$@" .venv/bin/guardphone-tray --config "$config" --json > "$out/tray.log" 2>"$out/tray.err" &
tray=$!
stop() { kill "$tray" 2>/dev/null && wait "$tray" 2>/dev/null || true; }
trap stop EXIT
for _ in $(seq 150); do
  grep -q '"state": "registered"' "$out/tray.log" && break
  kill -0 "$tray" 2>/dev/null || { cat "$out/tray.err" >&2; exit 1; }
  sleep 0.1
done
grep -q '"state": "registered"' "$out/tray.log" || { echo "tray app did not register" >&2; exit 1; }
.venv/bin/python - "$out/tray.log" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    state = json.loads(line)
    if state["state"] == "registered":
        print(f"   tray: registered as {state['account']} over {state['path']} via {state['sbc']}")
PY
mkdir -p build
.venv/bin/python - build/demo-tray.png <<'PY'
import sys
from PySide6.QtGui import QGuiApplication
app = QGuiApplication([])
screen = QGuiApplication.primaryScreen()
width = screen.geometry().width()
screen.grabWindow(0).copy(width - 240, 0, 240, 40).save(sys.argv[1])
PY
echo "   screenshot of the tray: build/demo-tray.png"
if [[ -t 0 ]]; then
  echo "   The tray app runs on display $DISPLAY: right-click the shield, Call…, type bob."
  read -r -p "   Press Enter to quit it. "
fi
