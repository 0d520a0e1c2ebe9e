#!/usr/bin/env python3
"""tests/vectors/fw/make_vectors.py — regenerates the firmware-format test files.

Written against the byte layouts in devices/fwimage.h, devices/keyring.h and
devices/jobdoc.h with an independent implementation (Python + the
`cryptography` package, i.e. OpenSSL's ECDSA), so the C parsers are checked
against images they did not make. Run from anywhere:

    python3 tests/vectors/fw/make_vectors.py

It (re)writes, next to itself:
    keys/<name>.pub   the 65-byte uncompressed public point of a test key
    *.img             images (see main()), job-1.env a signed job envelope
and seeds tests/fuzz/corpus/{fwimage,keyring,jobdoc}. Every run makes fresh
keys and throws the private halves away (nothing secret is committed), so a
rerun changes keys and signature bytes, never what the vectors in image.txt
expect.
"""
import hashlib
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")

TIERS = {"bootloader": 1, "kernel": 2, "application": 3, "modules": 4, "config": 5, "keyring": 6}
USAGE_JOBS = 7
KEY_NAMES = ["root", "kernel", "application", "jobs"]


def key(name):
    """A fresh P-256 key; only its public point is kept (keys/<name>.pub)."""
    k = ec.generate_private_key(ec.SECP256R1())
    pub = k.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    os.makedirs(os.path.join(HERE, "keys"), exist_ok=True)
    with open(os.path.join(HERE, "keys", name + ".pub"), "wb") as f:
        f.write(pub)
    return k, pub


def key_id(pub):
    return hashlib.sha256(pub).digest()[:8]


def sign_raw(k, msg):
    """ECDSA P-256 over SHA-256(msg), as raw r || s."""
    r, s = decode_dss_signature(k.sign(msg, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def version(text):
    a, b, c = (int(x) for x in text.split("."))
    return a << 24 | b << 16 | c


def payload(tier, ver, behaviour="ok", size=512):
    """The test payload `fleetdrill fw build` makes: a manifest, then filler byte k = k * 131 + 7."""
    head = ("FDL-PAYLOAD 1\ntier=%s\nversion=%s\nbehaviour=%s\n" % (tier, ver, behaviour)).encode()
    return head + bytes((k * 131 + 7) & 0xFF for k in range(max(0, size - len(head))))


def image(tier, ver, counter, body, signer=None, hw=0):
    """Header (magic, hdr version, tier, flags, version, counter, length, hw, sha256, key id) + sig + payload."""
    kid = key_id(signer[1]) if signer else bytes(8)
    signed = struct.pack(">4sBBHIIII32s8s", b"FDFW", 1, TIERS[tier], 0, version(ver), counter, len(body), hw,
                         hashlib.sha256(body).digest(), kid)
    assert len(signed) == 64
    sig = sign_raw(signer[0], signed) if signer else bytes(64)
    return signed + sig + body


def keyring(entries):
    """entries: (usage, state, pub)."""
    out = b"FDKR" + bytes([1, len(entries)])
    for usage, state, pub in entries:
        out += bytes([usage, state]) + key_id(pub) + pub
    return out


def job_envelope(doc, signer):
    kid = key_id(signer[1])
    head = b"FDJ1" + struct.pack(">I", len(doc)) + doc + kid
    return head + sign_raw(signer[0], head)


def write(name, data, *corpora):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    for c in corpora:
        d = os.path.join(CORPUS, c)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def main():
    keys = {n: key(n) for n in KEY_NAMES}
    ring = keyring([(TIERS["kernel"], 1, keys["kernel"][1]), (TIERS["application"], 1, keys["application"][1]),
                    (USAGE_JOBS, 1, keys["jobs"][1])])
    write("keyring-1.img", image("keyring", "1.0.0", 1, ring, keys["root"]), "fwimage")
    write("keyring-1.payload", ring, "keyring")
    write("bootloader-1.0.0.img", image("bootloader", "1.0.0", 1, payload("bootloader", "1.0.0"), keys["root"]),
          "fwimage")
    write("kernel-2.0.0.img", image("kernel", "2.0.0", 2, payload("kernel", "2.0.0"), keys["kernel"]), "fwimage")
    write("app-1.2.3.img", image("application", "1.2.3", 3, payload("application", "1.2.3"), keys["application"],
                                 hw=1), "fwimage")
    write("app-unsigned.img", image("application", "1.2.3", 3, payload("application", "1.2.3")), "fwimage")
    write("app-by-kernel-key.img", image("application", "9.9.9", 99, payload("application", "9.9.9", "ok"),
                                         keys["kernel"]), "fwimage")
    write("config-empty.img", image("config", "0.0.1", 0, b"", keys["root"]), "fwimage")
    app = open(os.path.join(HERE, "app-1.2.3.img"), "rb").read()
    doc = ('{"job":"fw-app-1.2.3","seq":1,"tier":"application","version":"1.2.3","counter":3,'
           '"artifact":"app-1.2.3","sha256":"%s","size":%d,"issued":1700000000000,"expires":1700086400000,'
           '"targets":["dev-000001","dev-000002"],"hw":[1]}' % (hashlib.sha256(app).hexdigest(), len(app))).encode()
    write("job-1.env", job_envelope(doc, keys["jobs"]), "jobdoc")
    write("job-1.json", doc, "jobdoc")
    # A grammar-mode keyring seed for fuzz_keyring: 0xA5 then (use, state, key) triples.
    d = os.path.join(CORPUS, "keyring")
    with open(os.path.join(d, "grammar-dual-trust"), "wb") as f:
        f.write(bytes([0xA5, 2, 1, 0, 2, 2, 1, 3, 1, 2, 7, 1, 3]))
    print("wrote vectors to %s and seeds to %s" % (HERE, CORPUS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
