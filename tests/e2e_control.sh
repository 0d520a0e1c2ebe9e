#!/usr/bin/env bash
# tests/e2e_control.sh — the control plane against a live `fleetdrill run`, with
# standard tools (mosquitto_pub/sub with a device's key from its token; the
# ingest actor's own identity):
#  * device A cannot publish to B's topic (B's subscriber sees nothing), '#' gets
#    nothing, its own telemetry topic works;
#  * `fleetdrill revoke A` drops A within 1 s, A's identity is refused after, the
#    other devices keep publishing; A's firmware ends in its revoked state;
#  * `fleetdrill audit` flags the certificates this test used from a second client
#    (cert-shared), then a device policy widened to telemetry/# as high severity.
set -euo pipefail
FDL=${1:?usage: e2e_control.sh path/to/fleetdrill}
. "$(dirname "$0")/e2e-lib.sh" ctl

N=6; A=dev-000001; B=dev-000002
"$FDL" run --devices $N --duration 40 --telemetry-interval 1 --state "$S" --json "$S/summary.json" \
  >"$S/run.out" 2>&1 &
run_pid=$!; pids+=("$run_pid")
wait_run_json || { cat "$S/run.out"; echo "FAIL - run.json never appeared"; exit 1; }
PORT=$(json "$S/run.json" "['broker']['port']")
LOG=$(json "$S/run.json" "['broker']['log']")
ok "fleet up, broker on 127.0.0.1:$PORT"

# A device's identity from outside fleetdrill: its certificate, its key in its token.
dev() {  # dev ID TOOL ARGS...
  local id=$1 tool=$2; shift 2
  "$FDL" device show "$id" --state "$S" --json >"$S/show-$id.json"
  local cli uri pin
  cli=$(json "$S/show-$id.json" "['mosquitto_cli_dir']")
  uri=$(json "$S/show-$id.json" "['key_uri']")
  pin=$(cat "$S/devices/$id/pin")
  (cd "$cli" && SOFTHSM2_CONF="$S/hsm/softhsm2.conf" OPENSSL_CONF="$S/hsm/openssl-pkcs11.cnf" \
     timeout 20 "$tool" -h localhost -p "$PORT" --cafile "$S/pki/root.pem" --cert "$S/devices/$id/cert.pem" \
     --keyform engine --tls-engine pkcs11 --key "$uri;pin-value=$pin" "$@")
}
# The ingest actor: reads telemetry/+ with its own certificate and nothing else.
timeout 60 mosquitto_sub -h localhost -p "$PORT" --cafile "$S/pki/root.pem" \
  --cert "$S/pki/actors/svc-ingest.pem" --key "$S/pki/actors/svc-ingest-key.pem" -i ingest-e2e \
  -t 'telemetry/+' -v >"$S/ingest.out" 2>&1 &
pids+=("$!")
sleep 2
grep -q "^telemetry/$B " "$S/ingest.out" && ok "ingest actor receives $B's telemetry" \
  || bad "ingest actor got nothing: $(head -3 "$S/ingest.out")"

MARK='{"seq":987654321,"ts":1,"battery":50,"torque":1,"usage_minutes":1}'
dev $A mosquitto_pub -i e2e-a1 -q 1 -t "telemetry/$B" -m "$MARK" >"$S/x.out" 2>&1 || true
sleep 1
grep -q 987654321 "$S/ingest.out" && bad "$A's publish to telemetry/$B reached B's subscriber" \
  || ok "$A's publish to telemetry/$B did not reach B's subscriber"
grep -q "denied $A publish to telemetry/$B" "$LOG" && ok "broker log: denied $A publish to telemetry/$B" \
  || bad "no denial logged for $A -> telemetry/$B"

dev $A mosquitto_sub -i e2e-a2 -t '#' -C 1 -W 4 >"$S/wild.out" 2>&1 || true
grep -q '"seq"' "$S/wild.out" && bad "$A's '#' subscription received: $(head -c 200 "$S/wild.out")" \
  || ok "$A's '#' subscription received nothing ($(head -c 60 "$S/wild.out" | tr '\n' ' '))"

OWN='{"seq":123454321,"ts":1,"battery":50,"torque":1,"usage_minutes":1}'
dev $A mosquitto_pub -i e2e-a3 -q 1 -t "telemetry/$A" -m "$OWN" >"$S/own.out" 2>&1 \
  && sleep 1 && grep -q "^telemetry/$A .*123454321" "$S/ingest.out" \
  && ok "$A's publish to telemetry/$A delivered" || bad "$A could not publish to its own topic: $(cat "$S/own.out")"

JUNK='{"seq":"not a number","junk":true}'
dev $B mosquitto_pub -i e2e-b1 -q 1 -t "telemetry/$B" -m "$JUNK" >/dev/null 2>&1 || true
sleep 1
grep -q "not a number" "$S/ingest.out" && bad "a junk payload reached the ingest subscriber" \
  || ok "junk payload dropped before any subscriber ($(grep -m1 -o 'dropped payload from [^:]*' "$LOG" || echo no log))"

# Revocation.
before_b=$(grep -c "^telemetry/$B " "$S/ingest.out" || true)
"$FDL" revoke $A --state "$S" --json "$S/revoke.json" >"$S/revoke.out" 2>&1 \
  && ok "revoke: $(head -2 "$S/revoke.out" | tail -1 | xargs)" || bad "revoke failed: $(cat "$S/revoke.out")"
MS=$(json "$S/revoke.json" "['disconnect_ms']")
python3 -c "import sys; sys.exit(0 if 0 <= float(sys.argv[1]) < 1000 else 1)" "$MS" \
  && ok "$A disconnected $MS ms after the request (< 1 s)" || bad "disconnect took $MS ms"
if dev $A mosquitto_pub -i e2e-a4 -q 1 -t "telemetry/$A" -m "$OWN" >"$S/after.out" 2>&1; then
  bad "$A's identity still publishes after revocation"
else
  ok "$A's identity refused after revocation ($(head -c 80 "$S/after.out" | tr '\n' ' '))"
fi
grep -q "refused connection .*client id e2e-a4): certificate revoked" "$LOG" \
  && ok "broker log: refused e2e-a4: certificate revoked" || bad "no 'certificate revoked' refusal logged"
sleep 3
after_b=$(grep -c "^telemetry/$B " "$S/ingest.out" || true)
[ "$after_b" -gt "$before_b" ] && ok "$B kept publishing after the revocation ($before_b -> $after_b messages)" \
  || bad "$B stopped publishing ($before_b -> $after_b)"

rc=0; wait "$run_pid" || rc=$?
[ "$rc" = 0 ] && ok "run exited 0" || bad "run exited $rc: $(tail -5 "$S/run.out")"
REV=$(json "$S/summary.json" "['result']['revoked_at_end']")
[ "$REV" = 1 ] && ok "$A's firmware ended in its revoked state (LED on)" || bad "revoked_at_end = $REV"

# Audit. This test itself used dev-000001's and dev-000002's identities from second
# clients while the fleet's devices were connected: the audit must say so (cert-shared),
# and no policy may be flagged yet.
rc=0; "$FDL" audit --state "$S" --json "$S/audit1.json" >"$S/audit1.out" 2>&1 || rc=$?
SHARED=$(python3 -c "import json,sys; f=json.load(open(sys.argv[1]))['findings']; print(sorted(set(x['message'].split('device ')[1].split(',')[0] for x in f if x['check']=='cert-shared')))" "$S/audit1.json")
POL=$(python3 -c "import json,sys; f=json.load(open(sys.argv[1]))['findings']; print(len([x for x in f if x['check']=='policy-wildcard' and x['severity'] in ('high','critical')]))" "$S/audit1.json")
[ "$rc" = 4 ] && [[ "$SHARED" == *dev-000002* ]] && [ "$POL" = 0 ] \
  && ok "audit: certificates used from two clients at once flagged ($SHARED), no policy finding" \
  || bad "audit before the edit: exit $rc, shared $SHARED, policy findings $POL: $(head -5 "$S/audit1.out")"
sqlite3 "$S/registry.db" "UPDATE policies SET text = text || 'allow subscribe telemetry/#' || char(10) WHERE name = 'device-default'"
rc=0; "$FDL" audit --state "$S" --json "$S/audit.json" >"$S/audit2.out" 2>&1 || rc=$?
SEV=$(python3 -c "import json,sys; f=json.load(open(sys.argv[1]))['findings']; print([x['severity'] for x in f if x['check']=='policy-wildcard' and x['object']=='device-default'])" "$S/audit.json")
[ "$rc" = 4 ] && [[ "$SEV" == *high* ]] && ok "audit flags device-default with telemetry/# as high (exit 4)" \
  || bad "audit: exit $rc, severities $SEV: $(head -5 "$S/audit2.out")"

# JITR: factory certificates, registered on first connect by the Lua rules; one
# device is on the recall list and must stay out.
J=$S/jitr
mkdir -p "$J"
cat >"$J/rules.lua" <<'LUA'
local recalled = { ["dev-000003"] = true }
function register(device)
  if recalled[device.id] then return false, "on the recall list" end
  if not device.sold then return false, "not sold" end
  return true, "device-default"
end
LUA
rc=0
"$FDL" run --devices 8 --duration 12 --provision jitr --registration-rules "$J/rules.lua" --state "$J/state" \
  --json "$J/summary.json" >"$J/run.out" 2>&1 || rc=$?
REG=$(json "$J/summary.json" "['result']['provisioning']['registered']")
REJ=$(json "$J/summary.json" "['result']['provisioning']['rejected']")
P99=$(json "$J/summary.json" "['result']['provisioning']['p99_us']")
[ "$rc" = 3 ] && [ "$REG" = 7 ] && [ "$REJ" = 1 ] \
  && ok "JITR: 7 devices registered on first connect (p99 $P99 us), the recalled one rejected (exit 3)" \
  || bad "JITR: exit $rc, registered $REG, rejected $REJ: $(tail -15 "$J/run.out")"
grep -q "registration: dev-000005 serial .* (factory CA) from 127\.10\.0\.6: certificate pending registration" \
  "$J/state/broker/mosquitto.log" && ok "registration window logged with serial, CA and source address" \
  || bad "no registration log line for dev-000005"
sqlite3 "$J/state/registry.db" "SELECT status, reason FROM certificates WHERE device_id = 'dev-000003'" \
  | grep -q "REVOKED|on the recall list" && ok "registry: dev-000003's certificate REVOKED, 'on the recall list'" \
  || bad "registry state of dev-000003: $(sqlite3 "$J/state/registry.db" "SELECT status, reason FROM certificates WHERE device_id = 'dev-000003'")"

e2e_finish
