//! The route-kind × caller matrix, generated from the route table (`wharf_registry::route::Kind::ALL` and each
//! kind's `rule`): every kind of request, sent by every kind of caller, gets exactly its expected status. A kind
//! without a sample here fails to compile (the match below has no wildcard), and the rule each kind must have is
//! written here too, so a wrong rule in the table fails.

use reqwest::blocking::{Client, RequestBuilder};
use wharf_registry::route::{Kind, Rule};

use crate::common::oci::Oci;
use crate::common::Server;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    /// An anonymous token from `/auth/token` (what docker sends first).
    AnonymousToken,
    NoGrant,
    Pull,
    Push,
    Sign,
    Admin,
}

const CALLERS: [Caller; 7] = [
    Caller::Anonymous,
    Caller::AnonymousToken,
    Caller::NoGrant,
    Caller::Pull,
    Caller::Push,
    Caller::Sign,
    Caller::Admin,
];

impl Caller {
    fn user(self) -> Option<(&'static str, &'static str)> {
        match self {
            Caller::Anonymous | Caller::AnonymousToken => None,
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
            Rule::Public | Rule::Identify => true,
            Rule::Refuse => false,
            // Any token passes the version check (docker's login probe); the catalog needs an identity.
            Rule::Login => self != Caller::Anonymous,
            Rule::Catalog => !matches!(self, Caller::Anonymous | Caller::AnonymousToken),
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

/// The rule each kind must have, written here independently of the route table (so a wrong rule there fails),
/// and sample requests of the kind with the status each gets once the gate lets it through.
fn samples(f: &Fixture, kind: Kind) -> (Rule, Vec<(RequestBuilder, u16)>) {
    let (h, s) = (&f.http, &f.server);
    let zero = format!("sha256:{}", "0".repeat(64));
    let gun = format!("{}/team/app", s.addr);
    let mirrored_gun = format!("{}/mirror/up/app", s.addr);
    let oci = "application/vnd.oci.image.manifest.v1+json";
    let one = |rule: Rule, req: RequestBuilder, status: u16| (rule, vec![(req, status)]);
    match kind {
        Kind::Base => one(Rule::Login, h.get(s.url("/v2/")), 200),
        Kind::Catalog => one(Rule::Catalog, h.get(s.url("/v2/_catalog")), 200),
        Kind::Tags => one(Rule::Pull, h.get(s.url("/v2/team/app/tags/list")), 200),
        Kind::Referrers => one(Rule::Pull, h.get(s.url(&format!("/v2/team/app/referrers/{}", f.manifest))), 200),
        Kind::ManifestRead => (
            Rule::Pull,
            vec![(h.get(s.url("/v2/team/app/manifests/v1")), 200), (h.head(s.url("/v2/team/app/manifests/v1")), 200)],
        ),
        Kind::ManifestWrite => {
            one(Rule::Push, h.put(s.url("/v2/team/app/manifests/t2")).header("content-type", oci).body("{}"), 400)
        }
        Kind::ManifestDelete => one(Rule::Delete, h.delete(s.url(&format!("/v2/team/app/manifests/{zero}"))), 404),
        Kind::BlobRead => one(Rule::Pull, h.get(s.url(&format!("/v2/team/app/blobs/{}", f.config))), 200),
        Kind::BlobWrite => one(Rule::Push, h.put(s.url(&format!("/v2/team/app/blobs/{zero}"))), 405),
        Kind::BlobDelete => one(Rule::Delete, h.delete(s.url(&format!("/v2/team/app/blobs/{zero}"))), 404),
        Kind::UploadStart => one(Rule::Push, h.post(s.url("/v2/team/app/blobs/uploads/")), 202),
        Kind::Upload => one(Rule::Push, h.get(s.url(&format!("/v2/team/app/blobs/uploads/{}", "0".repeat(32)))), 404),
        Kind::TufRead => one(Rule::Pull, h.get(s.url("/v2/team/app/_tuf/root.json")), 404),
        Kind::TufWrite => (
            Rule::Sign,
            vec![
                (h.post(s.url("/v2/team/app/_tuf/publish")).body("{}"), 400),
                (h.put(s.url("/v2/team/app/_tuf/root.json")).body("{}"), 405),
            ],
        ),
        Kind::NotaryV1Read => one(Rule::Pull, h.get(s.url(&format!("/v2/{gun}/_trust/tuf/root.json"))), 404),
        Kind::NotaryV1Write => one(Rule::Sign, h.delete(s.url(&format!("/v2/{gun}/_trust/tuf/"))), 200),
        Kind::Changefeed => one(Rule::Catalog, h.get(s.url("/v2/_trust/changefeed?records=10")), 200),
        Kind::MirrorRead => one(Rule::Pull, h.get(s.url("/v2/mirror/up/app/manifests/v1")), 200),
        Kind::MirrorWrite => (
            Rule::Push,
            vec![
                (h.put(s.url("/v2/mirror/up/app/manifests/v2")).header("content-type", oci).body("{}"), 403),
                (h.post(s.url("/v2/mirror/up/app/blobs/uploads/")), 403),
            ],
        ),
        Kind::MirrorDelete => one(Rule::Delete, h.delete(s.url("/v2/mirror/up/app/manifests/v1")), 403),
        Kind::MirrorTufRead => (
            Rule::Pull,
            vec![
                (h.get(s.url("/v2/mirror/up/app/_tuf/timestamp.json")), 404),
                // A mirror holds no Notary v1 collection of its own.
                (h.get(s.url(&format!("/v2/{mirrored_gun}/_trust/tuf/root.json"))), 404),
            ],
        ),
        Kind::MirrorTufWrite => (
            Rule::Sign,
            vec![
                (h.post(s.url("/v2/mirror/up/app/_tuf/publish")).body("{}"), 403),
                // A signer cannot make a local Notary v1 collection (or server key) for a mirrored repository.
                (h.get(s.url(&format!("/v2/{mirrored_gun}/_trust/tuf/timestamp.key"))), 403),
                (h.delete(s.url(&format!("/v2/{mirrored_gun}/_trust/tuf/"))), 403),
            ],
        ),
        Kind::Token => one(Rule::Public, h.get(s.url("/auth/token?service=wharf")), 200),
        Kind::Health => one(Rule::Public, h.get(s.url("/healthz")), 200),
        // `[metrics]` by default: no token, loopback scrapers (these tests) only; registry credentials change nothing.
        Kind::Metrics => one(Rule::Public, h.get(s.url("/metrics")), 200),
        // The interface identifies its viewer by the session cookie, never `Authorization`: every caller sees the
        // page (as what it is: anonymous), and a form without its CSRF token is refused to everyone.
        Kind::Ui => one(Rule::Identify, h.get(s.url("/ui/")), 200),
        Kind::UiForm => one(Rule::Identify, h.post(s.url("/ui/sign-out")), 403),
        Kind::Search => {
            (Rule::Identify, vec![(h.get(s.url("/v1/_ping")), 200), (h.get(s.url("/v1/search?q=app")), 200)])
        }
        Kind::Invalid => {
            let t = format!("/v2/mirror/up/app/_tuf/targets/{}", "ab".repeat(32));
            (
                Rule::Refuse,
                vec![
                    // Both once reached a handler with no check at all (issue 20, items 1 and 3).
                    (h.get(s.url(&format!("{t}.x/_trust/y"))), 404),
                    (h.get(s.url(&format!("/v2/{}/Team/App/_trust/tuf/timestamp.key", s.addr))), 404),
                    (h.get(s.url("/v2/A/manifests/v1")), 400),
                ],
            )
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
    let anonymous_token: String = {
        let v: serde_json::Value =
            f.http.get(f.server.url("/auth/token?service=wharf")).send().unwrap().json().unwrap();
        v["token"].as_str().unwrap().to_owned()
    };
    let mut wrong = Vec::new();
    let mut cells = 0;
    for &kind in Kind::ALL {
        let (rule, _) = samples(&f, kind);
        if kind.rule() != rule {
            wrong.push(format!("{kind:?}: the route table says {:?}, expected {rule:?}", kind.rule()));
        }
        for caller in CALLERS {
            for (req, success) in samples(&f, kind).1 {
                let req = match (caller, caller.user()) {
                    (_, Some((u, p))) => req.basic_auth(u, Some(p)),
                    (Caller::AnonymousToken, None) => req.bearer_auth(&anonymous_token),
                    _ => req,
                };
                // A refused kind answers its own error to everyone.
                let allowed = caller.allowed(rule);
                let want = if kind == Kind::Token && caller == Caller::AnonymousToken {
                    // The token endpoint takes Basic credentials or none; a bearer token is its own 400.
                    400
                } else if allowed || rule == Rule::Refuse {
                    success
                } else if matches!(caller, Caller::Anonymous | Caller::AnonymousToken) {
                    401
                } else {
                    403
                };
                let req = req.build().unwrap();
                let head = req.method() == reqwest::Method::HEAD;
                let r = f.http.execute(req).unwrap();
                cells += 1;
                let got = r.status().as_u16();
                if got == 401 && r.headers().get("www-authenticate").is_none() {
                    wrong.push(format!("{kind:?} as {caller:?}: 401 without a challenge"));
                }
                let body = r.text().unwrap_or_default();
                if got != want {
                    wrong.push(format!("{kind:?} as {caller:?}: got {got}, expected {want}: {}", body.trim()));
                } else if got == 403 && !allowed && !head {
                    // A refusal names who was refused, and what on which repository.
                    let (user, _) = caller.user().unwrap_or(("anonymous", ""));
                    let names_repo = ["team/app", "mirror/up/app", "the catalog"].iter().any(|r| body.contains(r));
                    if !body.contains(user) || !names_repo {
                        wrong.push(format!("{kind:?} as {caller:?}: 403 names neither caller nor repository: {body}"));
                    }
                }
            }
        }
    }
    assert!(cells >= Kind::ALL.len() * CALLERS.len(), "only {cells} cells ran");
    assert!(wrong.is_empty(), "{} cells wrong:\n{}", wrong.len(), wrong.join("\n"));
}
