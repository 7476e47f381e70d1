#!/usr/bin/env bash
# Install what guardphone's demo and tests need on Debian 12, then build the venv from the lock.
# Idempotent: only missing Debian packages are installed, and the venv is rebuilt only when
# requirements/lock.txt or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(
  python3 python3-venv                      # the interpreter the venv is built from
  kamailio kamailio-tls-modules             # the lab's hosted SBC / registrar
  rtpengine-daemon                          # the SBC's media relay (userspace; no kernel module)
  nftables conntrack                        # the lab's home and hotel routers: NAT, blocked ports
  gnome-keyring dbus dbus-bin dbus-daemon   # the Secret Service, in a private D-Bus session
  iproute2 procps                           # ip, ss
  wireguard-tools wireguard-go              # the office tunnel (userspace: no kernel module)
  tshark                                    # tests prove what crosses the wire
  rsyslog rsyslog-gnutls                    # a real syslog receiver for the SIEM tests
  postgresql                                # the fleet-size portal database (tests run on both)
  chromium                                  # a real browser for the helpdesk pages (Playwright)
  baresip-core linphone-desktop             # the peer softphones in the benchmarks
  gcc libc6-dev                             # the benchmarks build a TCP_NODELAY shim for baresip
  wrk                                       # the portal benchmark's load generator (C)
  linux-perf                                # samples the SRTP benchmark's calls (where CPU goes)
  debootstrap                               # a clean Debian 12 root to install the .deb into
  ca-certificates
  xvfb xauth trayer                         # the tray app under a virtual display + tray host
  libegl1 libgl1 libglib2.0-0 libfontconfig1 libfreetype6 libdbus-1-3   # Qt's xcb platform
  libxkbcommon0 libxkbcommon-x11-0 libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0
  libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1
  libxcb-xfixes0 libxcb-xkb1 fonts-dejavu-core
)

missing=()
for pkg in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing Debian packages (${missing[*]}); run as root or install them." >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Debian's own Python 3.11: the pjsua2 wheel exists for 3.10-3.12 only.
PY=${PYTHON:-/usr/bin/python3}
"$PY" -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 12), sys.version' \
  || { echo "deps: $PY is not Python 3.11 or 3.12" >&2; exit 1; }

stamp=.venv/.guardphone-lock
want=$(cat requirements/lock.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
echo "deps: building .venv from requirements/lock.txt"
rm -rf .venv
"$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check --upgrade "pip==$(sed -n 's/^# pip==//p' requirements/lock.txt)"
.venv/bin/pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements/lock.txt
.venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
echo "$want" > "$stamp"
