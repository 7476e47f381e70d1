#!/usr/bin/env bash
# `make package`: build/guardphone_VERSION_amd64.deb. The app lives in /opt/guardphone as a
# bundled venv on Debian's own Python 3.11 (the pjsua2 and PySide6 wheels are built for it),
# installed from requirements/lock.txt with hashes: what CI tested is what ships. Chosen over
# a PyInstaller bundle for the .deb because security updates of the system Python and
# OpenSSL then reach the agent through apt. VERSION overrides the version (upgrade tests).
set -euo pipefail
cd "$(dirname "$0")/../.."
version=${VERSION:-$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')}
name=guardphone_${version}_amd64
stage=$PWD/build/deb/$name
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/opt/guardphone" "$stage/usr/bin" \
  "$stage/usr/share/applications" "$stage/etc/xdg/autostart" "$stage/usr/lib/systemd/user" \
  "$stage/etc/guardphone"
venv=$stage/opt/guardphone/venv
/usr/bin/python3 -m venv "$venv"
# Only what the agent and the tray app need at run time (not the portal, not test tools).
runtime=$(mktemp)
.venv/bin/python installer/deb/runtime.py requirements/lock.txt > "$runtime"
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps --require-hashes -r "$runtime"
wheels=$(mktemp -d)
.venv/bin/pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$wheels" .
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps "$wheels"/guardphone-*.whl
rm -rf "$runtime" "$wheels"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -rf "$site/lab" "$site/portal" "$venv/bin/guardphone-portal" "$venv/bin/pip"* "$venv/bin/activate"*
# The venv was built here; it runs from /opt/guardphone/venv.
grep -rlI --null "$venv" "$venv/bin" "$venv/pyvenv.cfg" | xargs -0 -r sed -i "s#$venv#/opt/guardphone/venv#g"
ln -s /opt/guardphone/venv/bin/guardphone "$stage/usr/bin/guardphone"
ln -s /opt/guardphone/venv/bin/guardphone-tray "$stage/usr/bin/guardphone-tray"
cp installer/deb/guardphone.desktop "$stage/usr/share/applications/"
cp installer/deb/guardphone-autostart.desktop "$stage/etc/xdg/autostart/guardphone.desktop"
cp installer/deb/guardphone.service "$stage/usr/lib/systemd/user/"
sed "s/@VERSION@/$version/" installer/deb/control > "$stage/DEBIAN/control"
install -m 0755 installer/deb/postrm "$stage/DEBIAN/postrm"
dpkg-deb --root-owner-group -Zgzip -z1 --build "$stage" "build/$name.deb" >/dev/null
echo "build/$name.deb"
