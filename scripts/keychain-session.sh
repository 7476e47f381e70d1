#!/usr/bin/env bash
# Run a command with a private, unlocked Secret Service (gnome-keyring in its own D-Bus
# session), as a desktop login would provide. The keyring lives in a fresh directory with a
# random password (given on stdin, never in argv or the environment) and is removed after.
set -euo pipefail
if [[ -z ${GUARDPHONE_IN_DBUS:-} ]]; then
  GUARDPHONE_IN_DBUS=1 exec dbus-run-session -- "$0" "$@"
fi
unset GUARDPHONE_IN_DBUS
data=$(mktemp -d -t guardphone-keyring.XXXXXX)
export XDG_DATA_HOME=$data XDG_RUNTIME_DIR=$data/run
mkdir -m 700 "$XDG_RUNTIME_DIR"
password=$(head -c 24 /dev/urandom | base64)
eval "$(printf '%s' "$password" | gnome-keyring-daemon --unlock --components=secrets)"
unset password
cleanup() {
  [[ -n ${GNOME_KEYRING_PID:-} ]] && kill "$GNOME_KEYRING_PID" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT
"$@"
