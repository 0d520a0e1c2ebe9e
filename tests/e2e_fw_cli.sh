#!/usr/bin/env bash
# tests/e2e_fw_cli.sh — `fleetdrill fw` end to end with standard tools:
#  * build -> sign in the offline token -> inspect; the signature checks out with
#    OpenSSL against the public key keys.json publishes (an independent verifier);
#  * a key of one tier signs another tier's image only on purpose, and inspect
#    (the device's rule) refuses it; unsigned, tampered and over-long images are
#    refused with their reasons; a rogue software key is trusted by nobody;
#  * the keyring image lists the current keys and is signed by the root key whose
#    hash `keys list` reports as the fused one;
#  * rotation: next key, images signed with it, retire, revoke; a retired image
#    is refused, a revoked key signs nothing without --any-state;
#  * inspect is read-only (creates no state), exit codes 0/1/2/4.
set -euo pipefail
FDL=${1:?usage: e2e_fw_cli.sh path/to/fleetdrill}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/e2e-lib.sh" fw
export FLEETDRILL_STATE=$S/state
cd "$S"

rc() { set +e; "$@" >"$S/last.out" 2>&1; local r=$?; set -e; echo "$r"; }

[ "$(rc "$FDL" fw build --tier application --version 1.2.3 --counter 3 --hw 1 --size 3000 -o app.img)" = 0 ] \
  && [ "$(stat -c %s app.img)" = 3128 ] && ok "build: 128-byte header + 3000-byte payload" || bad "build: $(cat last.out)"
"$FDL" fw build --tier application --version 1.2.3 --counter 3 --hw 1 --size 3000 -o app2.img >/dev/null
cmp -s app.img app2.img && ok "build is deterministic" || bad "two builds differ"
[ "$(rc "$FDL" fw inspect app.img)" = 4 ] && grep -q "verdict *REFUSED: unsigned image" last.out \
  && ok "an unsigned image is refused (exit 4)" || bad "unsigned: $(cat last.out)"

[ "$(rc "$FDL" fw sign app.img -o app.signed)" = 0 ] && ok "sign in the token" || bad "sign: $(cat last.out)"
[ "$(rc "$FDL" fw inspect --json app.signed)" = 0 ] && cp last.out inspect.json \
  && [ "$(json inspect.json "['signer']['label']")" = application-g1 ] && [ "$(json inspect.json "['accepted']")" = True ] \
  && [ "$(json inspect.json "['manifest']['behaviour']")" = ok ] \
  && ok "inspect --json: signed by application-g1, accepted, manifest shown" || bad "inspect: $(cat last.out)"

# Independent verification: OpenSSL, the header's first 64 bytes, the raw signature as DER,
# and the public key from keys.json as a SubjectPublicKeyInfo.
python3 - "$S/state/firmware/keys.json" app.signed "$S" <<'PY'
import base64, json, sys
keys, img, out = json.load(open(sys.argv[1]))["keys"], open(sys.argv[2], "rb").read(), sys.argv[3]
kid = img[56:64].hex()
pub = bytes.fromhex(next(k["pub"] for k in keys if k["key_id"] == kid))
spki = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200") + pub
open(out + "/pub.pem", "w").write("-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(spki).decode() + "\n-----END PUBLIC KEY-----\n")
def der_int(b):
    b = b.lstrip(b"\0") or b"\0"
    if b[0] & 0x80: b = b"\0" + b
    return bytes([2, len(b)]) + b
body = der_int(img[64:96]) + der_int(img[96:128])
open(out + "/sig.der", "wb").write(bytes([0x30, len(body)]) + body)
open(out + "/signed.bin", "wb").write(img[:64])
PY
openssl dgst -sha256 -verify pub.pem -signature sig.der signed.bin >last.out 2>&1 \
  && ok "OpenSSL verifies the token's signature with the key keys.json publishes" || bad "openssl: $(cat last.out)"
python3 -c "import hashlib,sys; d=open('app.signed','rb').read(); sys.exit(hashlib.sha256(d[128:]).digest()!=d[24:56])" \
  && ok "the header's SHA-256 is the payload's" || bad "payload hash"

[ "$(rc "$FDL" fw sign app.img --key-tier kernel -o app.kernel)" = 0 ] && grep -q "devices refuse this one" last.out \
  && ok "signing with another tier's key works only as a drill image, and says so" || bad "cross-tier sign: $(cat last.out)"
[ "$(rc "$FDL" fw inspect app.kernel)" = 4 ] && grep -q "a key of one tier cannot sign another" last.out \
  && ok "inspect refuses an application image signed with the kernel key" || bad "cross-tier inspect: $(cat last.out)"

cp app.signed tampered.img; printf 'X' | dd of=tampered.img bs=1 seek=1000 conv=notrunc 2>/dev/null
[ "$(rc "$FDL" fw inspect tampered.img)" = 4 ] && grep -q "hash MISMATCH" last.out \
  && ok "a tampered payload is refused (hash mismatch)" || bad "tampered: $(cat last.out)"
cp app.signed long.img; printf 'junk' >>long.img
[ "$(rc "$FDL" fw inspect long.img)" = 4 ] && grep -q "header says 3000: refused" last.out \
  && ok "bytes beyond the declared length are refused" || bad "long: $(cat last.out)"
head -c 100 app.signed >short.img
[ "$(rc "$FDL" fw inspect short.img)" = 4 ] && grep -q "shorter than its header" last.out \
  && ok "a truncated header is refused" || bad "short: $(cat last.out)"

openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out rogue.pem
[ "$(rc "$FDL" fw sign app.img --key-pem rogue.pem -o app.rogue)" = 0 ] && [ "$(rc "$FDL" fw inspect app.rogue)" = 4 ] \
  && grep -q "signer not in keys.json" last.out && ok "a rogue software key signs, nobody trusts it" \
  || bad "rogue: $(cat last.out)"

[ "$(rc "$FDL" fw keys list --json)" = 0 ] && cp last.out keys.json && [ "$(json keys.json "['keys'].__len__()")" = 6 ] \
  && ok "six keys: root, kernel, application, modules, config, jobs" || bad "keys list: $(cat last.out)"
ROOTHASH=$(json keys.json "['root_key_hash']")
[ "$(rc "$FDL" fw keyring -o keyring.img)" = 0 ] && [ "$(rc "$FDL" fw inspect --json keyring.img)" = 0 ] \
  && cp last.out kr.json && [ "$(json kr.json "['keyring'].__len__()")" = 5 ] \
  && [ "$(json kr.json "['signer']['label']")" = root-g1 ] && ok "keyring image: 5 keys, signed by root-g1" \
  || bad "keyring: $(cat last.out)"
python3 - keyring.img "$ROOTHASH" "$S/state/firmware/keys.json" <<'PY' && ok "the keyring's signer is the key whose hash is reported as fused" || bad "root hash"
import hashlib, json, sys
img, want, keys = open(sys.argv[1], "rb").read(), sys.argv[2], json.load(open(sys.argv[3]))["keys"]
pub = bytes.fromhex(next(k["pub"] for k in keys if k["key_id"] == img[56:64].hex()))
sys.exit(hashlib.sha256(pub).hexdigest() != want)
PY

[ "$(rc "$FDL" fw keys rotate --tier application)" = 0 ] && grep -q "application-g2 (generation 2, next" last.out \
  && ok "rotate: application-g2 is next" || bad "rotate: $(cat last.out)"
[ "$(rc "$FDL" fw keys rotate --tier application)" = 1 ] && ok "a second rotate before retiring is refused" \
  || bad "second rotate: $(cat last.out)"
"$FDL" fw keyring -o keyring2.img >/dev/null && "$FDL" fw inspect --json keyring2.img >kr2.json
[ "$(json kr2.json "['keyring'].__len__()")" = 6 ] && [ "$(json kr2.json "['counter']")" -gt "$(json kr.json "['counter']")" ] \
  && ok "the window's keyring trusts both application keys, with a higher counter" || bad "window keyring"
[ "$(rc "$FDL" fw sign app.img --generation 2 -o app.g2)" = 0 ] && [ "$(rc "$FDL" fw inspect app.g2)" = 0 ] \
  && ok "an image signed with the next key is accepted" || bad "next-key image: $(cat last.out)"
[ "$(rc "$FDL" fw keys retire --tier app)" = 0 ] && [ "$(rc "$FDL" fw inspect app.signed)" = 4 ] \
  && grep -q "which is retired" last.out && ok "retire: the old key's images are refused" || bad "retire: $(cat last.out)"
G1=$(python3 -c "import json;print([k['key_id'] for k in json.load(open('keys.json'))['keys'] if k['label']=='application-g1'][0])")
[ "$(rc "$FDL" fw keys revoke "$G1")" = 0 ] && [ "$(rc "$FDL" fw sign app.img --generation 1 -o x.img)" = 1 ] \
  && grep -q "revoked" last.out && ok "a revoked key signs nothing" || bad "revoke: $(cat last.out)"
[ "$(rc "$FDL" fw sign app.img --generation 1 --any-state -o x.img)" = 0 ] && [ "$(rc "$FDL" fw inspect x.img)" = 4 ] \
  && ok "... except on purpose (--any-state), and that image is refused" || bad "any-state: $(cat last.out)"

[ "$(rc "$FDL" fw inspect --state "$S/nostate" app.signed)" = 4 ] && [ ! -e "$S/nostate" ] \
  && ok "inspect without a state creates nothing" || bad "inspect made state"
[ "$(rc "$FDL" fw inspect "$HERE/vectors/fw/job-1.env")" = 4 ] && grep -q "kind *job document" last.out \
  && ok "inspect reads a job document (its signer is not this state's)" || bad "job: $(cat last.out)"
[ "$(rc "$FDL" fw build --tier app --version 1.02.3 -o x)" = 2 ] && [ "$(rc "$FDL" fw sign)" = 2 ] \
  && [ "$(rc "$FDL" fw nope)" = 2 ] && [ "$(rc "$FDL" fw keys revoke xyz)" = 2 ] && ok "usage errors exit 2" \
  || bad "usage exit codes"
[ "$(rc "$FDL" fw inspect "$S/missing.img")" = 1 ] && ok "a missing file exits 1" || bad "missing file"
e2e_finish
