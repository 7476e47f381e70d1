#!/usr/bin/env bash
# The main job on the built-in lab. Kamailio plays the company SBC; alice's and bob's keys go
# into a private keychain. As root, the lab also builds a laptop, a home and a hotel behind
# NAT routers, and an office LAN, in network namespaces with WireGuard tunnels and the SBC's
# media relay; alice calls bob through the tunnel, carol from the hotel, alice from home.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${GUARDPHONE_DEMO_INNER:-} ]]; then
  GUARDPHONE_DEMO_INNER=1 exec scripts/keychain-session.sh "$0" "$@"
fi
gp=$PWD/.venv/bin/guardphone
labdir=$(mktemp -d -t guardphone-demo-lab.XXXXXX)
out=$(mktemp -d -t guardphone-demo-out.XXXXXX)
bob_pid=
finish() {
  [[ -n $bob_pid ]] && kill "$bob_pid" 2>/dev/null && wait "$bob_pid" 2>/dev/null
  "$gp" lab down --dir "$labdir" >/dev/null || true
  rm -rf "$labdir" "$out"
}
trap finish EXIT

net=() laptop=() office=()
if [[ $(id -u) -eq 0 ]]; then
  net=(--net)
  laptop=(ip netns exec gp-laptop)
  office=(ip netns exec gp-desk)
fi
calls=1

echo "== Starting the lab (Kamailio SBC: TLS only, client certificates required)"
"$gp" lab up --dir "$labdir" --port "${GUARDPHONE_DEMO_PORT:-5061}" "${net[@]}"
if ((${#net[@]})); then
  alice=$labdir/agents/alice-laptop.json bob=$labdir/agents/bob-office.json
  calls=3  # from the laptop through the tunnel, from the hotel, from home
else
  echo "(not root: no network namespaces, so no WireGuard part; everything runs on loopback)"
  alice=$labdir/agents/alice.json bob=$labdir/agents/bob.json
fi

echo
echo "== bob (at his desk on the office LAN) registers and waits for calls"
"${office[@]}" "$gp" --config "$bob" answer --count "$calls" > "$out/bob.log" 2>&1 &
bob_pid=$!
for _ in $(seq 100); do
  grep -q '^registered' "$out/bob.log" && break
  kill -0 "$bob_pid" 2>/dev/null || { cat "$out/bob.log"; exit 1; }
  sleep 0.1
done
sed 's/^/   bob: /' "$out/bob.log"

echo
echo "== alice (on her laptop) registers and calls bob for 3 seconds"
"${laptop[@]}" "$gp" --config "$alice" call sip:bob@lab.guardphone.test --hangup-after 3 \
  | sed 's/^/ alice: /'

if ((${#net[@]})); then
  echo
  echo "== carol, in a hotel that blocks VPNs and hides her behind its NAT, calls bob:"
  echo "   the tunnel never comes up, so mutual TLS to the SBC, media through its relay"
  ip netns exec gp-guest "$gp" --config "$labdir/agents/carol-hotel.json" \
    call sip:bob@lab.guardphone.test --hangup-after 3 | sed 's/^/ carol: /'
  echo
  echo "== alice, at home behind her router's NAT, calls bob through the company's hosted SBC"
  ip netns exec gp-home "$gp" --config "$labdir/agents/alice-home.json" \
    call sip:bob@lab.guardphone.test --hangup-after 3 | sed 's/^/ alice: /'
fi
wait "$bob_pid"; bob_pid=

if ((${#net[@]})); then
  echo
  echo "== The hotel Wi-Fi blocks the tunnel: alice falls back to mutual TLS to the SBC"
  ip -n gp-laptop link set gp-wg-laptop down
  "${laptop[@]}" "$gp" --config "$alice" register --once | sed 's/^/ alice: /'
  echo
  echo "== ...and when the SBC cannot be reached either, nothing is sent at all"
  ip -n gp-office addr del 192.0.2.1/24 dev gp-office-e
  "${laptop[@]}" "$gp" --config "$alice" register --once | sed 's/^/ alice: /' || true
fi
echo
echo "== alice's device, checked locally (nothing sent)"
"$gp" --config "$alice" status
echo
echo "== alice's security event log: every step above, hash-chained"
"$gp" --config "$alice" events --type gate.refused --type gate.allowed --type call.established
"$gp" --config "$alice" events verify

echo
echo "== The portal beside the lab: dave enrolls with a token, registers, reports; the helpdesk reads it"
.venv/bin/python scripts/demo_portal.py "$labdir" "$out"

echo
echo "== The tray app: alice on her laptop, registered and ready to call bob"
if ((${#net[@]})); then  # put the lab back: tunnel up, SBC reachable
  ip -n gp-laptop link set gp-wg-laptop up
  ip -n gp-office addr add 192.0.2.1/24 dev gp-office-e
fi
"${office[@]}" "$gp" --config "$bob" answer > "$out/bob.log" 2>&1 &
bob_pid=$!
scripts/desktop-session.sh scripts/demo-tray.sh "$alice" "$out" "${laptop[@]}"
echo
echo "Demo done: registration only over a protected path; TLS 1.2, verified SBC, SRTP mandatory."
