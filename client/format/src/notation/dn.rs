//! Distinguished names as Notation's `trustedIdentities` use them: `x509.subject: C=US, ST=WA, O=acme`, matched
//! against the signing certificate's subject. An identity matches when every attribute it names is in the subject
//! with the same value (a subset), as the trust policy specification's "Trusted Identities Constraints" define.

use std::collections::BTreeMap;
use std::fmt;

use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::name::Name;

/// A distinguished name as a map from attribute type (`C`, `ST`, `O`, `CN`, ...) to value; each type once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinguishedName(BTreeMap<String, String>);

/// Why a distinguished name is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnError {
    #[error("{0:?} is not an attribute=value list")]
    Syntax(String),
    #[error("attribute {0} appears more than once")]
    Duplicate(String),
    #[error("a trusted identity must name C, ST and O; {0} is missing")]
    Missing(&'static str),
    #[error("attribute {0} has a value of a string type this verifier does not read")]
    Value(String),
}

/// The attribute types with a short name in RFC 4514 and Go's `pkix.Name` (what Notation prints and parses).
const SHORT_NAMES: [(&str, &str); 9] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.5", "SERIALNUMBER"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.17", "POSTALCODE"),
];

impl DistinguishedName {
    /// Parses the value of an `x509.subject:` identity: comma-separated `TYPE=value` pairs, with `\` escaping a
    /// comma, semicolon, plus, backslash or an edge space. Types are matched case-insensitively (kept upper case).
    pub fn parse(s: &str) -> Result<DistinguishedName, DnError> {
        let mut map = BTreeMap::new();
        for part in split_unescaped(s) {
            let (k, v) = part.split_once('=').ok_or_else(|| DnError::Syntax(s.to_string()))?;
            let key = k.trim().to_ascii_uppercase();
            let value = unescape(v.trim_start()).ok_or_else(|| DnError::Syntax(s.to_string()))?;
            if key.is_empty() || value.is_empty() {
                return Err(DnError::Syntax(s.to_string()));
            }
            if map.insert(key.clone(), value).is_some() {
                return Err(DnError::Duplicate(key));
            }
        }
        if map.is_empty() {
            return Err(DnError::Syntax(s.to_string()));
        }
        Ok(DistinguishedName(map))
    }

    /// [`parse`](Self::parse), plus the specification's rule for identities: C, ST and O are present.
    pub fn parse_identity(s: &str) -> Result<DistinguishedName, DnError> {
        let dn = DistinguishedName::parse(s)?;
        for required in ["C", "ST", "O"] {
            if !dn.0.contains_key(required) {
                return Err(DnError::Missing(required));
            }
        }
        Ok(dn)
    }

    /// A certificate's subject. Attributes without a short name are left out (no identity can name them); a type
    /// that appears twice makes the subject unmatchable, as in Notation.
    pub fn from_name(name: &Name) -> Result<DistinguishedName, DnError> {
        let mut map = BTreeMap::new();
        for rdn in name.0.iter() {
            for atv in rdn.0.iter() {
                let Some(short) = short_name(&atv.oid) else { continue };
                let value = attribute_string(&atv.value).ok_or_else(|| DnError::Value(short.to_string()))?;
                if map.insert(short.to_string(), value).is_some() {
                    return Err(DnError::Duplicate(short.to_string()));
                }
            }
        }
        Ok(DistinguishedName(map))
    }

    /// Whether every attribute of `self` is in `other` with the same value.
    pub fn is_subset_of(&self, other: &DistinguishedName) -> bool {
        self.0.iter().all(|(k, v)| other.0.get(k) == Some(v))
    }
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // In the conventional order, then any other attribute.
        const ORDER: [&str; 9] = ["C", "ST", "L", "STREET", "POSTALCODE", "O", "OU", "CN", "SERIALNUMBER"];
        let mut first = true;
        for (k, v) in ORDER.iter().filter_map(|k| self.0.get_key_value(*k)) {
            write!(f, "{}{k}={}", if first { "" } else { ", " }, escape(v))?;
            first = false;
        }
        Ok(())
    }
}

fn short_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    let dotted = oid.to_string();
    SHORT_NAMES.iter().find(|(o, _)| *o == dotted).map(|(_, n)| *n)
}

fn attribute_string(value: &x509_cert::attr::AttributeValue) -> Option<String> {
    if let Ok(s) = value.decode_as::<Utf8StringRef<'_>>() {
        return Some(s.as_str().to_string());
    }
    if let Ok(s) = value.decode_as::<PrintableStringRef<'_>>() {
        return Some(s.as_str().to_string());
    }
    if let Ok(s) = value.decode_as::<Ia5StringRef<'_>>() {
        return Some(s.as_str().to_string());
    }
    value.decode_as::<TeletexStringRef<'_>>().ok().map(|s| s.as_str().to_string())
}

/// Splits at commas and semicolons that no backslash escapes.
fn split_unescaped(s: &str) -> Vec<&str> {
    let mut parts = vec![];
    let (mut start, mut escaped) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' | ';' => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Removes escapes; an unescaped trailing space is trimmed, an escaped one kept. `None`: a dangling backslash.
fn unescape(v: &str) -> Option<String> {
    let mut out = String::new();
    let mut kept = 0; // Length of `out` that trimming must not cut (up to the last escaped character).
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
            kept = out.len();
        } else {
            out.push(c);
        }
    }
    let trimmed = out.trim_end().len().max(kept);
    out.truncate(trimmed);
    Some(out)
}

fn escape(v: &str) -> String {
    let mut out = String::new();
    for (i, c) in v.chars().enumerate() {
        if matches!(c, ',' | ';' | '+' | '\\') || (c == ' ' && (i == 0 || i + 1 == v.chars().count())) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(pairs: &[(&str, &str)]) -> DistinguishedName {
        DistinguishedName(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn parse() {
        let check = |input: &str, expect: Result<DistinguishedName, DnError>| {
            assert_eq!(DistinguishedName::parse_identity(input), expect, "{input:?}");
        };
        check("C=US, ST=WA, O=acme", Ok(dn(&[("C", "US"), ("ST", "WA"), ("O", "acme")])));
        check(" c=US;st=WA ,O=acme ", Ok(dn(&[("C", "US"), ("ST", "WA"), ("O", "acme")])));
        check(r"C=US, ST=WA, O=acme\, inc.", Ok(dn(&[("C", "US"), ("ST", "WA"), ("O", "acme, inc.")])));
        check(r"C=US, ST=WA, O=a\\b\;c\ ", Ok(dn(&[("C", "US"), ("ST", "WA"), ("O", r"a\b;c ")])));
        check("C=US, ST=WA", Err(DnError::Missing("O")));
        check("C=US, ST=WA, O=a, O=b", Err(DnError::Duplicate("O".into())));
        check("C=US, ST=WA, O", Err(DnError::Syntax("C=US, ST=WA, O".into())));
        check("C=US, ST=WA, O=", Err(DnError::Syntax("C=US, ST=WA, O=".into())));
        check(r"C=US, ST=WA, O=a\", Err(DnError::Syntax(r"C=US, ST=WA, O=a\".into())));
        check("", Err(DnError::Syntax("".into())));
    }

    #[test]
    fn subset() {
        let subject = dn(&[("C", "US"), ("ST", "WA"), ("O", "acme"), ("CN", "builder")]);
        let check = |id: &[(&str, &str)], expect: bool| assert_eq!(dn(id).is_subset_of(&subject), expect, "{id:?}");
        check(&[("C", "US"), ("ST", "WA"), ("O", "acme")], true);
        check(&[("C", "US"), ("ST", "WA"), ("O", "acme"), ("CN", "builder")], true);
        check(&[("C", "US"), ("ST", "WA"), ("O", "Acme")], false);
        check(&[("C", "US"), ("ST", "WA"), ("O", "acme"), ("OU", "x")], false);
    }

    #[test]
    fn display_escapes() {
        let d = dn(&[("C", "US"), ("O", "a, b"), ("CN", " x")]);
        assert_eq!(d.to_string(), r"C=US, O=a\, b, CN=\ x");
        assert_eq!(DistinguishedName::parse(&d.to_string()), Ok(d));
    }
}
