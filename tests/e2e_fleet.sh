#!/usr/bin/env bash
# tests/e2e_fleet.sh — end to end with standard tools against a live `fleetdrill run`:
#  * every device connects and telemetry is acknowledged;
#  * an independent mosquitto_sub using a device's key from its token (PKCS#11 URI
#    through OpenSSL's pkcs11 engine) receives a command the operator actor sends;
#  * the broker refuses TLS 1.2 and clients without a certificate;
#  * pkcs11-tool cannot read the device private key;
#  * SIGTERM stops the run cleanly and SIGKILL of fleetdrill leaves no broker behind.
set -euo pipefail
FDL=${1:?usage: e2e_fleet.sh path/to/fleetdrill}
. "$(dirname "$0")/e2e-lib.sh" fleet
port_of() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['broker']['port'])" "$S/run.json"; }
broker_alive() { pgrep -f "$S/broker/mosquitto.conf" >/dev/null; }

N=12
"$FDL" run --devices $N --duration 18 --state "$S" --json "$S/summary.json" >"$S/run.out" 2>&1 &
run_pid=$!; pids+=("$run_pid")
wait_run_json || { cat "$S/run.out"; echo "FAIL - run.json never appeared"; exit 1; }
PORT=$(port_of)
ok "broker up on 127.0.0.1:$PORT"

# A device identity used from outside fleetdrill, key straight from its token.
"$FDL" device show dev-000003 --state "$S" --json >"$S/show.json"
CLI=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['mosquitto_cli_dir'])" "$S/show.json")
URI=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['key_uri'])" "$S/show.json")
PIN=$(cat "$S/devices/dev-000003/pin")
# Under the default device policy the identity may read its own commands topic only;
# the operator actor (its own certificate) sends it a command.
(cd "$CLI" && SOFTHSM2_CONF="$S/hsm/softhsm2.conf" OPENSSL_CONF="$S/hsm/openssl-pkcs11.cnf" \
   timeout 20 mosquitto_sub -h localhost -p "$PORT" --cafile "$S/pki/root.pem" \
   --cert "$S/devices/dev-000003/cert.pem" --keyform engine --tls-engine pkcs11 \
   --key "$URI;pin-value=$PIN" -i e2e-probe -t commands/dev-000003 -C 1 -W 15) >"$S/sub.out" 2>&1 &
sub_pid=$!
sleep 3
timeout 10 mosquitto_pub -h localhost -p "$PORT" --cafile "$S/pki/root.pem" --cert "$S/pki/actors/svc-operator.pem" \
  --key "$S/pki/actors/svc-operator-key.pem" -i e2e-operator -q 1 -t commands/dev-000003 -m '{"cmd":"blink"}' \
  >"$S/op.out" 2>&1 || true
if wait "$sub_pid" && grep -q '"cmd":"blink"' "$S/sub.out"; then
  ok "mosquitto_sub with dev-000003's token key received the operator's command: $(head -c 100 "$S/sub.out")"
else
  bad "mosquitto_sub with the device's PKCS#11 key got nothing: $(cat "$S/sub.out") / $(cat "$S/op.out")"
fi

# Transport: TLS 1.2 and certificate-less clients are refused.
if echo | timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -tls1_2 -CAfile "$S/pki/root.pem" \
     >"$S/tls12.out" 2>&1; then
  bad "openssl s_client -tls1_2 completed a handshake"
else
  ok "openssl s_client -tls1_2 refused ($(grep -m1 -oE 'alert protocol version|no protocols available|handshake failure' "$S/tls12.out" || echo refused))"
fi
if timeout 10 mosquitto_pub -h localhost -p "$PORT" --cafile "$S/pki/root.pem" -t telemetry/x -m hi \
     >"$S/nocert.out" 2>&1; then
  bad "a client without a certificate could publish"
else
  ok "client without a certificate refused"
fi

# Hardware: the private key cannot be read out of the token.
M=/usr/lib/softhsm/libsofthsm2.so
if SOFTHSM2_CONF="$S/hsm/softhsm2.conf" pkcs11-tool --module $M --token-label dev-000003 --login --pin "$PIN" \
     --read-object --type privkey --label device-key -o "$S/stolen.der" >"$S/p11.out" 2>&1 && [ -s "$S/stolen.der" ]; then
  bad "pkcs11-tool read the private key"
else
  ok "pkcs11-tool cannot read the private key ($(tr '\n' ' ' <"$S/p11.out" | head -c 120))"
fi
SOFTHSM2_CONF="$S/hsm/softhsm2.conf" pkcs11-tool --module $M --token-label dev-000003 --login --pin "$PIN" \
  --list-objects --type privkey >"$S/attrs.out" 2>&1 || true
if grep -q 'always sensitive, never extractable' "$S/attrs.out"; then
  ok "private key listed as sensitive: $(grep -m1 -i 'Access' "$S/attrs.out" | xargs)"
else
  bad "unexpected key attributes: $(cat "$S/attrs.out")"
fi

# The run itself: all connected, clean exit, no broker left.
if wait "$run_pid"; then ok "fleetdrill run exited 0"; else bad "fleetdrill run exited $?: $(tail -20 "$S/run.out")"; fi
CONNECTED=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['result']['connected'])" "$S/summary.json")
ACKED=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['result']['messages']['acknowledged'])" "$S/summary.json")
[ "$CONNECTED" = "$N" ] && ok "$CONNECTED/$N devices connected" || bad "only $CONNECTED/$N connected"
[ "$ACKED" -gt 0 ] && ok "$ACKED telemetry messages acknowledged" || bad "no telemetry acknowledged"
[ ! -e "$S/run.json" ] && ok "run.json removed at the end" || bad "run.json left behind"
broker_alive && bad "broker still running after the run" || ok "no broker left after a normal end"

# SIGTERM: graceful stop, broker stopped, exit 130.
"$FDL" run --devices 4 --duration 120 --state "$S" >"$S/term.out" 2>&1 &
p=$!; pids+=("$p")
wait_run_json && sleep 2
kill -TERM "$p"
rc=0; wait "$p" || rc=$?
[ "$rc" = 130 ] && ok "SIGTERM: exit 130" || bad "SIGTERM: exit $rc"
sleep 0.5
broker_alive && bad "broker left after SIGTERM" || ok "no broker left after SIGTERM"

# SIGKILL: nothing can run in fleetdrill, the broker must still go (parent-death signal).
rm -f "$S/run.json"
"$FDL" run --devices 4 --duration 120 --state "$S" >"$S/kill.out" 2>&1 &
p=$!; pids+=("$p")
wait_run_json && sleep 1
broker_alive || bad "broker not running before SIGKILL"
kill -KILL "$p"; wait "$p" 2>/dev/null || true
for _ in $(seq 1 50); do broker_alive || break; sleep 0.1; done
broker_alive && bad "broker orphaned after SIGKILL of fleetdrill" || ok "no broker left after SIGKILL"

e2e_finish
