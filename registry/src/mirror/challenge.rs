//! `WWW-Authenticate` challenges as registries send them: `Basic realm="..."` and `Bearer realm="...",
//! service="...",scope="..."`. One left-to-right pass over the header (no backtracking).

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

/// Longest header parsed.
const MAX: usize = 4096;

pub fn parse(header: &str) -> Result<Challenge, &'static str> {
    if header.len() > MAX {
        return Err("challenge too long");
    }
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = params(rest)?;
    let get = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    if scheme.eq_ignore_ascii_case("basic") {
        Ok(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Challenge::Bearer { realm: get("realm").ok_or("no realm")?, service: get("service"), scope: get("scope") })
    } else {
        Err("unknown scheme")
    }
}

/// `name=value` or `name="quoted value"` pairs separated by commas.
fn params(s: &str) -> Result<Vec<(String, String)>, &'static str> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && (b[i] == b' ' || b[i] == b',') {
            i += 1;
        }
        if i == b.len() {
            return Ok(out);
        }
        let start = i;
        while i < b.len() && b[i] != b'=' {
            i += 1;
        }
        if i == b.len() {
            return Err("parameter without a value");
        }
        let name = s[start..i].trim().to_string();
        i += 1;
        let mut value = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err("unterminated quoted string"),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < b.len() => {
                        value.push(b[i + 1] as char);
                        i += 2;
                    }
                    Some(_) => {
                        // Copy a whole UTF-8 character.
                        let ch = s[i..].chars().next().ok_or("bad character")?;
                        value.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
        } else {
            let v0 = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            value.push_str(s[v0..i].trim());
        }
        out.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Ok(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(parse(r#"Basic realm="Registry Realm""#), Ok(Challenge::Basic));
        assert_eq!(
            parse("bearer realm=http://x/t"),
            Ok(Challenge::Bearer { realm: "http://x/t".into(), service: None, scope: None })
        );
        assert!(parse("Bearer service=\"x\"").is_err());
        assert!(parse("Bearer realm=\"unterminated").is_err());
        assert!(parse("Negotiate abc").is_err());
        assert!(parse(&"a".repeat(5000)).is_err());
    }
}
