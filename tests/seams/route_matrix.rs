//! The route-kind × caller matrix, generated from the route table (`wharf_registry::route::Kind::ALL` and each
//! kind's `rule`): every kind of request, sent by every kind of caller, gets exactly its expected status. A kind
//! without a sample here fails to compile (the match below has no wildcard); a kind missing from the run fails.

use std::collections::BTreeSet;

use reqwest::blocking::{Client, RequestBuilder};
use wharf_registry::route::{Kind, Rule};

use crate::common::oci::Oci;
use crate::common::Server;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    NoGrant,
    Pull,
    Push,
    Sign,
    Admin,
}

const CALLERS: [Caller; 6] =
    [Caller::Anonymous, Caller::NoGrant, Caller::Pull, Caller::Push, Caller::Sign, Caller::Admin];

impl Caller {
    fn user(self) -> Option<(&'static str, &'static str)> {
        match self {
            Caller::Anonymous => None,
            Caller::NoGrant => Some(("nobody", "nobody-pass-1")),
            Caller::Pull => Some(("puller", "puller-pass-1")),
            Caller::Push => Some(("pusher", "pusher-pass-1")),
            Caller::Sign => Some(("signer", "signer-pass-1")),
            Caller::Admin => Some(("admin", "admin-pass-1")),
        }
    }

    /// Whether the caller's grants satisfy `rule` on the fixture's repositories.
    fn allowed(self, rule: Rule) -> bool {
        match rule {
            Rule::Public => true,
            Rule::Refuse => false,
            Rule::Login | Rule::Catalog => self != Caller::Anonymous,
            Rule::Pull => matches!(self, Caller::Pull | Caller::Push | Caller::Sign | Caller::Admin),
            Rule::Push => matches!(self, Caller::Push | Caller::Admin),
            Rule::Sign => matches!(self, Caller::Sign | Caller::Admin),
            Rule::Delete => self == Caller::Admin,
        }
    }
}

struct Fixture {
    server: Server,
    http: Client,
    manifest: String,
    config: String,
    _origin: Server,
    _tmp: tempfile::TempDir,
}

/// A sample request of `kind` and the status it gets once the gate lets it through.
fn sample(f: &Fixture, kind: Kind) -> (RequestBuilder, u16) {
    let (h, s) = (&f.http, &f.server);
    let zero = format!("sha256:{}", "0".repeat(64));
    let gun = format!("{}/team/app", s.addr);
    let oci = "application/vnd.oci.image.manifest.v1+json";
    match kind {
        Kind::Base => (h.get(s.url("/v2/")), 200),
        Kind::Catalog => (h.get(s.url("/v2/_catalog")), 200),
        Kind::Tags => (h.get(s.url("/v2/team/app/tags/list")), 200),
        Kind::Referrers => (h.get(s.url(&format!("/v2/team/app/referrers/{}", f.manifest))), 200),
        Kind::ManifestRead => (h.get(s.url("/v2/team/app/manifests/v1")), 200),
        Kind::ManifestWrite => (h.put(s.url("/v2/team/app/manifests/t2")).header("content-type", oci).body("{}"), 400),
        Kind::ManifestDelete => (h.delete(s.url(&format!("/v2/team/app/manifests/{zero}"))), 404),
        Kind::BlobRead => (h.get(s.url(&format!("/v2/team/app/blobs/{}", f.config))), 200),
        Kind::BlobWrite => (h.put(s.url(&format!("/v2/team/app/blobs/{zero}"))), 405),
        Kind::BlobDelete => (h.delete(s.url(&format!("/v2/team/app/blobs/{zero}"))), 404),
        Kind::UploadStart => (h.post(s.url("/v2/team/app/blobs/uploads/")), 202),
        Kind::Upload => (h.get(s.url(&format!("/v2/team/app/blobs/uploads/{}", "0".repeat(32)))), 404),
        Kind::TufRead => (h.get(s.url("/v2/team/app/_tuf/root.json")), 404),
        Kind::TufWrite => (h.post(s.url("/v2/team/app/_tuf/publish")).body("{}"), 400),
        Kind::NotaryV1Read => (h.get(s.url(&format!("/v2/{gun}/_trust/tuf/root.json"))), 404),
        Kind::NotaryV1Write => (h.delete(s.url(&format!("/v2/{gun}/_trust/tuf/"))), 200),
        Kind::Changefeed => (h.get(s.url("/v2/_trust/changefeed?records=10")), 200),
        Kind::MirrorRead => (h.get(s.url("/v2/mirror/up/app/manifests/v1")), 200),
        Kind::MirrorWrite => {
            (h.put(s.url("/v2/mirror/up/app/manifests/v2")).header("content-type", oci).body("{}"), 403)
        }
        Kind::MirrorDelete => (h.delete(s.url("/v2/mirror/up/app/manifests/v1")), 403),
        Kind::MirrorTufRead => (h.get(s.url("/v2/mirror/up/app/_tuf/timestamp.json")), 404),
        Kind::MirrorTufWrite => (h.post(s.url("/v2/mirror/up/app/_tuf/publish")).body("{}"), 403),
        Kind::Token => (h.get(s.url("/auth/token?service=wharf")), 200),
        Kind::Health => (h.get(s.url("/healthz")), 200),
        Kind::Invalid => {
            let path = format!("/v2/mirror/up/app/_tuf/targets/{}.x/_trust/y", "ab".repeat(32));
            (h.get(s.url(&path)), 404)
        }
    }
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let origin = Server::start(&[]);
    Oci::new(&origin).push("up/app", "v1", br#"{"os":"linux","n":1}"#, &[b"origin layer"], None).unwrap();
    let config = tmp.path().join("wharf.toml");
    let entry = format!("[[mirror]]\nupstream = \"{}\"\nprefix = \"mirror\"\n", origin.url(""));
    std::fs::write(&config, entry).unwrap();
    let server = Server::start(&[
        ("WHARF_AUTH", "1"),
        ("WHARF_ADMIN_PASSWORD", "admin-pass-1"),
        ("WHARF_CONFIG", config.to_str().unwrap()),
    ]);
    for caller in [Caller::NoGrant, Caller::Pull, Caller::Push, Caller::Sign] {
        let (user, pass) = caller.user().unwrap();
        server.admin(&["user", "add", user, "--password-stdin"], &format!("{pass}\n"));
    }
    for pattern in ["team/**", "mirror/**"] {
        server.admin(&["grant", "puller", pattern, "pull"], "");
        server.admin(&["grant", "pusher", pattern, "push"], "");
        server.admin(&["grant", "signer", pattern, "sign"], "");
    }
    // The running server reloads accounts within a second.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let http = Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    // The admin pushes the fixture's image (through the gate, with Basic credentials).
    let pushed = Oci::with_basic(&server, "admin", "admin-pass-1")
        .push("team/app", "v1", br#"{"os":"linux","n":2}"#, &[b"local layer"], None)
        .unwrap();
    Fixture { server, http, manifest: pushed.digest, config: pushed.blobs[0].clone(), _origin: origin, _tmp: tmp }
}

#[test]
fn every_route_kind_answers_every_caller_exactly() {
    let f = fixture();
    let mut wrong = Vec::new();
    let mut seen = BTreeSet::new();
    for &kind in Kind::ALL {
        for caller in CALLERS {
            let (req, success) = sample(&f, kind);
            let req = match caller.user() {
                Some((u, p)) => req.basic_auth(u, Some(p)),
                None => req,
            };
            // A refused kind answers its own error to everyone.
            let want = if caller.allowed(kind.rule()) || kind.rule() == Rule::Refuse {
                success
            } else if caller == Caller::Anonymous {
                401
            } else {
                403
            };
            let r = req.send().unwrap();
            let got = r.status().as_u16();
            if got == 401 && r.headers().get("www-authenticate").is_none() {
                wrong.push(format!("{kind:?} as {caller:?}: 401 without a challenge"));
            }
            let body = r.text().unwrap_or_default();
            if got != want {
                wrong.push(format!("{kind:?} as {caller:?}: got {got}, expected {want}: {}", body.trim()));
            } else if got == 403 && !caller.allowed(kind.rule()) {
                // A refusal names who was refused, and what on which repository.
                let (user, _) = caller.user().unwrap_or(("anonymous", ""));
                let names_repo = ["team/app", "mirror/up/app", "the catalog"].iter().any(|r| body.contains(r));
                if !body.contains(user) || !names_repo {
                    wrong.push(format!("{kind:?} as {caller:?}: 403 names neither caller nor repository: {body}"));
                }
            }
            seen.insert(kind);
        }
    }
    let missing: Vec<&Kind> = Kind::ALL.iter().filter(|k| !seen.contains(k)).collect();
    assert!(missing.is_empty(), "kinds not exercised: {missing:?}");
    assert!(wrong.is_empty(), "{} cells wrong:\n{}", wrong.len(), wrong.join("\n"));
}
