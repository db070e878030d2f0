#!/usr/bin/env python3
"""Writes a signed piarchive update bundle (.piup) from a slot folder.

usage: mkbundle.py --key PEM --version V --slot DIR --out FILE
                   [--board rpi-arm64] [--test-health-failure REASON] [--test-hang] [--test-hold-reboot]
       mkbundle.py --new-key PEM     (makes an Ed25519 key; prints the public key, hex)
       mkbundle.py --public PEM      (prints the public key of PEM, hex)

Layout (src/update/bundle.rs): magic "PIUP\\0\\x01\\r\\n", the manifest's length
(4 bytes, big-endian), the manifest (JSON: format, version, board, files with path,
size and sha256), the Ed25519 signature of all that, then each file's bytes in
manifest order. The files are streamed, never all held in memory. The --test-*
switches are honoured by a test image only, and only when its test key signed.
"""
import argparse
import hashlib
import json
import os
import struct
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

MAGIC = b"PIUP\0\x01\r\n"


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def public_hex(key):
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def slot_files(slot):
    """Relative paths under slot, vmlinuz first, in a stable order."""
    found = []
    for root, _dirs, files in os.walk(slot):
        for name in files:
            found.append(os.path.relpath(os.path.join(root, name), slot))
    return sorted(found, key=lambda p: (p != "vmlinuz", p))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--key")
    ap.add_argument("--new-key")
    ap.add_argument("--public")
    ap.add_argument("--version")
    ap.add_argument("--slot")
    ap.add_argument("--out")
    ap.add_argument("--board", default="rpi-arm64")
    ap.add_argument("--test-health-failure")
    ap.add_argument("--test-hang", action="store_true")
    ap.add_argument("--test-hold-reboot", action="store_true")
    args = ap.parse_args()
    if args.new_key:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        fd = os.open(args.new_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        print(public_hex(key))
        return 0
    if args.public:
        print(public_hex(load_key(args.public)))
        return 0
    if not (args.key and args.version and args.slot and args.out):
        raise SystemExit(__doc__)
    key = load_key(args.key)
    paths = slot_files(args.slot)
    manifest = {
        "format": 1,
        "version": args.version,
        "board": args.board,
        "files": [{"path": p, "size": os.path.getsize(os.path.join(args.slot, p)), "sha256": sha256(os.path.join(args.slot, p))} for p in paths],
    }
    if args.test_health_failure:
        manifest["test_health_failure"] = args.test_health_failure
    if args.test_hang:
        manifest["test_hang"] = True
    if args.test_hold_reboot:
        manifest["test_hold_reboot"] = True
    body = json.dumps(manifest, separators=(",", ":")).encode()
    head = MAGIC + struct.pack(">I", len(body)) + body
    with open(args.out + ".part", "wb") as out:
        out.write(head)
        out.write(key.sign(head))
        for p in paths:
            with open(os.path.join(args.slot, p), "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    out.write(block)
    os.replace(args.out + ".part", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
