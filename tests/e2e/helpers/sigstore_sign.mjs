// A keyless sigstore signer independent of Wharf, for the tests: sigstore-js's own signing library
// (`@sigstore/sign`) against the Fulcio, Rekor and timestamp mocks of `@sigstore/mock`, all in this one process
// (the mocks answer the library's HTTP calls through nock). Writes a bundle and the `trusted_root.json` that
// verifies it.
//
//   node sigstore_sign.mjs --digest sha256:HEX --out DIR [--kind dsse|message] [--manifest FILE]
//                          [--subject SUBJECT] [--issuer ISSUER] [--cert-offset SECONDS]
//
//   --kind dsse (default): a DSSE envelope holding an in-toto statement whose subject is the digest.
//   --kind message: a message signature over the manifest bytes (FILE, whose sha256 must be the digest).
//   --subject, --issuer: the OIDC identity the mock Fulcio certifies (the SAN, and extension 1.3.6.1.4.1.57264.1.8).
//   --cert-offset: the certificate's validity starts this many seconds from now (the log's time is now), so a
//                  certificate not valid at signing time can be made.
//   DIR/bundle.json (v0.3), DIR/trusted_root.json
//
// The packages are looked up under $WHARF_TEST_NPM/node_modules (tests/run installs them there).
import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

const npmDir = process.env.WHARF_TEST_NPM;
if (!npmDir) {
  console.error('WHARF_TEST_NPM is not set (the directory tests/run installs the npm packages into)');
  process.exit(2);
}
const require = createRequire(path.join(npmDir, 'node_modules', 'x.js'));
const sign = require('@sigstore/sign');
const mock = require('@sigstore/mock');
const { bundleToJSON } = require('@sigstore/bundle');
const nock = require('nock');

const { values: args } = parseArgs({
  options: {
    digest: { type: 'string' },
    out: { type: 'string' },
    kind: { type: 'string', default: 'dsse' },
    manifest: { type: 'string' },
    subject: { type: 'string', default: 'https://github.com/wharf-test/app/.github/workflows/release.yml@refs/heads/main' },
    issuer: { type: 'string', default: 'https://token.actions.githubusercontent.com' },
    'cert-offset': { type: 'string', default: '0' },
  },
});
if (!args.digest || !/^sha256:[0-9a-f]{64}$/.test(args.digest) || !args.out) {
  console.error('usage: sigstore_sign.mjs --digest sha256:HEX --out DIR [--kind dsse|message] [--manifest FILE]');
  process.exit(2);
}

const FULCIO = 'https://fulcio.sigstore.dev';
const REKOR = 'https://rekor.sigstore.dev';
const keyPair = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const spkiDer = (key) => key.export({ format: 'der', type: 'spki' });

// The mock services, each with its own key, wired to nock as `@sigstore/mock`'s own mockFulcio/mockRekor do.
const caKeys = keyPair();
const ctlog = await mock.initializeCTLog(caKeys);
const certTime = new Date(Date.now() + Number(args['cert-offset']) * 1000);
const ca = await mock.initializeCA(caKeys, ctlog, certTime);
const tlogKeys = keyPair();
const tlog = await mock.initializeTLog(REKOR, tlogKeys);
for (const [base, handler] of [
  [FULCIO, mock.fulcioHandler(ca, { strict: true })],
  [REKOR, mock.rekorHandler(tlog, { strict: true })],
]) {
  nock(base)
    .persist()
    .post(handler.path)
    .reply(async (_uri, body) => {
      const r = await handler.fn(typeof body === 'string' ? body : JSON.stringify(body));
      return [r.statusCode, r.response, { 'Content-Type': r.contentType || 'text/plain' }];
    });
}

// An OIDC token the mock Fulcio reads without checking its signature: the subject and issuer it certifies.
const b64url = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const token = [b64url({ alg: 'none', typ: 'JWT' }), b64url({ iss: args.issuer, sub: args.subject, aud: 'sigstore' }), ''].join('.');
const signer = new sign.FulcioSigner({
  fulcioBaseURL: FULCIO,
  identityProvider: { getToken: async () => token },
});
const witnesses = [new sign.RekorWitness({ rekorBaseURL: REKOR, entryType: 'dsse' })];

const hex = args.digest.slice('sha256:'.length);
let bundle;
if (args.kind === 'dsse') {
  const statement = {
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ name: 'image', digest: { sha256: hex } }],
    predicateType: 'https://sigstore.dev/cosign/sign/v1',
    predicate: {},
  };
  const builder = new sign.DSSEBundleBuilder({ signer, witnesses });
  bundle = await builder.create({ data: Buffer.from(JSON.stringify(statement)), type: 'application/vnd.in-toto+json' });
} else if (args.kind === 'message') {
  if (!args.manifest) {
    console.error('--kind message needs --manifest FILE');
    process.exit(2);
  }
  const data = fs.readFileSync(args.manifest);
  if (crypto.createHash('sha256').update(data).digest('hex') !== hex) {
    console.error(`the manifest's sha256 is not ${args.digest}`);
    process.exit(2);
  }
  const builder = new sign.MessageSignatureBundleBuilder({ signer, witnesses });
  bundle = await builder.create({ data });
} else {
  console.error(`unknown --kind ${args.kind}`);
  process.exit(2);
}

// The trusted root (the protobuf-specs JSON form) that names the mocks' CA and log keys.
const b64 = (buf) => Buffer.from(buf).toString('base64');
const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
const logKey = (der, base) => ({
  baseUrl: base,
  hashAlgorithm: 'SHA2_256',
  publicKey: { rawBytes: b64(der), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start: since } },
  logId: { keyId: b64(crypto.createHash('sha256').update(der).digest()) },
});
const trustedRoot = {
  mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
  tlogs: [logKey(spkiDer(tlogKeys.publicKey), REKOR)],
  certificateAuthorities: [
    {
      subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
      uri: FULCIO,
      certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] },
      validFor: { start: since },
    },
  ],
  ctlogs: [{ ...logKey(ctlog.publicKey, 'https://ctfe.sigstore.dev'), logId: { keyId: b64(ctlog.logID) } }],
  timestampAuthorities: [],
};

fs.mkdirSync(args.out, { recursive: true });
fs.writeFileSync(path.join(args.out, 'bundle.json'), JSON.stringify(bundleToJSON(bundle), null, 2));
fs.writeFileSync(path.join(args.out, 'trusted_root.json'), JSON.stringify(trustedRoot, null, 2));
