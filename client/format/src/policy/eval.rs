//! Evaluating a rule against gathered evidence: a tree of outcomes that says which requirement passed or failed,
//! and why, for `wharf policy check`, the registry's `DENIED` message and the client's report.

use super::{
    Evidence, Material, NotaryV1Requirement, Requirement, Rule, SignedTag, Subject, TrustFinding, TufRequirement,
};

/// What one requirement decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The requirement, in words (`tuf (roles: targets/releases)`).
    pub requirement: String,
    pub passed: bool,
    /// Why: who signed, or what is missing.
    pub reason: String,
    pub children: Vec<Outcome>,
}

/// A rule's decision for a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub rule: String,
    pub allowed: bool,
    pub outcome: Outcome,
}

impl Verdict {
    /// One line for a `DENIED` message or a log: the rule and what is missing.
    pub fn summary(&self) -> String {
        let verb = if self.allowed { "satisfied" } else { "not satisfied" };
        format!("policy {:?} {verb}: {}: {}", self.rule, self.outcome.requirement, self.outcome.reason)
    }

    /// The whole tree, indented, one requirement a line (`wharf policy check`).
    pub fn report(&self) -> String {
        let mut out = format!("rule {:?}: {}\n", self.rule, if self.allowed { "PASS" } else { "FAIL" });
        fn walk(o: &Outcome, depth: usize, out: &mut String) {
            let mark = if o.passed { "pass" } else { "fail" };
            out.push_str(&format!("{}{mark}  {}: {}\n", "  ".repeat(depth + 1), o.requirement, o.reason));
            o.children.iter().for_each(|c| walk(c, depth + 1, out));
        }
        walk(&self.outcome, 0, &mut out);
        out
    }
}

/// Decides `rule` for `subject` from `evidence`; keys, roots and trust stores named by the rule are in `material`.
/// `now` is the time of the decision (Unix seconds): certificates and envelopes are judged at it.
pub fn evaluate(rule: &Rule, subject: &Subject, evidence: &Evidence, material: &Material, now: i64) -> Verdict {
    let outcome = decide(&rule.require, subject, evidence, material, now);
    Verdict { rule: rule.display_name(), allowed: outcome.passed, outcome }
}

fn decide(req: &Requirement, s: &Subject, e: &Evidence, m: &Material, now: i64) -> Outcome {
    let leaf = |requirement: String, r: Result<String, String>| {
        let (passed, reason) = match r {
            Ok(why) => (true, why),
            Err(why) => (false, why),
        };
        Outcome { requirement, passed, reason, children: vec![] }
    };
    match req {
        Requirement::Accept => leaf("accept".into(), Ok("every manifest is accepted".into())),
        Requirement::Reject => leaf("reject".into(), Err("every manifest is rejected".into())),
        Requirement::AnyOf(v) => {
            let children: Vec<Outcome> = v.iter().map(|r| decide(r, s, e, m, now)).collect();
            let passed = children.iter().any(|c| c.passed);
            let reason = if passed {
                format!("satisfied by {}", children.iter().find(|c| c.passed).map_or("", |c| c.requirement.as_str()))
            } else {
                format!("none of {} satisfied", children.len())
            };
            Outcome { requirement: "any_of".into(), passed, reason, children }
        }
        Requirement::AllOf(v) => {
            let children: Vec<Outcome> = v.iter().map(|r| decide(r, s, e, m, now)).collect();
            let failed: Vec<&str> = children.iter().filter(|c| !c.passed).map(|c| c.requirement.as_str()).collect();
            // An empty all_of is refused, never vacuously satisfied (fail closed).
            let passed = failed.is_empty() && !children.is_empty();
            let reason = match (passed, children.is_empty()) {
                (_, true) => "an empty all_of accepts nothing".into(),
                (true, false) => "all satisfied".into(),
                (false, false) => format!("missing: {}", failed.join(", ")),
            };
            Outcome { requirement: "all_of".into(), passed, reason, children }
        }
        Requirement::Tuf(t) => leaf(describe_tuf(t), tuf(t, s, e.tuf.as_ref())),
        Requirement::NotaryV1(n) => leaf(describe_notary(n), notary_v1(n, s, e.notary_v1.as_ref())),
        Requirement::Sigstore(r) => {
            let mut what = crate::sigstore::describe_requirement(r);
            let result = match &r.identity {
                None => crate::sigstore::satisfies(r, s, &e.sigstore, m, now),
                Some(id) => {
                    what = format!("{what} ({})", id.describe());
                    let (kept, dropped) = super::identity::filter(id, s, &e.sigstore);
                    crate::sigstore::satisfies(r, s, &kept, m, now).map_err(|why| match dropped {
                        0 => why,
                        n => format!("{why} ({n} signature(s) name another image or no image)"),
                    })
                }
            };
            leaf(what, result)
        }
        Requirement::Notation(r) => {
            let what = format!("notation (trust policy {})", r.trust_policy);
            leaf(what, crate::notation::satisfies_with(r, s, s.host.as_deref(), None, &e.notation, m, now))
        }
    }
}

fn describe_tuf(t: &TufRequirement) -> String {
    let mut parts = vec![];
    if !t.roles.is_empty() {
        parts.push(format!("roles: {}", t.roles.join(", ")));
    }
    if !t.keys.is_empty() {
        parts.push(format!("{} of keys: {}", t.key_threshold.unwrap_or(1), t.keys.join(", ")));
    }
    if parts.is_empty() {
        "tuf".into()
    } else {
        format!("tuf ({})", parts.join("; "))
    }
}

fn describe_notary(n: &NotaryV1Requirement) -> String {
    if n.delegations.is_empty() {
        "notary_v1".into()
    } else {
        format!("notary_v1 (delegations: {})", n.delegations.join(", "))
    }
}

/// The signed tags that name the subject: its tag if read by tag, else any tag signed for its digest.
fn relevant<'a>(s: &Subject, signed: &'a [SignedTag]) -> Result<Vec<&'a SignedTag>, String> {
    let found: Vec<&SignedTag> = match &s.tag {
        Some(tag) => signed.iter().filter(|t| t.tag == tag.as_str()).collect(),
        None => signed.iter().filter(|t| t.digest == s.digest).collect(),
    };
    if found.is_empty() {
        return Err(match &s.tag {
            Some(tag) => format!("tag {tag} is not signed"),
            None => format!("no signed tag names {}", s.digest),
        });
    }
    if let Some(other) = found.iter().find(|t| t.digest != s.digest) {
        return Err(format!("tag {} is signed for {}, not {}", other.tag, other.digest, s.digest));
    }
    Ok(found)
}

fn finding<'a>(what: &str, f: Option<&'a TrustFinding>) -> Result<&'a [SignedTag], String> {
    match f {
        None => Err(format!("no {what} data was gathered")),
        Some(TrustFinding::NoData) => Err(format!("the repository has no {what} data")),
        Some(TrustFinding::Failed(why)) => Err(format!("{what} data did not verify: {why}")),
        Some(TrustFinding::Signed(v)) => Ok(v),
    }
}

fn tuf(t: &TufRequirement, s: &Subject, f: Option<&TrustFinding>) -> Result<String, String> {
    let found = relevant(s, finding("TUF", f)?)?;
    let mut last = String::new();
    for st in found {
        if !t.roles.is_empty() && !t.roles.contains(&st.role) {
            last = format!("signed by role {}, not one of {}", st.role, t.roles.join(", "));
            continue;
        }
        let need = t.key_threshold.unwrap_or(1).max(1) as usize;
        let have = t.keys.iter().filter(|k| st.keys.contains(k)).count();
        if !t.keys.is_empty() && have < need {
            last = format!("role {} carries {have} of the named keys, {need} needed", st.role);
            continue;
        }
        return Ok(format!("tag {} signed by role {} for {}", st.tag, st.role, st.digest));
    }
    Err(last)
}

fn notary_v1(n: &NotaryV1Requirement, s: &Subject, f: Option<&TrustFinding>) -> Result<String, String> {
    let found = relevant(s, finding("Notary v1", f)?)?;
    for st in &found {
        if n.delegations.is_empty() || n.delegations.contains(&st.role) {
            return Ok(format!("tag {} signed by {} for {}", st.tag, st.role, st.digest));
        }
    }
    Err(format!("signed by {}, not one of {}", found[0].role, n.delegations.join(", ")))
}
