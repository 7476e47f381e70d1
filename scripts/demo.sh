#!/usr/bin/env bash
# The main job on the built-in lab: start Kamailio as the company SBC, enroll alice and bob in
# a private keychain, let bob answer, and have alice call him over mutual TLS with SRTP.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${GUARDPHONE_DEMO_INNER:-} ]]; then
  GUARDPHONE_DEMO_INNER=1 exec scripts/keychain-session.sh "$0" "$@"
fi
gp=.venv/bin/guardphone
labdir=$(mktemp -d -t guardphone-demo-lab.XXXXXX)
out=$(mktemp -d -t guardphone-demo-out.XXXXXX)
bob_pid=
finish() {
  [[ -n $bob_pid ]] && kill "$bob_pid" 2>/dev/null && wait "$bob_pid" 2>/dev/null
  "$gp" lab down --dir "$labdir" >/dev/null || true
  rm -rf "$labdir" "$out"
}
trap finish EXIT

echo "== Starting the lab (Kamailio SBC: TLS only, client certificates required)"
"$gp" lab up --dir "$labdir" --port "${GUARDPHONE_DEMO_PORT:-5061}"
alice=$labdir/agents/alice.json bob=$labdir/agents/bob.json

echo
echo "== bob registers and waits for a call"
"$gp" --config "$bob" answer --count 1 > "$out/bob.log" 2>&1 &
bob_pid=$!
for _ in $(seq 100); do
  grep -q '^registered' "$out/bob.log" && break
  kill -0 "$bob_pid" 2>/dev/null || { cat "$out/bob.log"; exit 1; }
  sleep 0.1
done
sed 's/^/   bob: /' "$out/bob.log"

echo
echo "== alice registers and calls bob for 3 seconds"
"$gp" --config "$alice" call sip:bob@lab.guardphone.test --hangup-after 3 | sed 's/^/ alice: /'
wait "$bob_pid"; bob_pid=
echo
echo "== alice's device, checked locally (nothing sent)"
"$gp" --config "$alice" status
echo
echo "Demo done: the call ran over TLS 1.2 with a verified SBC certificate and mandatory SRTP."
