#!/usr/bin/env python3
"""Notation (Notary Project) signature envelopes for the `notation` end-to-end suite, made independently of Wharf:
pyca/cryptography for keys and X.509, joserfc for the JWS JSON serialization, cbor2 for COSE_Sign1 (whose
Sig_structure is built here as the specification says), following the Notary Project specification
(signature-envelope-jws.md, signature-envelope-cose.md, signature-specification.md, trust-store-trust-policy.md).

    notation_sign.py OUT_DIR DIGEST SIZE

writes a trust store in Notation's layout under OUT_DIR/truststore (`x509/ca/acme/root.pem`, PEM, the trusted
root; `x509/ca/other/root.crt`, DER, a root the main policy does not name; `x509/signingAuthority/acme/root.pem`,
the same root as a signing authority) and one envelope per case under
OUT_DIR/envelopes/CASE.jws (JWS) or CASE.cose (COSE, the cases named `cose-*`), every one signing DIGEST (SIZE bytes) unless the case says otherwise. It prints a JSON
object: the signing time (Unix seconds), the cases, the trusted signer's subject and the other signer's subject.
"""

import base64
import datetime
import json
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
import cbor2
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
DAY = datetime.timedelta(days=1)
CTY = "application/vnd.cncf.notary.payload.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"

# The Notary Project's protected headers, registered so that joserfc accepts them (and their `crit` listing).
NOTARY_HEADERS = {
    "io.cncf.notary.signingScheme": HeaderParameter("Signing scheme", "str"),
    "io.cncf.notary.signingTime": HeaderParameter("Signing time", "str"),
    "io.cncf.notary.expiry": HeaderParameter("Expiry", "str"),
    "io.cncf.notary.authenticSigningTime": HeaderParameter("Authentic signing time", "str"),
    "io.cncf.notary.signingAgent": HeaderParameter("Signing agent", "str"),
}


def name(**rdns):
    oids = {"C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME, "L": NameOID.LOCALITY_NAME,
            "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "CN": NameOID.COMMON_NAME}
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in rdns.items()])


def cert(subject, key, issuer, issuer_key, ca, path_len=None, hash_alg=hashes.SHA256(), not_before=None,
         not_after=None, eku=(ExtendedKeyUsageOID.CODE_SIGNING,)):
    """A certificate as the specification's "Certificate Requirements" ask: CA certificates with critical basic
    constraints (cA) and keyCertSign; leaves with critical digitalSignature only, and an EKU."""
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer.subject if issuer else subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(not_before or NOW - 7 * DAY).not_valid_after(not_after or NOW + 30 * DAY))
    b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=path_len if ca else None), critical=True)
    b = b.add_extension(x509.KeyUsage(
        digital_signature=not ca, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False), critical=True)
    if not ca and eku:
        b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    return b.sign(issuer_key, hash_alg)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def envelope(key, chain, digest, size, extra_protected=None, crit_extra=()):
    """A flattened JWS JSON serialization with the Notary Project's protected headers and an `x5c` chain."""
    if isinstance(key, rsa.RSAPrivateKey):
        alg = {2048: "PS256", 3072: "PS384", 4096: "PS512"}[key.key_size]
        jwk = RSAKey.import_key(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    else:
        alg = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[key.curve.name]
        jwk = ECKey.import_key(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    protected = {
        "alg": alg,
        "cty": CTY,
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "crit": ["io.cncf.notary.signingScheme", *crit_extra],
    }
    protected.update(extra_protected or {})
    if protected["io.cncf.notary.signingScheme"] == "notary.x509.signingAuthority":
        del protected["io.cncf.notary.signingTime"]
    header = {
        "x5c": [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain],
        "io.cncf.notary.signingAgent": "notation_sign.py/1",
    }
    payload = json.dumps({"targetArtifact": {"mediaType": MANIFEST, "digest": digest, "size": size}},
                         separators=(",", ":"))
    registry = JWSRegistry(header_registry=NOTARY_HEADERS, algorithms=[alg])
    return jws.serialize_json({"protected": protected, "header": header}, payload, jwk, registry=registry)


COSE_ALGS = {"PS256": -37, "PS384": -38, "PS512": -39, "ES256": -7, "ES384": -35, "ES512": -36}


def cose_envelope(key, chain, digest, size):
    """A COSE_Sign1_Tagged: the protected header as the specification lists it (times as tag 1), the chain in the
    unprotected `x5chain` (label 33), the signature over the Sig_structure ("Signature1", protected, b"", payload),
    ECDSA as the fixed-size r || s of RFC 9053."""
    if isinstance(key, rsa.RSAPrivateKey):
        alg, h = {2048: ("PS256", hashes.SHA256()), 3072: ("PS384", hashes.SHA384()),
                  4096: ("PS512", hashes.SHA512())}[key.key_size]
    else:
        alg, h = {"secp256r1": ("ES256", hashes.SHA256()), "secp384r1": ("ES384", hashes.SHA384()),
                  "secp521r1": ("ES512", hashes.SHA512())}[key.curve.name]
    protected = cbor2.dumps({
        1: COSE_ALGS[alg],
        2: ["io.cncf.notary.signingScheme"],
        3: CTY,
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": cbor2.CBORTag(1, int(NOW.timestamp())),
    })
    payload = json.dumps({"targetArtifact": {"mediaType": MANIFEST, "digest": digest, "size": size}},
                         separators=(",", ":")).encode()
    to_be_signed = cbor2.dumps(["Signature1", protected, b"", payload])
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(to_be_signed, padding.PSS(padding.MGF1(h), h.digest_size), h)
    else:
        r, s = decode_dss_signature(key.sign(to_be_signed, ec.ECDSA(h)))
        n = (key.curve.key_size + 7) // 8
        signature = r.to_bytes(n, "big") + s.to_bytes(n, "big")
    unprotected = {33: [c.public_bytes(serialization.Encoding.DER) for c in chain],
                   "io.cncf.notary.signingAgent": "notation_sign.py/1"}
    return cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, signature]))


def main():
    out, digest, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    trusted = dict(C="US", ST="WA", L="Seattle", O="acme-rockets.io", OU="builds", CN="builder")
    stranger = dict(C="US", ST="WA", O="evil-corp.io", CN="builder")

    root_key = ec.generate_private_key(ec.SECP384R1())
    root = cert(name(C="US", ST="WA", O="acme-rockets.io", CN="acme root"), root_key, None, root_key, True, 1,
                hashes.SHA384())
    inter_key = rsa.generate_private_key(65537, 3072)
    inter = cert(name(C="US", ST="WA", O="acme-rockets.io", CN="acme signing CA"), inter_key, root, root_key, True,
                 0, hashes.SHA384())
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = cert(name(C="US", ST="WA", O="other.io", CN="other root"), other_key, None, other_key, True, 0)

    def leaf(key, issuer=inter, issuer_key=inter_key, subject=trusted, **kw):
        return cert(name(**subject), key, issuer, issuer_key, False, **kw)

    rsa2048 = rsa.generate_private_key(65537, 2048)
    rsa3072 = rsa.generate_private_key(65537, 3072)
    p256 = ec.generate_private_key(ec.SECP256R1())
    p384 = ec.generate_private_key(ec.SECP384R1())
    p521 = ec.generate_private_key(ec.SECP521R1())
    good = leaf(rsa2048)
    other_digest = "sha256:" + "ab" * 32

    cases = {
        # Accepted: each `alg` of the specification's table, through the intermediate or straight from the root.
        "good-ps256": envelope(rsa2048, [good, inter, root], digest, size),
        "good-ps384": envelope(rsa3072, [leaf(rsa3072), inter, root], digest, size),
        "good-es256": envelope(p256, [leaf(p256, root, root_key, hash_alg=hashes.SHA384()), root], digest, size),
        "good-es384": envelope(p384, [leaf(p384, hash_alg=hashes.SHA512()), inter, root], digest, size),
        "good-es512": envelope(p521, [leaf(p521), inter, root], digest, size),
        # Refused.
        "wrong-chain": envelope(p256, [leaf(p256, other, other_key), other], digest, size),
        "expired-cert": envelope(p256, [leaf(p256, not_before=NOW - 30 * DAY, not_after=NOW - DAY), inter, root],
                                 digest, size),
        "wrong-digest": envelope(rsa2048, [good, inter, root], other_digest, size),
        "wrong-size": envelope(rsa2048, [good, inter, root], digest, size + 1),
        "untrusted-identity": envelope(p256, [leaf(p256, subject=stranger), inter, root], digest, size),
        "expired-signature": envelope(
            rsa2048, [good, inter, root], digest, size,
            {"io.cncf.notary.expiry": (NOW - DAY).strftime("%Y-%m-%dT%H:%M:%SZ")}, ["io.cncf.notary.expiry"]),
        "server-auth-leaf": envelope(
            p256, [leaf(p256, eku=(ExtendedKeyUsageOID.SERVER_AUTH,)), inter, root], digest, size),
    }
    # The signing authority scheme: judged at the authentic signing time, against `signingAuthority` stores; the
    # second leaf's validity ended before now but covers the authentic signing time.
    def authority(key, chain, at):
        extra = {"io.cncf.notary.signingScheme": "notary.x509.signingAuthority",
                 "io.cncf.notary.authenticSigningTime": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
        return envelope(key, chain, digest, size, extra, ["io.cncf.notary.authenticSigningTime"])
    cases["authority-good"] = authority(p256, [leaf(p256), inter, root], NOW)
    past = leaf(p256, not_before=NOW - 30 * DAY, not_after=NOW - DAY)
    cases["authority-past-leaf"] = authority(p256, [past, inter, root], NOW - 2 * DAY)
    # Integrity: a valid envelope whose payload was swapped for another after signing.
    tampered = dict(cases["good-ps256"])
    tampered["payload"] = b64url(json.dumps(
        {"targetArtifact": {"mediaType": MANIFEST, "digest": digest, "size": size + 0}}, indent=1).encode())
    cases["tampered"] = tampered
    cases["cose-good-ps256"] = cose_envelope(rsa2048, [good, inter, root], digest, size)
    cases["cose-good-es384"] = cose_envelope(p384, [leaf(p384), inter, root], digest, size)
    cases["cose-wrong-digest"] = cose_envelope(p256, [leaf(p256), inter, root], other_digest, size)
    cases["cose-wrong-chain"] = cose_envelope(p256, [leaf(p256, other, other_key), other], digest, size)
    # Integrity: the payload (the envelope's third element) swapped after signing.
    parts = list(cbor2.loads(cases["cose-good-ps256"]).value)
    parts[2] = parts[2].replace(b'"size":', b'"size": ')
    cases["cose-tampered"] = cbor2.dumps(cbor2.CBORTag(18, parts))

    ca = os.path.join(out, "truststore", "x509", "ca")
    os.makedirs(os.path.join(ca, "acme"), exist_ok=True)
    os.makedirs(os.path.join(ca, "other"), exist_ok=True)
    with open(os.path.join(ca, "acme", "root.pem"), "wb") as f:
        f.write(root.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(ca, "other", "root.crt"), "wb") as f:
        f.write(other.public_bytes(serialization.Encoding.DER))
    authority_store = os.path.join(out, "truststore", "x509", "signingAuthority", "acme")
    os.makedirs(authority_store, exist_ok=True)
    with open(os.path.join(authority_store, "root.pem"), "wb") as f:
        f.write(root.public_bytes(serialization.Encoding.PEM))
    os.makedirs(os.path.join(out, "envelopes"), exist_ok=True)
    for case, env in cases.items():
        if isinstance(env, bytes):
            with open(os.path.join(out, "envelopes", case + ".cose"), "wb") as f:
                f.write(env)
        else:
            with open(os.path.join(out, "envelopes", case + ".jws"), "w") as f:
                json.dump(env, f)
    json.dump({
        "now": int(NOW.timestamp()),
        "cases": sorted(cases),
        "trusted": ", ".join(f"{k}={v}" for k, v in trusted.items()),
        "stranger": ", ".join(f"{k}={v}" for k, v in stranger.items()),
    }, sys.stdout)


if __name__ == "__main__":
    main()
