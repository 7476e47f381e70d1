#!/usr/bin/env bash
# Run a command on a desktop with a system tray. With a display already there, just run it;
# without one (a server, CI), start a virtual X display (Xvfb) and a tray host (Debian's
# trayer) for it, and stop both, by PID, afterwards.
set -euo pipefail
if [[ -n ${DISPLAY:-} && -z ${GUARDPHONE_FORCE_XVFB:-} ]]; then
  exec "$@"
fi
for n in $(seq 70 120); do
  [[ -e /tmp/.X11-unix/X$n || -e /tmp/.X$n-lock ]] || break
done
export DISPLAY=:$n
Xvfb "$DISPLAY" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
tray=
cleanup() {
  [[ -n $tray ]] && kill "$tray" 2>/dev/null || true
  kill "$xvfb" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do [[ -e /tmp/.X11-unix/X$n ]] && break; sleep 0.05; done
trayer --edge top --align right --widthtype request --height 28 --transparent false \
  --tint 0x202124 --expand true >/dev/null 2>&1 &
tray=$!
sleep 0.3
"$@"
