//! The JWS envelope (`application/jose+json`) as the Notary Project's JWS specification defines it: the flattened
//! JSON serialization only, a protected header with `alg`, `cty`, `crit` and the `io.cncf.notary.*` attributes, and
//! the certificate chain in the unprotected `x5c`.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::envelope::{self, Envelope, EnvelopeError, SigningScheme};
use super::envelope::{AUTHENTIC_SIGNING_TIME, EXPIRY, SIGNING_SCHEME, SIGNING_TIME};
use super::{MAX_CERTIFICATES, PAYLOAD_CONTENT_TYPE};

/// The flattened serialization; "no additional top level fields are supported".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flattened {
    payload: String,
    protected: String,
    #[serde(default)]
    header: Unprotected,
    signature: String,
}

/// The unprotected header: the chain, and attributes not used in trust decisions (signing agent, timestamp).
#[derive(Deserialize, Default)]
struct Unprotected {
    #[serde(default)]
    x5c: Vec<String>,
}

/// Parses a JWS envelope; nothing is verified yet but its form.
pub fn parse(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    let f: Flattened = serde_json::from_slice(bytes).map_err(EnvelopeError::Json)?;
    let b64url = |field: &'static str, v: &str| URL_SAFE_NO_PAD.decode(v).map_err(|_| EnvelopeError::Base64(field));
    let header_bytes = b64url("protected", &f.protected)?;
    let payload = b64url("payload", &f.payload)?;
    let signature = b64url("signature", &f.signature)?;
    let header: Map<String, Value> = serde_json::from_slice(&header_bytes).map_err(EnvelopeError::Json)?;

    let text = |name: &'static str| -> Result<Option<&str>, EnvelopeError> {
        match header.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(EnvelopeError::Header { name, reason: "is not a string" }),
        }
    };
    let required = |name: &'static str| text(name)?.ok_or(EnvelopeError::Missing(name));
    let alg = required("alg")?.to_string();
    let cty = required("cty")?;
    if cty != PAYLOAD_CONTENT_TYPE {
        return Err(EnvelopeError::ContentType(cty.to_string()));
    }
    let scheme = SigningScheme::parse(required(SIGNING_SCHEME)?)?;
    let time = |name: &'static str| text(name)?.map(|v| envelope::rfc3339(name, v)).transpose();
    let signing_time = time(SIGNING_TIME)?;
    let authentic_signing_time = time(AUTHENTIC_SIGNING_TIME)?;
    let expiry = time(EXPIRY)?;
    match scheme {
        SigningScheme::X509 if signing_time.is_none() => return Err(EnvelopeError::Missing(SIGNING_TIME)),
        SigningScheme::X509SigningAuthority if authentic_signing_time.is_none() => {
            return Err(EnvelopeError::Missing(AUTHENTIC_SIGNING_TIME))
        }
        _ => {}
    }
    check_crit(&header, scheme, expiry.is_some())?;

    if f.header.x5c.is_empty() {
        return Err(EnvelopeError::NoCertificates);
    }
    if f.header.x5c.len() > MAX_CERTIFICATES {
        return Err(EnvelopeError::TooManyCertificates(f.header.x5c.len()));
    }
    let mut chain = vec![];
    for (index, c) in f.header.x5c.iter().enumerate() {
        let der = STANDARD.decode(c).map_err(|_| EnvelopeError::Base64("x5c"))?;
        let cert = super::cert::parse(&der).map_err(|source| EnvelopeError::Certificate { index, source })?;
        chain.push((der, cert));
    }
    let signing_input = format!("{}.{}", f.protected, f.payload).into_bytes();
    Ok(Envelope { alg, scheme, signing_time, authentic_signing_time, expiry, payload, chain, signing_input, signature })
}

/// `crit` is present and a list of header names; what it must and may list is [`envelope::check_critical`]'s.
fn check_crit(header: &Map<String, Value>, scheme: SigningScheme, has_expiry: bool) -> Result<(), EnvelopeError> {
    let not_names = EnvelopeError::Header { name: "crit", reason: "is not a list of header names" };
    let crit: Vec<&str> = match header.get("crit") {
        Some(Value::Array(v)) if !v.is_empty() => {
            v.iter().map(Value::as_str).collect::<Option<_>>().ok_or(not_names)?
        }
        Some(_) => return Err(not_names),
        None => return Err(EnvelopeError::Missing("crit")),
    };
    envelope::check_critical(&crit, &|name| header.contains_key(name), scheme, has_expiry)
}

#[cfg(test)]
mod tests;
