#!/usr/bin/env bash
# tests/e2e_ota.sh — OTA from the command line, real broker, real tokens, devices booting
# through their verified chain:
#  * `fleetdrill rollout` to 30 devices with a 10 % canary completes: every stage passes its
#    gate, every device runs the new version, the boot records are clean (JSON checked);
#  * a crashing image halts at the canary stage: the 3 canary devices revert, the other 27
#    are never notified, nobody runs it (--expect halted exits 0);
#  * an image that never confirms is reverted at its trial deadline and halts the rollout too;
#  * `fleetdrill ota status` shows the halted job, its reason and the devices left 'pending';
#    the registry (sqlite3) holds every report and the signed documents as published;
#  * bad options are usage errors; no broker is left behind.
set -euo pipefail
FDL=${1:?usage: e2e_ota.sh path/to/fleetdrill}
. "$(dirname "$0")/e2e-lib.sh" ota
ST="$S/state"
N=30

# ---- a rollout that completes ------------------------------------------------------------
set +e
"$FDL" rollout --devices $N --canary 10 --profile flash --state "$ST" --json "$S/ok.json" --expect completed \
  >"$S/ok.out" 2>"$S/ok.err"
rc=$?
set -e
cat "$S/ok.out"
if [ $rc -eq 0 ]; then ok "rollout to $N devices completes (exit 0 with --expect completed)"; else
  bad "rollout exited $rc"; tail -20 "$S/ok.err"; fi
python3 - "$S/ok.json" $N <<'PY' && ok "every stage passed its gate, every device runs 1.1.0, boot records clean" || bad "completed rollout JSON"
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
j = r["job"]
assert j["state"] == "COMPLETED" and j["stage"] == 3, j
assert [s["devices"] for s in j["stages"]] == [3, 12, 15], j["stages"]
assert all(s["notified"] and s["confirmed"] == s["devices"] and s["failed"] == 0 for s in j["stages"]), j["stages"]
assert j["confirmed"] == n and j["pending"] == 0
assert r["fleet"]["on_new_version"] == n and r["fleet"]["in_trial"] == 0 and r["fleet"]["in_recovery"] == 0, r["fleet"]
b = r["boot_records"]
assert b["devices"] == n and b["violations"] == 0 and b["images_ran"] >= 4 * 2 * n, b
assert r["image"]["version"] == "1.1.0" and r["image"]["counter"] == 2
PY

# ---- a crashing image: halted at the canary ----------------------------------------------
set +e
"$FDL" rollout --devices $N --canary 10 --behaviour crash --profile flash --state "$ST" --json "$S/crash.json" \
  --expect halted >"$S/crash.out" 2>"$S/crash.err"
rc=$?
set -e
cat "$S/crash.out"
if [ $rc -eq 0 ]; then ok "crashing image: rollout halted at the canary (exit 0 with --expect halted)"; else
  bad "crash rollout exited $rc"; tail -20 "$S/crash.err"; fi
python3 - "$S/crash.json" $N <<'PY' && ok "canary reverted, the other 27 never notified, nobody runs the bad image" || bad "halted rollout JSON"
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
j = r["job"]
assert j["state"] == "HALTED" and j["stage"] == 1, j
assert j["reverted"] == 3 and j["pending"] == n - 3, j
assert not j["stages"][1]["notified"] and not j["stages"][2]["notified"], j["stages"]
assert "halted, 27 devices never notified" in j["reason"], j["reason"]
f = r["fleet"]
assert f["on_new_version"] == 0 and f["untouched"] == n - 3 and f["ever_reverted"] == 3, f
assert r["boot_records"]["violations"] == 0 and r["boot_records"]["reverted_boots"] == 3, r["boot_records"]
PY

# ---- never confirms: reverted at the trial deadline --------------------------------------
set +e
"$FDL" rollout --devices 10 --canary 10 --behaviour no-confirm --trial 40 --time-scale 20 --profile flash \
  --state "$ST" --json "$S/nc.json" --expect halted >"$S/nc.out" 2>"$S/nc.err"
rc=$?
set -e
cat "$S/nc.out"
python3 - "$S/nc.json" <<'PY' && [ $rc -eq 0 ] && ok "never-confirming image reverted at its deadline, rollout halted" || bad "no-confirm rollout (exit $rc)"
import json, sys
r = json.load(open(sys.argv[1]))
j = r["job"]
assert j["state"] == "HALTED" and j["stage"] == 1 and j["reverted"] == 1 and j["pending"] == 9, j
assert r["boot_records"]["violations"] == 0, r["boot_records"]
PY

# ---- the registry's account --------------------------------------------------------------
job=$(json "$S/nc.json" "['image']['job']")
"$FDL" ota status --state "$ST" >"$S/list.out"
cat "$S/list.out"
if grep -q "$job.*HALTED" "$S/list.out"; then ok "ota status lists the halted job"; else bad "ota status list"; fi
"$FDL" ota status "$job" --state "$ST" --all >"$S/job.out"
head -5 "$S/job.out"
if grep -q "HALTED at stage 1" "$S/job.out" && grep -q "reverted 1" "$S/job.out" && grep -q "pending 9" "$S/job.out" \
   && grep -q "not confirmed by its deadline" "$S/job.out"; then
  ok "ota status JOB: the halt, the reverted canary and the 9 devices left pending"; else bad "ota status JOB"; fi
"$FDL" ota status "$job" --state "$ST" --json >"$S/job.json"
python3 - "$S/job.json" <<'PY' && ok "ota status --json" || bad "ota status --json"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["state"] == "HALTED" and r["by_step"] == {"reverted": 1, "pending": 9}, r["by_step"]
assert len(r["devices"]) == 10
PY
if command -v sqlite3 >/dev/null; then
  reports=$(sqlite3 "$ST/registry.db" "SELECT count(*) FROM ota_reports WHERE job = '$job'")
  docs=$(sqlite3 "$ST/registry.db" "SELECT count(*) FROM ota_documents WHERE job = '$job' AND published_ms IS NOT NULL")
  if [ "$reports" -ge 6 ] && [ "$docs" -eq 1 ]; then
    ok "registry: $reports reports logged, the signed document recorded as published"; else
    bad "registry reports=$reports documents=$docs"; fi
fi

# ---- a signing-key rotation, its dual-trust window, and stranded devices -------------------
# Rotate the application key (next), roll out the keyring that trusts both, then retire the
# old key too early: the keyring that drops it cannot run (every device's application is
# still signed by it), the canary reverts, the rollout halts and the rest stay stranded on
# the old keyring. Done in order — re-sign with the new key, roll it out, then the keyring —
# it completes.
R="$S/rot"
RO=(--devices 10 --profile flash --state "$R")
nrot=0
rot() { nrot=$((nrot + 1)); "$FDL" rollout "${RO[@]}" "$@" >"$S/rot.out" 2>"$S/rot-$nrot.err"; }
set +e
rot --expect completed; r0=$?
"$FDL" fw keys rotate --tier application --state "$R" >/dev/null; r1=$?
rot --keep --tier keyring --expect completed; r2=$?
"$FDL" fw keys retire --tier application --state "$R" >/dev/null; r3=$?
rot --keep --tier keyring --canary 10 --expect halted; r4=$?
cp "$S/rot.out" "$S/rot-early.out"
rot --keep --version 1.2.0 --counter 3 --generation 2 --expect completed; r5=$?
rot --keep --tier keyring --expect completed; r6=$?
set -e
cat "$S/rot-early.out"
if [ "$r0$r1$r2$r3$r4$r5$r6" = "0000000" ]; then
  ok "key rotation: keyring with both keys, then the new key's image, then the keyring without the old key"; else
  bad "key rotation exits $r0 $r1 $r2 $r3 $r4 $r5 $r6"; tail -n 5 "$S"/rot-*.err; fi
if grep -q "stranded            10 devices did not confirm keyring counter 3" "$S/rot-early.out" \
   && grep -q "keyring trial reverted" "$R/devices/dev-000000/fw/boots.jsonl"; then
  ok "retired too early: the keyring reverts on the canary, the fleet is reported stranded"; else
  bad "early retire: no stranded report"; fi

# ---- usage -------------------------------------------------------------------------------
set +e
"$FDL" rollout --stages 10,5,100 >/dev/null 2>&1; r1=$?
"$FDL" rollout --behaviour explode >/dev/null 2>&1; r2=$?
"$FDL" ota status nope --state "$ST" >/dev/null 2>&1; r3=$?
set -e
if [ $r1 -eq 2 ] && [ $r2 -eq 2 ] && [ $r3 -eq 1 ]; then ok "bad stages and behaviour are usage errors, an unknown job an error"; else
  bad "usage exits $r1 $r2 $r3"; fi

if pgrep -f "$S/.*mosquitto\.conf" >/dev/null; then bad "a broker was left running"; else ok "no broker left behind"; fi
e2e_finish
