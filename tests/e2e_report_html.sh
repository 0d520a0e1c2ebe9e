#!/usr/bin/env bash
# tests/e2e_report_html.sh — the HTML report renders in a real browser (headless Chromium)
# with networking impossible, and the screenshot shows a page, not an empty window.
#
# $1 is the fleetdrill binary (unused: the sample report comes from test_report, which
# writes it when FDL_REPORT_SAMPLE_OUT is set). Chromium runs in a network namespace with
# no interface at all (unshare -n, root) and, in case that is unavailable, with a dead
# proxy and a resolver that resolves nothing. Fails, never skips, when Chromium is missing.
# The page and the screenshot stay in $FDL_BUILD_DIR/e2e_report_html/ for people and CI.
#
# FDL_REPORT_HTML=<page> renders that page instead of the sample (tests/e2e_drill.sh renders
# a real drill's report this way), into $FDL_BUILD_DIR/${FDL_REPORT_HTML_NAME:-e2e_report_html}/.
set -euo pipefail

build=${FDL_BUILD_DIR:?FDL_BUILD_DIR must point at the build directory}
die() { echo "e2e_report_html: $*" >&2; exit 1; }

browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || die "chromium is not installed (scripts/setup-deps installs it)"

out="$build/${FDL_REPORT_HTML_NAME:-e2e_report_html}"
rm -rf "$out"
mkdir -p "$out"
profile=$(mktemp -d /tmp/fdl-e2e-chromium-XXXXXX)
trap 'rm -rf "$profile"' EXIT

if [ -n "${FDL_REPORT_HTML:-}" ]; then
  cp "$FDL_REPORT_HTML" "$out/report.html" || die "cannot read $FDL_REPORT_HTML"
else
  [ -x "$build/tests/test_report" ] || die "$build/tests/test_report not built"
  FDL_REPORT_SAMPLE_OUT="$out/report.html" "$build/tests/test_report" || die "could not write the sample report"
fi
[ -s "$out/report.html" ] || die "empty report page"

isolate=()
if unshare -n true 2>/dev/null; then
  isolate=(unshare -n)
else
  echo "e2e_report_html: no network namespace (not root?); relying on the dead proxy and resolver rules" >&2
fi

# --no-sandbox: Chromium refuses to run as root with its sandbox; the page is our own file.
if ! timeout 120 "${isolate[@]}" "$browser" --headless --no-sandbox --disable-gpu --no-first-run \
      --user-data-dir="$profile" --proxy-server=127.0.0.1:9 --host-resolver-rules="MAP * ~NOTFOUND" \
      --disable-background-networking --disable-component-update --disable-sync \
      --window-size=1280,2000 --screenshot="$out/report.png" "file://$out/report.html" \
      >"$out/chromium.log" 2>&1; then
  cat "$out/chromium.log" >&2
  die "chromium failed or timed out"
fi

png="$out/report.png"
[ -f "$png" ] || { cat "$out/chromium.log" >&2; die "no screenshot written"; }
magic=$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')
[ "$magic" = "89504e470d0a1a0a" ] || die "screenshot is not a PNG (magic $magic)"
# IHDR: width and height, big-endian, at bytes 16..23.
dims=$(od -An -tu1 -j16 -N8 "$png" | awk '{ printf "%d %d", (($1*256+$2)*256+$3)*256+$4, (($5*256+$6)*256+$7)*256+$8 }')
[ "$dims" = "1280 2000" ] || die "screenshot is $dims, expected 1280 2000"
# A blank 1280x2000 page compresses to a few kilobytes; tables, colours and charts do not.
size=$(stat -c %s "$png")
[ "$size" -gt 40000 ] || die "screenshot is only $size bytes: the page did not render"
echo "e2e_report_html: $png ($size bytes, $dims) rendered offline"
