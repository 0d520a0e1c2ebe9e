#!/usr/bin/env bash
# tests/e2e_claim.sh — provisioning by claim against a live `fleetdrill run
# --provision claim`, with standard tools holding the shared claim credential:
#  * 7 of 8 devices claim a certificate for the key in their token and reconnect
#    under it; the recalled one is refused and ends in its revoked state;
#  * a claimed identity works from outside fleetdrill (certificate + token key);
#  * the claim credential cannot publish telemetry, cannot read another client's
#    claim exchange, and cannot take over a provisioned device's client id;
#  * a CSR whose subject is not its client id, and one for a device the
#    registration rules do not know, are refused with their reasons.
set -euo pipefail
FDL=${1:?usage: e2e_claim.sh path/to/fleetdrill}
. "$(dirname "$0")/e2e-lib.sh" claim

cat >"$S/rules.lua" <<'LUA'
local recalled = { ["dev-000003"] = true }
function register(device)
  if recalled[device.id] then return false, "on the recall list" end
  if not device.sold then return false, "not sold" end
  return true, "device-default"
end
LUA
ST=$S/state
rc=0
"$FDL" run --devices 8 --duration 30 --telemetry-interval 1 --provision claim --registration-rules "$S/rules.lua" \
  --state "$ST" --json "$S/summary.json" >"$S/run.out" 2>&1 &
run_pid=$!; pids+=("$run_pid")
wait_run_json "$ST" || { cat "$S/run.out"; echo "FAIL - run.json never appeared"; exit 1; }
PORT=$(json "$ST/run.json" "['broker']['port']")
LOG=$(json "$ST/run.json" "['broker']['log']")
for _ in $(seq 1 100); do [ -s "$ST/devices/dev-000008/cert.pem" ] && break; sleep 0.2; done
sleep 1

CA=$ST/pki/root.pem
CLAIM=(--cert "$ST/pki/actors/claim.pem" --key "$ST/pki/actors/claim-key.pem")
ISSUER=$(openssl x509 -in "$ST/pki/intermediate.pem" -noout -subject | sed 's/^subject=//')
SUBJ=$(openssl x509 -in "$ST/devices/dev-000001/cert.pem" -noout -subject -issuer 2>&1)
echo "$SUBJ" | grep -q "subject=CN *= *dev-000001" && echo "$SUBJ" | grep -qF "issuer=${ISSUER}" \
  && ok "dev-000001 stored a certificate for CN=dev-000001 issued by the fleet's intermediate" \
  || bad "dev-000001's certificate: $SUBJ"

# The claimed certificate works with the key in the device's token (so it certifies that key).
"$FDL" device show dev-000001 --state "$ST" --json >"$S/show.json"
cli=$(json "$S/show.json" "['mosquitto_cli_dir']"); uri=$(json "$S/show.json" "['key_uri']")
pin=$(cat "$ST/devices/dev-000001/pin")
timeout 60 mosquitto_sub -h localhost -p "$PORT" --cafile "$CA" --cert "$ST/pki/actors/svc-ingest.pem" \
  --key "$ST/pki/actors/svc-ingest-key.pem" -i ingest-claim -t 'telemetry/+' -v >"$S/ingest.out" 2>&1 &
pids+=("$!")
sleep 1
MARK='{"seq":424242,"ts":1,"battery":50,"torque":1,"usage_minutes":1}'
(cd "$cli" && SOFTHSM2_CONF="$ST/hsm/softhsm2.conf" OPENSSL_CONF="$ST/hsm/openssl-pkcs11.cnf" \
   timeout 20 mosquitto_pub -h localhost -p "$PORT" --cafile "$CA" --cert "$ST/devices/dev-000001/cert.pem" \
   --keyform engine --tls-engine pkcs11 --key "$uri;pin-value=$pin" -i e2e-claimed -q 1 \
   -t telemetry/dev-000001 -m "$MARK") >"$S/own.out" 2>&1 || true
sleep 1
grep -q "^telemetry/dev-000001 .*424242" "$S/ingest.out" \
  && ok "the claimed certificate + the token's key publish to telemetry/dev-000001" \
  || bad "claimed identity could not publish: $(cat "$S/own.out")"

# The claim credential: its own claim exchange only.
CMARK='{"seq":777777,"ts":1,"battery":50,"torque":1,"usage_minutes":1}'
timeout 20 mosquitto_pub -h localhost -p "$PORT" --cafile "$CA" "${CLAIM[@]}" -i dev-000200 -q 1 \
  -t telemetry/dev-000002 -m "$CMARK" >/dev/null 2>&1 || true
sleep 1
! grep -q 777777 "$S/ingest.out" && grep -q "denied.*dev-000200.*telemetry/dev-000002\|telemetry/dev-000002.*dev-000200\|claim.*publish to telemetry/dev-000002" "$LOG" \
  && ok "claim credential: publish to telemetry/dev-000002 denied, nothing delivered" \
  || bad "claim credential publish: $(grep -n 'dev-000200' "$LOG" | tail -3)"
timeout 5 mosquitto_sub -h localhost -p "$PORT" --cafile "$CA" "${CLAIM[@]}" -i dev-000201 \
  -t '$fleet/claim/dev-000004/+' -W 3 >"$S/snoop.out" 2>&1 || true
grep -qi "denied" "$S/snoop.out" && ok "claim credential: another client's claim exchange is refused (SUBACK 0x80)" \
  || bad "claim snoop: $(cat "$S/snoop.out")"
timeout 10 mosquitto_pub -h localhost -p "$PORT" --cafile "$CA" "${CLAIM[@]}" -i dev-000002 -q 1 \
  -t '$fleet/claim/dev-000002/csr' -m x >"$S/takeover.out" 2>&1 || true
grep -q "client id dev-000002): claim certificate used with the client id of a provisioned device" "$LOG" \
  && ok "claim credential with a provisioned device's client id: connection refused (no session takeover)" \
  || bad "takeover: $(cat "$S/takeover.out"); $(grep dev-000002 "$LOG" | tail -2)"

# Hostile CSRs, answered on .../rejected.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=dev-000999 \
  -keyout "$S/k1.pem" -out "$S/wrongcn.csr" 2>/dev/null
timeout 15 mosquitto_rr -h localhost -p "$PORT" --cafile "$CA" "${CLAIM[@]}" -i dev-000210 -V 5 -W 10 \
  -t '$fleet/claim/dev-000210/csr' -e '$fleet/claim/dev-000210/rejected' -m "$(cat "$S/wrongcn.csr")" >"$S/rr1.out" 2>&1 || true
grep -q 'subject is "CN=dev-000999", not CN=<client id>' "$S/rr1.out" \
  && ok "CSR for another name (CN=dev-000999 from client dev-000210) refused" \
  || bad "wrong-CN CSR: $(cat "$S/rr1.out")"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=dev-000211 \
  -keyout "$S/k2.pem" -out "$S/unknown.csr" 2>/dev/null
timeout 15 mosquitto_rr -h localhost -p "$PORT" --cafile "$CA" "${CLAIM[@]}" -i dev-000211 -V 5 -W 10 \
  -t '$fleet/claim/dev-000211/csr' -e '$fleet/claim/dev-000211/rejected' -m "$(cat "$S/unknown.csr")" >"$S/rr2.out" 2>&1 || true
grep -q "not sold" "$S/rr2.out" && ok "CSR of a device with no manufacturing record refused by the rules ('not sold')" \
  || bad "unknown-device CSR: $(cat "$S/rr2.out")"

wait "$run_pid" || rc=$?
REG=$(json "$S/summary.json" "['result']['provisioning']['registered']")
ISS=$(json "$S/summary.json" "['result']['provisioning']['claim_issued']")
REV=$(json "$S/summary.json" "['result']['revoked_at_end']")
P99=$(json "$S/summary.json" "['result']['provisioning']['p99_us']")
[ "$rc" = 3 ] && [ "$REG" = 7 ] && [ "$ISS" = 7 ] && [ "$REV" = 1 ] \
  && ok "7 devices claimed their certificate (p99 $P99 us); recalled dev-000003 refused, LED on (exit 3)" \
  || bad "claim run: exit $rc, registered $REG, issued $ISS, revoked $REV: $(tail -15 "$S/run.out")"
[ ! -e "$ST/devices/dev-000003/cert.pem" ] && ok "dev-000003 holds no certificate" || bad "dev-000003 has a certificate"
N=$(sqlite3 "$ST/registry.db" "SELECT count(*) FROM certificates c JOIN devices d ON d.id = c.device_id
  WHERE c.status = 'ACTIVE' AND d.policy = 'device-default' AND c.device_id LIKE 'dev-%'")
[ "$N" = 7 ] && ok "registry: 7 ACTIVE device certificates with device-default" || bad "registry: $N ACTIVE"

# A second run: the devices now have their identity and connect with it directly.
rc=0
"$FDL" run --devices 8 --duration 4 --provision claim --registration-rules "$S/rules.lua" --state "$ST" \
  --json "$S/second.json" >"$S/run2.out" 2>&1 || rc=$?
CON=$(json "$S/second.json" "['result']['connected']")
CLM=$(json "$S/second.json" "['result']['provisioning']['claimed']")
[ "$CON" = 7 ] && [ "$CLM" = 0 ] && ok "second run: 7 devices connect with their stored identity, no new claim" \
  || bad "second run: connected $CON, claimed $CLM (exit $rc)"

e2e_finish
