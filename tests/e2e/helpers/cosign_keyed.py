#!/usr/bin/env python3
"""A keyed cosign signer written independently of Wharf, for the tests: pyca/cryptography plus cosign's published
formats (the simple-signing payload of sigstore/sigstore's `payload.Cosign`, the `sha256-<hex>.sig` tag scheme and
its layer annotations). Wharf's verifier must accept what this writes, and refuse it once tampered with.

  cosign_keyed.py keygen --type p256|ed25519 --out DIR
      DIR/key.pem (PKCS#8 PEM, unencrypted), DIR/key.pub (SPKI PEM)
  cosign_keyed.py sign --key KEY.pem --digest sha256:HEX --reference HOST/REPO[:TAG] --out DIR [--annotation K=V]
      DIR/payload.json (the exact bytes signed), DIR/signature.b64 (base64 of the signature)
  cosign_keyed.py push --registry http://127.0.0.1:PORT --repo REPO --digest sha256:HEX --dir DIR
                       [--user U --password P]
      uploads the payload and the config blobs, then the manifest under the tag `sha256-HEX.sig`; a signature
      already under that tag is kept (cosign appends), so a digest can carry several.

The identity written is the reference as given: cosign itself writes the repository (`HOST/REPO`) unless told
otherwise, so pass that for cosign's default. ECDSA P-256 signs SHA-256 of the payload (ASN.1 DER signature);
ed25519 signs the payload itself, as cosign's signers do.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
COSIGN_TYPE = "cosign container image signature"


def keygen(args):
    if args.type == "p256":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    os.makedirs(args.out, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with open(os.path.join(args.out, "key.pem"), "wb") as f:
        f.write(pem)
    with open(os.path.join(args.out, "key.pub"), "wb") as f:
        f.write(pub)


def check_digest(digest):
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        sys.exit(f"not a sha256 digest: {digest}")
    return digest


def payload_bytes(digest, reference, annotations):
    # Go's encoding/json of sigstore/sigstore's payload: struct order, no spaces, `optional` null when empty.
    body = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": COSIGN_TYPE,
        },
        "optional": annotations or None,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def sign(args):
    digest = check_digest(args.digest)
    with open(args.key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    annotations = dict(a.split("=", 1) for a in args.annotation)
    payload = payload_bytes(digest, args.reference, annotations)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(payload)
    else:
        sys.exit(f"unsupported key type: {type(key).__name__}")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "payload.json"), "wb") as f:
        f.write(payload)
    with open(os.path.join(args.out, "signature.b64"), "w") as f:
        f.write(base64.b64encode(signature).decode())


class Registry:
    """The distribution API calls a push needs, with Docker's token challenge answered when credentials are given."""

    def __init__(self, base, repo, user, password):
        self.base, self.repo, self.user, self.password = base.rstrip("/"), repo, user, password
        self.auth = None

    def request(self, method, path, data=None, headers=None, ok=(200, 201, 202)):
        url = path if path.startswith("http") else self.base + path
        for attempt in range(2):
            req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
            if self.auth:
                req.add_header("Authorization", self.auth)
            try:
                with urllib.request.urlopen(req) as resp:
                    return resp.status, resp.headers, resp.read()
            except urllib.error.HTTPError as e:
                body = e.read()
                if e.code == 401 and attempt == 0 and self.user is not None:
                    self.authenticate(e.headers.get("WWW-Authenticate", ""))
                    continue
                if e.code in ok or (method in ("GET", "HEAD") and e.code == 404):
                    return e.code, e.headers, body
                sys.exit(f"{method} {url}: {e.code} {body[:300]!r}")
        sys.exit(f"{method} {url}: still unauthorized")

    def authenticate(self, challenge):
        basic = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            self.auth = basic
            return
        if scheme.lower() != "bearer":
            sys.exit(f"unknown challenge: {challenge!r}")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        query = {"service": fields.get("service", "")}
        query["scope"] = fields.get("scope") or f"repository:{self.repo}:pull,push"
        url = fields["realm"] + "?" + urllib.parse.urlencode(query)
        req = urllib.request.Request(url, headers={"Authorization": basic})
        with urllib.request.urlopen(req) as resp:
            answer = json.load(resp)
        self.auth = "Bearer " + (answer.get("token") or answer["access_token"])

    def put_blob(self, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, _, _ = self.request("HEAD", f"/v2/{self.repo}/blobs/{digest}")
        if status == 200:
            return digest
        _, headers, _ = self.request("POST", f"/v2/{self.repo}/blobs/uploads/", data=b"")
        location = urllib.parse.urljoin(self.base + "/", headers["Location"])
        sep = "&" if "?" in location else "?"
        self.request(
            "PUT",
            f"{location}{sep}digest={urllib.parse.quote(digest)}",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        return digest


def push(args):
    digest = check_digest(args.digest)
    with open(os.path.join(args.dir, "payload.json"), "rb") as f:
        payload = f.read()
    with open(os.path.join(args.dir, "signature.b64")) as f:
        signature = f.read().strip()
    reg = Registry(args.registry, args.repo, args.user, args.password)
    tag = digest.replace(":", "-") + ".sig"

    # cosign appends to the signatures already under the tag.
    layers = []
    status, _, body = reg.request(
        "GET", f"/v2/{args.repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}
    )
    if status == 200:
        layers = [l for l in json.loads(body).get("layers", []) if l.get("mediaType") == SIMPLE_SIGNING]

    payload_digest = reg.put_blob(payload)
    layer = {
        "mediaType": SIMPLE_SIGNING,
        "size": len(payload),
        "digest": payload_digest,
        "annotations": {SIGNATURE_ANNOTATION: signature},
    }
    if layer not in layers:
        layers.append(layer)

    # The config go-containerregistry writes for cosign's signature image: empty but for the layers' diff IDs
    # (the payloads are uncompressed, so a diff ID is the layer digest).
    config = {
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]},
        "config": {},
    }
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    config_digest = reg.put_blob(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config_bytes), "digest": config_digest},
        "layers": layers,
    }
    body = json.dumps(manifest, separators=(",", ":")).encode()
    reg.request(
        "PUT", f"/v2/{args.repo}/manifests/{tag}", data=body, headers={"Content-Type": OCI_MANIFEST}
    )
    print("sha256:" + hashlib.sha256(body).hexdigest())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("--type", choices=["p256", "ed25519"], required=True)
    k.add_argument("--out", required=True)
    s = sub.add_parser("sign")
    s.add_argument("--key", required=True)
    s.add_argument("--digest", required=True)
    s.add_argument("--reference", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--annotation", action="append", default=[])
    u = sub.add_parser("push")
    u.add_argument("--registry", required=True)
    u.add_argument("--repo", required=True)
    u.add_argument("--digest", required=True)
    u.add_argument("--dir", required=True)
    u.add_argument("--user")
    u.add_argument("--password")
    args = p.parse_args()
    {"keygen": keygen, "sign": sign, "push": push}[args.command](args)


if __name__ == "__main__":
    main()
