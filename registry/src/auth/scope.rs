//! Pure access vocabulary: actions, repository-name patterns and Docker token scopes (what each request needs is
//! [`super::need`]).

use std::fmt;

use wharf_format::RepositoryName;

/// A set of actions on a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actions(u8);

impl Actions {
    pub const NONE: Actions = Actions(0);
    pub const PULL: Actions = Actions(1);
    pub const PUSH: Actions = Actions(2);
    pub const DELETE: Actions = Actions(4);
    pub const SIGN: Actions = Actions(8);
    pub const ALL: Actions = Actions(15);
    const NAMES: [(&'static str, Actions); 4] =
        [("pull", Actions::PULL), ("push", Actions::PUSH), ("delete", Actions::DELETE), ("sign", Actions::SIGN)];

    pub fn union(self, o: Actions) -> Actions {
        Actions(self.0 | o.0)
    }
    pub fn intersect(self, o: Actions) -> Actions {
        Actions(self.0 & o.0)
    }
    pub fn contains(self, o: Actions) -> bool {
        self.0 & o.0 == o.0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parses a comma-separated list of action names as a token request or a token claim spells them: `pull`,
    /// `push`, `delete`, `sign`, and `*` for all. Unknown names are ignored (nothing is granted for them), as
    /// Distribution does.
    pub fn parse_requested(s: &str) -> Actions {
        s.split(',').fold(Actions::NONE, |acc, a| acc.union(Actions::one(a.trim()).unwrap_or_default()))
    }

    fn one(name: &str) -> Option<Actions> {
        if name == "*" {
            return Some(Actions::ALL);
        }
        Actions::NAMES.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    /// Parses what a grant gives: `pull`, `push` (with pull), `delete`, `sign` (with pull), `admin` (everything).
    /// Unlike a request, an unknown name is an error here: a typo must not silently grant less.
    pub fn parse_grant(s: &str) -> Result<Actions, String> {
        let mut acc = Actions::NONE;
        for a in s.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            acc = acc.union(match a {
                "admin" => Actions::ALL,
                "push" => Actions::PUSH.union(Actions::PULL),
                "sign" => Actions::SIGN.union(Actions::PULL),
                other => Actions::one(other)
                    .filter(|_| other != "*")
                    .ok_or_else(|| format!("unknown action {other:?}: use pull, push, delete, sign or admin"))?,
            });
        }
        if acc.is_empty() {
            return Err("no actions given".into());
        }
        Ok(acc)
    }

    pub fn names(self) -> Vec<&'static str> {
        Actions::NAMES.iter().filter(|(_, a)| self.contains(*a)).map(|(n, _)| *n).collect()
    }
}

impl fmt::Display for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

/// A repository-name pattern: `team/app` (exactly), `team/*` (one more component), `team/**` (one or more), `**`
/// (every repository). `*` and `**` are whole components; `**` only at the end. Matching is linear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let parts: Vec<&str> = text.split('/').collect();
        for (i, p) in parts.iter().enumerate() {
            match *p {
                "*" => {}
                "**" if i + 1 == parts.len() => {}
                "**" => return Err(format!("{text:?}: `**` may only end a pattern")),
                lit => {
                    if lit.parse::<RepositoryName>().is_err() {
                        return Err(format!("{text:?}: {lit:?} is neither a name component, `*` nor `**`"));
                    }
                }
            }
        }
        if text.len() > 255 {
            return Err(format!("{text:?}: longer than a repository name may be"));
        }
        Ok(Pattern { text: text.to_owned() })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, name: &str) -> bool {
        let mut pat = self.text.split('/');
        let mut comps = name.split('/');
        loop {
            match (pat.next(), comps.next()) {
                (Some("**"), Some(_)) => return true,
                (Some("*"), Some(_)) => {}
                (Some(p), Some(c)) if p == c => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }
}

/// What a token scope or a request names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Repository(String),
    /// `registry:catalog:*`.
    Catalog,
}

/// One `type:name:actions` scope, as in `scope=repository:team/app:pull,push`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub resource: Resource,
    pub actions: Actions,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope {0:?} is not TYPE:NAME:ACTIONS")]
pub struct ScopeError(pub String);

impl Scope {
    /// Parses one scope. `repository` (also `repository(plugin)`) with a valid name, or `registry:catalog:*`;
    /// other well-formed types parse to `None` and are granted nothing.
    pub fn parse(s: &str) -> Result<Option<Scope>, ScopeError> {
        let bad = || ScopeError(s.chars().take(200).collect());
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(bad)?;
        if kind.is_empty() || name.is_empty() {
            return Err(bad());
        }
        let kind = kind.split_once('(').map_or(kind, |(k, _)| k);
        match kind {
            "repository" => {
                // A trust client's GUN (`HOST:PORT/REPOSITORY`) is kept for `for_trust_clients`, which maps it to
                // the repository or drops it.
                let gun = name.parse::<wharf_format::notary::Gun>().ok().filter(|g| g.repository().is_some());
                let ok = name.parse::<RepositoryName>().is_ok() || gun.is_some();
                if !ok {
                    return Err(bad());
                }
                Ok(Some(Scope {
                    resource: Resource::Repository(name.to_owned()),
                    actions: Actions::parse_requested(actions),
                }))
            }
            "registry" if name == "catalog" => Ok(Some(Scope { resource: Resource::Catalog, actions: Actions::ALL })),
            _ => Ok(None),
        }
    }

    /// All scopes of one or more `scope` parameters, each a space-separated list.
    pub fn parse_all<'a>(params: impl IntoIterator<Item = &'a str>) -> Result<Vec<Scope>, ScopeError> {
        let mut out = Vec::new();
        for p in params {
            for s in p.split(' ').filter(|s| !s.is_empty()) {
                out.extend(Scope::parse(s)?);
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.resource {
            Resource::Repository(n) => write!(f, "repository:{n}:{}", self.actions),
            Resource::Catalog => f.write_str("registry:catalog:*"),
        }
    }
}

/// Docker's and the notary CLI's trust clients ask for scopes on the collection's GUN, `HOST/REPOSITORY`, with `push`
/// to publish. When HOST is this server (as the token request addressed it), such a scope is the repository's, in
/// Wharf's terms: `pull` stays `pull`, `push` becomes `sign` (which the Notary v1 API needs to publish). Every other
/// scope passes unchanged.
pub fn for_trust_clients(asked: Vec<Scope>, host: Option<&str>) -> Vec<Scope> {
    let host = host.filter(|h| !h.is_empty());
    asked
        .into_iter()
        .map(|s| {
            let Resource::Repository(name) = &s.resource else { return s };
            let ours = host.and_then(|h| name.strip_prefix(h)).and_then(|r| r.strip_prefix('/'));
            let Some(repo) = ours.filter(|r| r.parse::<RepositoryName>().is_ok()) else { return s };
            let mut actions = s.actions.intersect(Actions::PULL);
            if s.actions.contains(Actions::PUSH) {
                actions = actions.union(Actions::SIGN);
            }
            Scope { resource: Resource::Repository(repo.to_owned()), actions }
        })
        // A GUN of another host names no repository here: nothing to grant.
        .filter(|s| match &s.resource {
            Resource::Repository(n) => n.parse::<RepositoryName>().is_ok(),
            Resource::Catalog => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_client_scopes() {
        let s = |name: &str, a: Actions| Scope { resource: Resource::Repository(name.into()), actions: a };
        let rw = Actions::PULL.union(Actions::PUSH);
        let got = for_trust_clients(
            vec![s("reg.example.com:5000/team/app", rw), s("team/app", rw), s("other.host/team/app", rw)],
            Some("reg.example.com:5000"),
        );
        assert_eq!(got[0], s("team/app", Actions::PULL.union(Actions::SIGN)));
        assert_eq!(got[1], s("team/app", rw), "a registry scope stays as asked");
        assert_eq!(got[2], s("other.host/team/app", rw), "another host's GUN is not ours (and is a valid name)");
        let foreign = for_trust_clients(vec![s("other:5000/team/app", rw)], Some("reg.example.com:5000"));
        assert!(foreign.is_empty(), "a GUN with a port is no repository name: granted nothing");
        let pull =
            for_trust_clients(vec![s("reg.example.com:5000/team/app", Actions::PULL)], Some("reg.example.com:5000"));
        assert_eq!(pull, vec![s("team/app", Actions::PULL)]);
        assert_eq!(for_trust_clients(vec![s("h/team/app", rw)], None), vec![s("h/team/app", rw)]);
    }

    #[test]
    fn patterns() {
        let m = |p: &str, n: &str| Pattern::parse(p).unwrap().matches(n);
        assert!(m("team/app", "team/app"));
        assert!(!m("team/app", "team/app/sub"));
        assert!(m("team/*", "team/app"));
        assert!(!m("team/*", "team/app/sub"));
        assert!(!m("team/*", "team"));
        assert!(m("team/**", "team/app/sub"));
        assert!(m("team/**", "team/app"));
        assert!(!m("team/**", "team"));
        assert!(!m("team/**", "teams/app"));
        assert!(m("**", "a/b/c"));
        assert!(m("*/app", "x/app"));
        assert!(Pattern::parse("a/**/b").is_err());
        assert!(Pattern::parse("A/b").is_err());
        assert!(Pattern::parse("a//b").is_err());
        assert!(Pattern::parse("a/b*").is_err());
    }

    #[test]
    fn scopes() {
        let s = Scope::parse("repository:team/app:pull,push").unwrap().unwrap();
        assert_eq!(s.to_string(), "repository:team/app:pull,push");
        assert_eq!(Scope::parse("repository(plugin):a:pull").unwrap().unwrap().actions, Actions::PULL);
        assert_eq!(Scope::parse("registry:catalog:*").unwrap().unwrap().resource, Resource::Catalog);
        assert_eq!(Scope::parse("repository:a:frobnicate").unwrap().unwrap().actions, Actions::NONE);
        assert!(Scope::parse("something:else:pull").unwrap().is_none());
        let gun = Scope::parse("repository:reg.example.com:5000/team/app:push,pull").unwrap().unwrap();
        assert_eq!(gun.resource, Resource::Repository("reg.example.com:5000/team/app".into()));
        for bad in [
            "",
            "repository",
            "repository:a",
            "repository::pull",
            ":a:pull",
            "repository:UP:pull",
            "repository:h:1/UP:pull",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Scope::parse_all(["repository:a:pull repository:b:push"]).unwrap().len(), 2);
    }

    #[test]
    fn grants() {
        assert_eq!(Actions::parse_grant("push").unwrap(), Actions::PULL.union(Actions::PUSH));
        assert_eq!(Actions::parse_grant("admin").unwrap(), Actions::ALL);
        assert!(Actions::parse_grant("pul").is_err());
        assert!(Actions::parse_grant("*").is_err());
        assert!(Actions::parse_grant("").is_err());
    }
}
