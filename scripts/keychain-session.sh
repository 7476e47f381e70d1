#!/usr/bin/env bash
# Run a command with a private, unlocked Secret Service (gnome-keyring on its own D-Bus
# session bus), as a desktop login would provide. The keyring lives in a fresh directory with a
# random password (given on stdin, never in argv or the environment) and is removed after.
set -euo pipefail
data=$(mktemp -d -t guardphone-keyring.XXXXXX)
export XDG_DATA_HOME=$data XDG_RUNTIME_DIR=$data/run
mkdir -m 700 "$XDG_RUNTIME_DIR"
# A bus on a socket path (not an abstract socket): agents inside the lab's network
# namespaces reach it too.
dbus-daemon --session --fork --nopidfile --address="unix:path=$data/bus" \
  --print-pid=3 3>"$data/bus.pid" 2>/dev/null
export DBUS_SESSION_BUS_ADDRESS=unix:path=$data/bus
password=$(head -c 24 /dev/urandom | base64)
eval "$(printf '%s' "$password" | gnome-keyring-daemon --unlock --components=secrets)"
unset password
cleanup() {
  [[ -n ${GNOME_KEYRING_PID:-} ]] && kill "$GNOME_KEYRING_PID" 2>/dev/null || true
  kill "$(cat "$data/bus.pid")" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT
"$@"
