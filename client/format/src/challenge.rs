//! `WWW-Authenticate` challenges as registries send them (`Basic realm="..."`, `Bearer realm="...",service="...",
//! scope="..."`), parsed in one left-to-right pass. Shared by the client's token flow and a mirror's upstreams.

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String>, scope: Vec<String> },
}

/// Parses the first challenge of a `WWW-Authenticate` value (`Bearer realm="…",service="…",scope="…"`).
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    if value.len() > 16 * 1024 {
        return None;
    }
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest)?;
    let get = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    Some(Challenge::Bearer {
        realm: get("realm")?,
        service: get("service"),
        scope: get("scope")
            .map(|s| s.split(' ').filter(|x| !x.is_empty()).map(String::from).collect())
            .unwrap_or_default(),
    })
}

/// `key=value` and `key="quoted \"value\""` pairs separated by commas. Linear, no backtracking.
fn parse_params(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if chars.next() != Some('=') {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return None;
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect::<String>().trim().to_owned();
        }
        out.push((key.trim().to_owned(), value));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://r.example/auth/token",service="wharf",scope="repository:a:pull repository:b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://r.example/auth/token".into(),
                service: Some("wharf".into()),
                scope: vec!["repository:a:pull".into(), "repository:b:pull,push".into()],
            })
        );
        assert_eq!(parse_challenge(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(parse_challenge("Bearer service=x"), None, "no realm");
        assert_eq!(parse_challenge("Negotiate"), None);
        let c = parse_challenge(r#"bearer realm=https://x/t, error="insufficient_scope", scope="a\"b""#);
        assert!(
            matches!(c, Some(Challenge::Bearer { ref realm, ref scope, .. }) if realm == "https://x/t" && scope == &["a\"b".to_string()])
        );
    }

    #[test]
    fn quoted_commas_malformed_and_oversized() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: vec!["repository:a/b:pull,push".into()],
            })
        );
        assert_eq!(
            parse_challenge("bearer realm=http://x/t"),
            Some(Challenge::Bearer { realm: "http://x/t".into(), service: None, scope: vec![] })
        );
        assert_eq!(parse_challenge("Bearer realm=\"unterminated"), None);
        assert_eq!(parse_challenge(&"a".repeat(20_000)), None);
    }
}
