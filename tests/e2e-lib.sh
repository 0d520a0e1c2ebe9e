# tests/e2e-lib.sh — sourced by tests/e2e_*.sh (not a test itself: the name does not
# match e2e_*.sh). After `FDL=...`, `. "$(dirname "$0")/e2e-lib.sh" NAME` gives:
#   S                a fresh temporary directory, removed on exit with every process
#                    the test started (pids+=(...)) and any broker configured under it
#   ok MSG / bad MSG one check passed / failed
#   json FILE EXPR   a value from a JSON file, e.g. json f.json "['broker']['port']"
#   wait_run_json [DIR]  until DIR/run.json (default $S) exists: a run is up
#   e2e_finish       prints the tally; the test's exit status
E2E_NAME=${1:?usage: . e2e-lib.sh NAME}
S=$(mktemp -d "/tmp/fdl-e2e-$E2E_NAME-XXXXXX")
fails=0; passes=0; pids=()
e2e_cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  pkill -9 -f "$S/.*mosquitto\.conf" 2>/dev/null || true
  rm -rf "$S"
}
trap e2e_cleanup EXIT
ok()  { echo "ok   - $*"; passes=$((passes + 1)); }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval('d'+sys.argv[2]))" "$@"; }
wait_run_json() {
  local d=${1:-$S}
  for _ in $(seq 1 300); do [ -s "$d/run.json" ] && return 0; sleep 0.2; done
  return 1
}
e2e_finish() {
  echo "$E2E_NAME: $passes passed, $fails failed"
  [ "$fails" -eq 0 ]
}
