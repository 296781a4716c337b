//! containers' `policy.json` (`containers-policy.json(5)`, what podman, skopeo and CRI-O read), mapped into
//! [`Policy`] rules for the registry an image is pulled from.
//!
//! Only the `docker` transport applies (Wharf pulls from registries); other transports are not read. Its scopes
//! map by specificity, most specific first, as containers/image chooses: `HOST/NAMESPACE/REPO` (that repository
//! and everything below it), `HOST/NAMESPACE`, `HOST`, `*.DOMAIN`, then the transport's `""` scope, then
//! `default`. The requirements of one scope must all hold (`all_of`).
//!
//! Mapped: `insecureAcceptAnything` (accept), `reject`, and keyed `sigstoreSigned` (`keyPath`, `keyPaths`,
//! `keyData`, `keyDatas`) with its `signedIdentity` (`matchExact`, `matchRepoDigestOrExact`, `matchRepository`,
//! `exactReference`, `exactRepository`). Refused, with the reason, where they apply to the registry: `signedBy`
//! (GPG), keyless (`fulcio`) and `pki` entries, Rekor requirements on keyed entries, `remapIdentity`, and scopes
//! naming one image (`:TAG`, `@DIGEST`). Anything unknown (a type, a field) is refused wherever it is: fail closed.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::{Identity, Policy, Requirement, Rule, SigstoreRequirement};

#[derive(Debug, thiserror::Error)]
pub enum ContainersError {
    #[error("policy.json is not valid JSON: {0}")]
    Json(serde_json::Error),
    #[error("policy.json: {0}")]
    Shape(String),
    #[error("policy.json has no \"default\" requirements (containers-policy.json(5) requires them)")]
    NoDefault,
    #[error("policy.json {scope}: an empty requirement list")]
    Empty { scope: String },
    #[error("policy.json {scope}: unknown requirement type {kind:?}")]
    UnknownType { scope: String, kind: String },
    #[error("policy.json {scope}: {kind} has no field {field:?} that Wharf knows; refused rather than ignored")]
    UnknownField { scope: String, kind: String, field: String },
    #[error("policy.json {scope}: {what} is not supported by Wharf; refused rather than ignored ({hint})")]
    Unsupported { scope: String, what: String, hint: &'static str },
    #[error("policy.json {scope}: {reason}")]
    Invalid { scope: String, reason: String },
}

/// The rules for one registry, and the keys that `keyData` carried inline: path-like names (`inline:...`) →
/// PEM bytes, to hand to [`super::Material`] beside the files the rules name.
#[derive(Debug, Clone, Default)]
pub struct Mapped {
    pub policy: Policy,
    pub inline: BTreeMap<String, Vec<u8>>,
}

/// Whether a JSON document is a containers `policy.json` (rather than a Wharf policy written as JSON).
pub fn is_containers(v: &Value) -> bool {
    v.as_object().is_some_and(|o| o.contains_key("default") || o.contains_key("transports"))
}

/// Maps `json` into the rules that apply to images pulled from `host` (`HOST[:PORT]`).
pub fn parse(json: &[u8], host: &str) -> Result<Mapped, ContainersError> {
    let v: Value = serde_json::from_slice(json).map_err(ContainersError::Json)?;
    let top = v.as_object().ok_or_else(|| ContainersError::Shape("not a JSON object".into()))?;
    if let Some(k) = top.keys().find(|k| !["default", "transports"].contains(&k.as_str())) {
        return Err(ContainersError::Shape(format!("unknown top-level field {k:?}")));
    }
    let mut out = Mapped::default();
    let mut scoped: Vec<(u32, String, Requirement)> = Vec::new();
    let mut transport_default = None;
    if let Some(t) = top.get("transports") {
        let t = t.as_object().ok_or_else(|| ContainersError::Shape("\"transports\" is not an object".into()))?;
        if let Some(docker) = t.get("docker") {
            let docker = docker
                .as_object()
                .ok_or_else(|| ContainersError::Shape("transports.docker is not an object".into()))?;
            for (scope, entries) in docker {
                let label = format!("transports.docker[{scope:?}]");
                let applies = if scope.is_empty() { Some(0) } else { specificity(scope, host, &label)? };
                let req = requirements(entries, &label, host, applies.is_some(), &mut out.inline)?;
                match applies {
                    Some(0) => transport_default = Some((label, req)),
                    Some(n) => scoped.push((n, scope.clone(), req)),
                    None => {}
                }
            }
        }
    }
    let default = top.get("default").ok_or(ContainersError::NoDefault)?;
    let default = requirements(default, "default", host, true, &mut out.inline)?;
    // Most specific first; the policy's first matching rule decides.
    scoped.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, scope, require) in scoped {
        let label = format!("transports.docker[{scope:?}]");
        out.policy.rules.push(rule(label, patterns(&scope), require));
    }
    if let Some((label, require)) = transport_default {
        out.policy.rules.push(rule(label, vec!["**".into()], require));
    }
    out.policy.rules.push(rule("default".into(), vec!["**".into()], default));
    Ok(out)
}

fn rule(label: String, patterns: Vec<String>, require: Requirement) -> Rule {
    Rule {
        name: Some(format!("policy.json {label}")),
        // Invariant: `patterns` are `**` or repository paths checked by `specificity`, both valid patterns.
        repositories: patterns.iter().filter_map(|p| p.parse().ok()).collect(),
        require,
        by_digest: false,
        immutable_tags: false,
    }
}

/// The repository patterns a scope `HOST/PATH` (or `HOST`, `*.DOMAIN`) covers: the path and everything below.
fn patterns(scope: &str) -> Vec<String> {
    match scope.split_once('/') {
        Some((_, path)) => vec![path.to_string(), format!("{path}/**")],
        None => vec!["**".into()],
    }
}

/// How specific `scope` is if it applies to `host` (more path components: more specific; a wildcard domain below
/// any exact host), `None` if it names another registry. A scope naming one image is refused if it applies.
fn specificity(scope: &str, host: &str, label: &str) -> Result<Option<u32>, ContainersError> {
    let invalid = |reason: &str| ContainersError::Invalid { scope: label.into(), reason: reason.into() };
    if let Some(domain) = scope.strip_prefix("*.") {
        if domain.is_empty() || domain.contains(['/', '*', ':']) {
            return Err(invalid("a wildcard scope is *.DOMAIN"));
        }
        let name = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
        let applies = name.ends_with(&format!(".{}", domain.to_ascii_lowercase()));
        // Longer domains are more specific; every wildcard ranks below an exact host (1000).
        return Ok(applies.then(|| 1 + domain.len().min(998) as u32));
    }
    let (scope_host, path) = scope.split_once('/').unwrap_or((scope, ""));
    if scope.contains('*') || scope_host.is_empty() || path.starts_with('/') || path.ends_with('/') {
        return Err(invalid("a scope is HOST[:PORT][/NAMESPACE[/REPOSITORY]] or *.DOMAIN"));
    }
    if !scope_host.eq_ignore_ascii_case(host) {
        return Ok(None);
    }
    if path.contains(['@', ':']) {
        return Err(ContainersError::Unsupported {
            scope: label.into(),
            what: "a scope naming one image (a tag or digest)".into(),
            hint: "Wharf policies apply to repositories: use HOST/REPOSITORY",
        });
    }
    if !path.is_empty() && path.parse::<super::Pattern>().is_err() {
        return Err(invalid("not a repository path"));
    }
    Ok(Some(1000 + if path.is_empty() { 0 } else { path.split('/').count() as u32 }))
}

/// A scope's requirement list, all of which must hold. Unknown types and fields are refused everywhere; the
/// unsupported ones only where the scope applies (`applies`).
fn requirements(
    v: &Value,
    label: &str,
    host: &str,
    applies: bool,
    inline: &mut BTreeMap<String, Vec<u8>>,
) -> Result<Requirement, ContainersError> {
    let list = v.as_array().ok_or_else(|| ContainersError::Shape(format!("{label} is not a list")))?;
    if list.is_empty() {
        return Err(ContainersError::Empty { scope: label.into() });
    }
    let mut out = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let o = entry.as_object().ok_or_else(|| ContainersError::Shape(format!("{label}[{i}] is not an object")))?;
        out.push(entry_requirement(o, &format!("{label}[{i}]"), host, applies, inline)?);
    }
    Ok(if out.len() == 1 { out.remove(0) } else { Requirement::AllOf(out) })
}

const SIGSTORE_FIELDS: &[&str] = &[
    "type",
    "keyPath",
    "keyPaths",
    "keyData",
    "keyDatas",
    "fulcio",
    "pki",
    "rekorPublicKeyPath",
    "rekorPublicKeyPaths",
    "rekorPublicKeyData",
    "rekorPublicKeyDatas",
    "signedIdentity",
];

fn entry_requirement(
    o: &Map<String, Value>,
    label: &str,
    host: &str,
    applies: bool,
    inline: &mut BTreeMap<String, Vec<u8>>,
) -> Result<Requirement, ContainersError> {
    let kind = o.get("type").and_then(Value::as_str).unwrap_or("");
    let known: &[&str] = match kind {
        "insecureAcceptAnything" | "reject" => &["type"],
        "signedBy" => &["type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity"],
        "sigstoreSigned" => SIGSTORE_FIELDS,
        _ => return Err(ContainersError::UnknownType { scope: label.into(), kind: kind.into() }),
    };
    if let Some(f) = o.keys().find(|f| !known.contains(&f.as_str())) {
        return Err(ContainersError::UnknownField { scope: label.into(), kind: kind.into(), field: f.clone() });
    }
    let unsupported = |what: &str, hint| ContainersError::Unsupported { scope: label.into(), what: what.into(), hint };
    match kind {
        "insecureAcceptAnything" => Ok(Requirement::Accept),
        "reject" => Ok(Requirement::Reject),
        "signedBy" if applies => {
            Err(unsupported("signedBy (GPG simple signing)", "sign with cosign, TUF or Notation and name that key"))
        }
        // Not for this registry: never evaluated, so a placeholder that refuses.
        "signedBy" => Ok(Requirement::Reject),
        _ => sigstore(o, label, host, applies, inline),
    }
}

fn sigstore(
    o: &Map<String, Value>,
    label: &str,
    host: &str,
    applies: bool,
    inline: &mut BTreeMap<String, Vec<u8>>,
) -> Result<Requirement, ContainersError> {
    let unsupported = |what: &str, hint| ContainersError::Unsupported { scope: label.into(), what: what.into(), hint };
    let invalid = |reason: String| ContainersError::Invalid { scope: label.into(), reason };
    let identity = match (identity(o.get("signedIdentity"), label, host), applies) {
        (Ok(id), true) => id,
        (Err(e), true) => return Err(e),
        // Not for this registry: never evaluated (a placeholder that refuses), but a typo is still refused.
        (Err(ContainersError::Unsupported { .. }) | Ok(_), false) => return Ok(Requirement::Reject),
        (Err(e), false) => return Err(e),
    };
    if o.contains_key("fulcio") || o.contains_key("pki") {
        return Err(unsupported(
            "a keyless (fulcio or pki) sigstoreSigned entry",
            "write a Wharf policy rule: sigstore = { issuer, subject, trusted_root }",
        ));
    }
    if o.keys().any(|k| k.starts_with("rekorPublicKey")) {
        return Err(unsupported("a Rekor requirement on a keyed sigstoreSigned entry", "drop rekorPublicKey*"));
    }
    let strings = |field: &str| -> Result<Vec<String>, ContainersError> {
        match o.get(field) {
            None => Ok(vec![]),
            Some(Value::String(s)) if !field.ends_with('s') => Ok(vec![s.clone()]),
            Some(Value::Array(a)) if field.ends_with('s') => a
                .iter()
                .map(|x| x.as_str().map(String::from).ok_or_else(|| invalid(format!("{field} lists a non-string"))))
                .collect(),
            Some(_) => Err(invalid(format!("{field} has the wrong type"))),
        }
    };
    let mut keys: Vec<String> = strings("keyPath")?.into_iter().chain(strings("keyPaths")?).collect();
    for data in strings("keyData")?.into_iter().chain(strings("keyDatas")?) {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| invalid("keyData is not base64".into()))?;
        let name = format!("inline:{label}#{}", inline.len());
        inline.insert(name.clone(), pem);
        keys.push(name);
    }
    let sources = ["keyPath", "keyPaths", "keyData", "keyDatas"].iter().filter(|f| o.contains_key(**f)).count();
    if sources != 1 || keys.is_empty() {
        return Err(invalid("sigstoreSigned needs exactly one of keyPath, keyPaths, keyData, keyDatas".into()));
    }
    let mut any: Vec<Requirement> = keys
        .into_iter()
        .map(|key| {
            Requirement::Sigstore(SigstoreRequirement {
                key: Some(key),
                identity: Some(identity.clone()),
                ..Default::default()
            })
        })
        .collect();
    Ok(if any.len() == 1 { any.remove(0) } else { Requirement::AnyOf(any) })
}

/// `signedIdentity`; absent, containers' default for `sigstoreSigned`: `matchRepoDigestOrExact`.
fn identity(v: Option<&Value>, label: &str, host: &str) -> Result<Identity, ContainersError> {
    let registry = host.to_string();
    let Some(v) = v else { return Ok(Identity::MatchRepoDigestOrExact { registry }) };
    let invalid = |reason: String| ContainersError::Invalid { scope: label.into(), reason };
    let o = v.as_object().ok_or_else(|| invalid("signedIdentity is not an object".into()))?;
    let kind = o.get("type").and_then(Value::as_str).unwrap_or("");
    let field = |name: &str| -> Result<String, ContainersError> {
        o.get(name).and_then(Value::as_str).map(String::from).ok_or_else(|| invalid(format!("{kind} needs {name}")))
    };
    let (id, known): (Identity, &[&str]) = match kind {
        "matchExact" => (Identity::MatchExact { registry }, &["type"]),
        "matchRepoDigestOrExact" => (Identity::MatchRepoDigestOrExact { registry }, &["type"]),
        "matchRepository" => (Identity::MatchRepository { registry }, &["type"]),
        "exactReference" => {
            (Identity::ExactReference { docker_reference: field("dockerReference")? }, &["type", "dockerReference"])
        }
        "exactRepository" => {
            (Identity::ExactRepository { docker_repository: field("dockerRepository")? }, &["type", "dockerRepository"])
        }
        "remapIdentity" => {
            return Err(ContainersError::Unsupported {
                scope: label.into(),
                what: "signedIdentity remapIdentity".into(),
                hint: "use exactRepository with the signed repository",
            })
        }
        other => return Err(invalid(format!("unknown signedIdentity type {other:?}"))),
    };
    if let Some(f) = o.keys().find(|f| !known.contains(&f.as_str())) {
        return Err(ContainersError::UnknownField { scope: label.into(), kind: kind.into(), field: f.clone() });
    }
    Ok(id)
}

#[cfg(test)]
mod tests;
