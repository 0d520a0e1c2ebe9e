#!/usr/bin/env bash
# tests/e2e_drill.sh — the scenario engine end to end, real broker, real tokens:
#  * `fleetdrill drill scenarios/` runs every drill and all pass; every step names the
#    catching layer and its evidence; JSON, JUnit (xmllint + Python's parser) and HTML;
#  * `--without pinning` makes the rogue-CA drill fail with "missed" and the evidence of the leak;
#  * a scenario with a syntax error and one with an unknown attack give file:line errors
#    and the scenario after them still runs;
#  * `fleetdrill report --compare previous` shows the regression between the two runs;
#  * `fleetdrill matrix` on the rogue-CA drill shows which switch lets it through, and its
#    HTML report renders in headless Chromium without network (tests/e2e_report_html.sh);
#  * no broker is left behind.
set -euo pipefail
FDL=${1:?usage: e2e_drill.sh path/to/fleetdrill}
SRC=${FDL_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$(dirname "$0")/e2e-lib.sh" drill
ST="$S/state"
H="$S/history.db"

# ---- every drill passes ---------------------------------------------------------------
set +e
"$FDL" drill "$SRC/scenarios" --state "$ST" --history "$H" --json "$S/all.json" --junit "$S/all.xml" \
  --html "$S/all.html" --min-pass 100 >"$S/all.out" 2>"$S/all.err"
rc=$?
set -e
cat "$S/all.out"
if [ $rc -eq 0 ]; then ok "fleetdrill drill scenarios/ exits 0 at --min-pass 100"; else
  bad "fleetdrill drill scenarios/ exited $rc"; tail -40 "$S/all.err"; fi

python3 - "$S/all.json" <<'EOF' && ok "every drill ran and passed; every step names its layer and evidence" || bad "report content"
import json, sys
r = json.load(open(sys.argv[1]))
names = {s["name"] for s in r["scenarios"]}
want = {"stolen certificate (se)", "stolen certificate and key (flash)", "rogue-CA man in the middle",
        "TLS downgrade", "cross-device publish and subscribe", "wildcard policy misconfiguration",
        "junk payload", "revocation under load",
        "stolen certificate and cross-device publish (jitr fleet)",
        "stolen certificate and cross-device publish (claim fleet)",
        "firmware: unsigned image", "firmware: image signed with another tier's key",
        "firmware: rollback to an old signed image", "firmware: artifact tampered in the store",
        "firmware: compromised artifact store", "firmware: expired and replayed job documents",
        "firmware: job document for another device or hardware revision", "firmware: endless data",
        "firmware: slow retrieval", "firmware: new image never confirms (auto revert)",
        "firmware: bad canary halts the rollout"}
missing = want - names
assert not missing, f"drills missing: {missing}"
assert r["summary"]["errors"] == 0, r["summary"]
assert r["summary"]["pass_rate"] == 1.0, r["summary"]
for s in r["scenarios"]:
    assert s["passed"] and s["error"] is None, s["name"]
    assert s["steps"], f"{s['name']}: no steps"
    for st in s["steps"]:
        assert st["pass"], (s["name"], st["label"])
        assert st["actual"]["layer"] not in (None, "none"), (s["name"], st["label"])
        assert st["evidence"].startswith("verdict: "), st["evidence"][:80]
        assert len(st["evidence"].splitlines()) >= 3, st["evidence"]
rev = next(s for s in r["scenarios"] if s["name"] == "revocation under load")["steps"][0]
assert rev["respond_ms"] is not None and rev["respond_ms"] < 1000, rev["respond_ms"]
assert "never connected again" in rev["evidence"] and "LED) on" in rev["evidence"], rev["evidence"]
assert "stayed connected throughout" in rev["evidence"], rev["evidence"]
flash = next(s for s in r["scenarios"] if s["name"] == "stolen certificate and key (flash)")["steps"]
assert [x["actual"]["outcome"] for x in flash] == ["contained", "detected"], flash
assert "cert-shared" in flash[1]["evidence"]
# The firmware drills: the device checks are the firmware layer's, with the device's own
# report and its boot records as evidence; the bad canary is also contained by the gate.
for s in r["scenarios"]:
    if not s["name"].startswith("firmware: "):
        continue
    for st in s["steps"]:
        ev = st["evidence"]
        assert "boot records" in ev or "job service:" in ev, (s["name"], ev[:300])
        if st["actual"]["layer"] == "firmware" and st["attack"] != "bad-canary":
            want = ("reported reverted",) if st["actual"]["outcome"] == "contained" else ("reported rejected", "reported failed")
            assert any(w in ev for w in want), (s["name"], ev[:400])
            assert "the attacker's image RUNS" not in ev and "UNVERIFIED" not in ev, ev[:400]
canary = next(s for s in r["scenarios"] if s["name"] == "firmware: bad canary halts the rollout")["steps"]
assert [(x["actual"]["outcome"], x["actual"]["layer"]) for x in canary] == [("contained", "cloud"), ("contained", "firmware")], canary
assert "HALTED" in canary[0]["evidence"] and "18 devices never notified" in canary[0]["evidence"]
EOF

if xmllint --noout "$S/all.xml"; then ok "JUnit XML is well-formed (xmllint)"; else bad "xmllint refused the JUnit XML"; fi
python3 - "$S/all.xml" "$S/all.json" <<'EOF' && ok "JUnit: one testcase per attack step, no failures (ElementTree)" || bad "JUnit content"
import json, sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
r = json.load(open(sys.argv[2]))
cases = root.findall(".//testcase")
steps = sum(len(s["steps"]) for s in r["scenarios"])
assert root.tag == "testsuites" and len(cases) == steps, (root.tag, len(cases), steps)
assert not root.findall(".//failure") and not root.findall(".//error")
EOF
if grep -q '<svg' "$S/all.html" && ! grep -Eqi '(src|href)="?(https?:)?//' "$S/all.html"; then
  ok "HTML report is self-contained with inline charts"; else bad "HTML report"; fi

# ---- pinning off: the rogue CA gets through ------------------------------------------------
set +e
"$FDL" drill "$SRC/scenarios/rogue_ca_mitm.lua" --state "$ST" --history "$H" --without pinning \
  --json "$S/nopin.json" --junit "$S/nopin.xml" --quiet >"$S/nopin.out" 2>&1
rc=$?
set -e
cat "$S/nopin.out"
if [ $rc -eq 4 ]; then ok "--without pinning: below --min-pass, exit 4"; else bad "--without pinning exited $rc"; fi
python3 - "$S/nopin.json" <<'EOF' && ok "--without pinning: rogue-CA drill fails with missed and the leak as evidence" || bad "pinning-off verdict"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ablation"] == "pinning"
st = r["scenarios"][0]["steps"][0]
assert not st["pass"] and st["actual"]["outcome"] == "missed", st
assert "credentials and data leaked to the MITM" in st["evidence"], st["evidence"]
assert "server verification OFF" in st["evidence"]
EOF
if xmllint --noout "$S/nopin.xml" && grep -q 'message="expected blocked by transport, got missed"' "$S/nopin.xml"; then
  ok "JUnit failure message: expected blocked by transport, got missed"; else bad "JUnit failure message"; fi

# ---- report --compare ------------------------------------------------------------------------
# The same drill again, now judged against a stricter expectation: its step no longer passes.
mkdir -p "$S/changed"
sed 's/expect = "blocked", layer = "transport",/expect = "blocked", layer = "identity",/' \
  "$SRC/scenarios/rogue_ca_mitm.lua" >"$S/changed/rogue_ca_mitm.lua"
"$FDL" drill "$SRC/scenarios/rogue_ca_mitm.lua" --state "$ST" --history "$H" --quiet >/dev/null 2>&1 || true
"$FDL" drill "$S/changed/rogue_ca_mitm.lua" --state "$ST" --history "$H" --quiet >/dev/null 2>&1 || true
set +e
"$FDL" report --compare previous --history "$H" >"$S/compare.out" 2>&1
rc=$?
set -e
cat "$S/compare.out"
if [ $rc -eq 4 ] && grep -qi "regression" "$S/compare.out" && grep -q "rogue-ca" "$S/compare.out"; then
  ok "report --compare previous shows the regression (exit 4)"; else bad "report --compare (exit $rc)"; fi
"$FDL" report --list --history "$H" >"$S/list.out"
if [ "$(grep -c '^ *[0-9]' "$S/list.out" || true)" -ge 4 ]; then ok "report --list shows every run"; else
  cat "$S/list.out"; bad "report --list"; fi

# ---- a drill written outside the project: its own lib/, device numbers, no steps -------------
mkdir -p "$S/team/lib"
printf 'local M = {}\nfunction M.two() return 2 end\nreturn M\n' >"$S/team/lib/teamlib.lua"
cat >"$S/team/checks.lua" <<'LUA'
scenario { name = "team checks" }
local t = require "teamlib"
local f = fleet { devices = 3 }
drill.check(t.two() == 2, "require finds lib/ next to the drill")
drill.check(#drill.others(f, 2) == 2 and #drill.others(f, f:device(2)) == 2, "others takes a number")
drill.check(f:device(1):state().last_failure == nil, "last_failure is nil before any failure")
local r = f:revoke(3, "team drill")
drill.check(r.certificates == 1 and r.error == nil, "revoke: one certificate, error nil")
LUA
set +e
"$FDL" drill "$S/team" --state "$ST" --no-history --quiet --min-pass 0 >"$S/team.out" 2>&1
rc=$?
set -e
if [ $rc -eq 4 ] && grep -q "^PASS team checks" "$S/team.out" && grep -q "no attack step ran" "$S/team.out"; then
  ok "a drill outside the project: own lib/, device numbers, nil error; no steps is not a pass"
else cat "$S/team.out"; bad "team drill (exit $rc)"; fi

# ---- broken scenarios are reported with file:line, the next one still runs ------------------
mkdir -p "$S/broken"
printf 'scenario { name = "broken syntax" }\nlocal f = fleet { devices = 2 }\nif then\n' >"$S/broken/a_syntax.lua"
printf 'local f = fleet { devices = 2 }\n\nstep { attack = attacks.time_travel { victim = f:device(1) },\n  expect = "blocked", layer = "cloud" }\n' >"$S/broken/b_unknown.lua"
cp "$SRC/scenarios/tls_downgrade.lua" "$S/broken/c_good.lua"
set +e
"$FDL" drill "$S/broken" --state "$ST" --no-history --json "$S/broken.json" --quiet >"$S/broken.out" 2>&1
rc=$?
set -e
cat "$S/broken.out"
if [ $rc -eq 4 ] && grep -q "a_syntax.lua:3: unexpected symbol near 'then'" "$S/broken.out" \
   && grep -q "b_unknown.lua:3: unknown attack 'time_travel'" "$S/broken.out"; then
  ok "syntax error and unknown attack reported with file:line"; else bad "file:line errors (exit $rc)"; fi
python3 - "$S/broken.json" <<'EOF' && ok "the scenario after the broken ones still ran and passed" || bad "run goes on"
import json, sys
r = json.load(open(sys.argv[1]))
assert [s["error"] is not None for s in r["scenarios"]] == [True, True, False], r["scenarios"]
assert r["scenarios"][2]["passed"] and len(r["scenarios"][2]["steps"]) == 2
EOF

# ---- the matrix --------------------------------------------------------------------------------
set +e
"$FDL" matrix "$SRC/scenarios/rogue_ca_mitm.lua" --switches pinning,policy --state "$ST" --no-history \
  --html "$S/matrix.html" --json "$S/matrix.json" --quiet >"$S/matrix.out" 2>&1
rc=$?
set -e
cat "$S/matrix.out"
if [ $rc -eq 0 ] && grep -Eq '^rogue-ca +blocked/transport +missed +blocked/transport +1 +1' "$S/matrix.out"; then
  ok "matrix: pinning alone stands between the rogue CA and success"; else bad "matrix output (exit $rc)"; fi
python3 - "$S/matrix.json" <<'EOF' && ok "matrix in the JSON report" || bad "matrix JSON"
import json, sys
m = json.load(open(sys.argv[1]))["matrix"]
assert m["switches"] == ["baseline", "pinning", "policy"], m["switches"]
row = m["attacks"][0]
assert row["attack"] == "rogue-ca" and row["independent_layers"] == 1
assert [c["outcome"] for c in row["cells"]] == ["blocked", "missed", "blocked"]
EOF
if grep -qi "matrix" "$S/matrix.html"; then ok "matrix in the HTML report"; else bad "matrix HTML"; fi
# The drill's own HTML page (tables, charts, the matrix heat map) in headless Chromium, no network.
if FDL_BUILD_DIR="${FDL_BUILD_DIR:-$S}" FDL_REPORT_HTML="$S/matrix.html" FDL_REPORT_HTML_NAME=e2e_drill_html \
   bash "$SRC/tests/e2e_report_html.sh" "$FDL" >"$S/render.out" 2>&1; then
  ok "the matrix report renders offline in headless Chromium: $(tail -1 "$S/render.out")"
else
  cat "$S/render.out"; bad "the drill's HTML report did not render"
fi

if pgrep -f "$ST/broker/mosquitto.conf" >/dev/null; then bad "a broker is still running"; else ok "no broker left behind"; fi

e2e_finish
