#!/usr/bin/env python3
"""A keyed cosign verifier written independently of Wharf, for the tests: pyca/cryptography plus cosign's
published formats (the `sha256-<hex>.sig` tag scheme, the simple-signing payload, the
`dev.cosignproject.cosign/signature` layer annotation), as `cosign verify --key` checks them.

  cosign_verify.py verify --registry https://HOST:PORT --repo REPO --digest sha256:HEX --key KEY.pub
                          [--cacert CA.pem] [--reference HOST/REPO] [--expect-layers N] [--expect-valid N]

Reads the manifest tagged `sha256-HEX.sig`, checks its config (an image whose diff_ids are the layers), then each
simple-signing layer: the blob matches its descriptor (digest and size), the payload is a cosign container image
signature naming DIGEST (and REFERENCE, when given), and the annotation's base64 signature verifies under KEY
(ECDSA P-256 over SHA-256 of the payload, DER; or ed25519 over the payload). Prints one PASS/FAIL line per check
and "N passed, M failed". Exit 0 only when no check failed: at least one layer verifies under KEY (cosign's rule),
and the counts match what was expected.
"""

import argparse
import base64
import hashlib
import json
import ssl
import sys
import urllib.error
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
COSIGN_TYPE = "cosign container image signature"
COUNTS = {"pass": 0, "fail": 0}


def check(name, ok, reason=""):
    COUNTS["pass" if ok else "fail"] += 1
    print(f"PASS {name}" if ok else f"FAIL {name}: {' '.join(str(reason).split())[:400]}", flush=True)
    return ok


def get(args, path, accept=None):
    req = urllib.request.Request(args.registry.rstrip("/") + path)
    if accept:
        req.add_header("Accept", accept)
    ctx = ssl.create_default_context(cafile=args.cacert) if args.cacert else None
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        return r.read()


def verify_signature(key, payload, signature):
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, payload)
        else:
            return f"unsupported key type {type(key).__name__}"
    except InvalidSignature:
        return "the signature does not verify under the key"
    return None


def verify(args):
    with open(args.key, "rb") as f:
        key = serialization.load_pem_public_key(f.read())
    hexd = args.digest.split(":", 1)[1]
    tag = f"sha256-{hexd}.sig"
    try:
        raw = get(args, f"/v2/{args.repo}/manifests/{tag}", OCI_MANIFEST)
    except urllib.error.HTTPError as e:
        check("manifest", False, f"{tag}: HTTP {e.code}")
        return
    manifest = json.loads(raw)
    layers = manifest.get("layers") or []
    check("manifest", manifest.get("schemaVersion") == 2 and bool(layers), f"{tag}: {raw[:200]!r}")
    config_raw = get(args, f"/v2/{args.repo}/blobs/{manifest['config']['digest']}")
    config_ok = "sha256:" + hashlib.sha256(config_raw).hexdigest() == manifest["config"]["digest"]
    diff_ids = json.loads(config_raw).get("rootfs", {}).get("diff_ids")
    check("config", config_ok and diff_ids == [l["digest"] for l in layers], f"diff_ids {diff_ids}")
    valid = 0
    for i, layer in enumerate(layers):
        name = f"layer{i}"
        if layer.get("mediaType") != SIMPLE_SIGNING:
            print(f"# {name}: not simple-signing ({layer.get('mediaType')}), skipped")
            continue
        blob = get(args, f"/v2/{args.repo}/blobs/{layer['digest']}")
        if not check(f"{name}.blob", "sha256:" + hashlib.sha256(blob).hexdigest() == layer["digest"]
                     and len(blob) == layer["size"], "blob does not match its descriptor"):
            continue
        critical = json.loads(blob).get("critical", {})
        names = critical.get("image", {}).get("docker-manifest-digest")
        if not check(f"{name}.payload", critical.get("type") == COSIGN_TYPE and names == args.digest,
                     f"type {critical.get('type')!r}, digest {names!r}"):
            continue
        if args.reference:
            ref = critical.get("identity", {}).get("docker-reference")
            check(f"{name}.identity", ref == args.reference, f"{ref!r} != {args.reference!r}")
        sig = base64.b64decode(layer.get("annotations", {}).get(SIGNATURE_ANNOTATION, ""))
        problem = verify_signature(key, blob, sig)
        if problem is None:
            valid += 1
        print(f"# {name}: {'verified' if problem is None else problem}")
    print(f"# verified {valid} of {len(layers)} signature(s) under {args.key}")
    check("verified", valid > 0, "no signature verifies under the key")
    if args.expect_layers is not None:
        check("layers", len(layers) == args.expect_layers, f"{len(layers)} layers, expected {args.expect_layers}")
    if args.expect_valid is not None:
        check("valid", valid == args.expect_valid, f"{valid} valid, expected {args.expect_valid}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--registry", required=True)
    v.add_argument("--repo", required=True)
    v.add_argument("--digest", required=True)
    v.add_argument("--key", required=True)
    v.add_argument("--cacert")
    v.add_argument("--reference")
    v.add_argument("--expect-layers", type=int)
    v.add_argument("--expect-valid", type=int)
    args = p.parse_args()
    verify(args)
    print(f"{COUNTS['pass']} passed, {COUNTS['fail']} failed", flush=True)
    sys.exit(0 if COUNTS["fail"] == 0 else 1)


if __name__ == "__main__":
    main()
