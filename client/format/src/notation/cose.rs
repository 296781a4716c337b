//! The COSE envelope (`application/cose`) as the Notary Project's COSE specification defines it: a
//! `COSE_Sign1_Tagged` whose protected header has `alg` (label 1), `crit` (2), the content type (3) and the
//! `io.cncf.notary.*` attributes (times as tag 1 epoch seconds), with the chain in `x5chain` (label 33). The
//! signature covers the `Sig_structure` (`"Signature1"`, the protected bytes as sent, no external data, the payload).

use coset::cbor::value::Value;
use coset::{iana, Algorithm, ContentType, CoseSign1, Header, Label, RegisteredLabel, TaggedCborSerializable};

use super::envelope::{self, Envelope, EnvelopeError, SigningScheme};
use super::envelope::{AUTHENTIC_SIGNING_TIME, EXPIRY, SIGNING_SCHEME, SIGNING_TIME};
use super::{MAX_CERTIFICATES, PAYLOAD_CONTENT_TYPE};

/// The `x5chain` header label (IANA).
const X5CHAIN: i64 = 33;

/// Parses a COSE envelope; nothing is verified yet but its form.
pub fn parse(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    let sign1 = CoseSign1::from_tagged_slice(bytes).map_err(|_| EnvelopeError::Cose("not a tagged COSE_Sign1"))?;
    let p = &sign1.protected.header;
    let alg = match &p.alg {
        Some(Algorithm::Assigned(a)) => jws_name(*a)
            .ok_or(EnvelopeError::Header { name: "alg", reason: "is not one of the specification's algorithms" })?,
        Some(_) => return Err(EnvelopeError::Header { name: "alg", reason: "is not an assigned algorithm" }),
        None => return Err(EnvelopeError::Missing("alg")),
    };
    match &p.content_type {
        Some(ContentType::Text(t)) if t == PAYLOAD_CONTENT_TYPE => {}
        Some(ContentType::Text(t)) => return Err(EnvelopeError::ContentType(t.clone())),
        Some(ContentType::Assigned(a)) => return Err(EnvelopeError::ContentType(format!("{a:?}"))),
        None => return Err(EnvelopeError::Missing("content type")),
    }
    let scheme = match text_label(p, SIGNING_SCHEME) {
        Some(Value::Text(s)) => SigningScheme::parse(s)?,
        Some(_) => return Err(EnvelopeError::Header { name: SIGNING_SCHEME, reason: "is not a text string" }),
        None => return Err(EnvelopeError::Missing(SIGNING_SCHEME)),
    };
    let signing_time = time(p, SIGNING_TIME)?;
    let authentic_signing_time = time(p, AUTHENTIC_SIGNING_TIME)?;
    let expiry = time(p, EXPIRY)?;
    match scheme {
        SigningScheme::X509 if signing_time.is_none() => return Err(EnvelopeError::Missing(SIGNING_TIME)),
        SigningScheme::X509SigningAuthority if authentic_signing_time.is_none() => {
            return Err(EnvelopeError::Missing(AUTHENTIC_SIGNING_TIME))
        }
        _ => {}
    }
    let mut crit = vec![];
    for label in &p.crit {
        match label {
            RegisteredLabel::Text(t) => crit.push(t.as_str()),
            RegisteredLabel::Assigned(a) => return Err(EnvelopeError::UnknownCritical(format!("{a:?}"))),
        }
    }
    envelope::check_critical(&crit, &|name| text_label(p, name).is_some(), scheme, expiry.is_some())?;

    // `x5chain` is unprotected, or optionally protected: an array of byte strings, or one byte string.
    let chain_value = int_label(&sign1.unprotected, X5CHAIN).or_else(|| int_label(p, X5CHAIN));
    let ders: Vec<&[u8]> = match chain_value {
        Some(Value::Bytes(b)) => vec![b.as_slice()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_bytes().map(Vec::as_slice))
            .collect::<Option<_>>()
            .ok_or(EnvelopeError::Cose("x5chain holds something other than certificates"))?,
        Some(_) => return Err(EnvelopeError::Cose("x5chain is not certificates")),
        None => return Err(EnvelopeError::NoCertificates),
    };
    if ders.is_empty() {
        return Err(EnvelopeError::NoCertificates);
    }
    if ders.len() > MAX_CERTIFICATES {
        return Err(EnvelopeError::TooManyCertificates(ders.len()));
    }
    let mut chain = vec![];
    for (index, der) in ders.into_iter().enumerate() {
        let cert = super::cert::parse(der).map_err(|source| EnvelopeError::Certificate { index, source })?;
        chain.push((der.to_vec(), cert));
    }
    let payload = sign1.payload.clone().ok_or(EnvelopeError::Cose("the payload is detached"))?;
    Ok(Envelope {
        alg: alg.to_string(),
        scheme,
        signing_time,
        authentic_signing_time,
        expiry,
        payload,
        chain,
        signing_input: sign1.tbs_data(b""),
        signature: sign1.signature.clone(),
    })
}

/// The JWS name of a COSE algorithm the specification allows.
fn jws_name(a: iana::Algorithm) -> Option<&'static str> {
    use iana::Algorithm::*;
    Some(match a {
        PS256 => "PS256",
        PS384 => "PS384",
        PS512 => "PS512",
        ES256 => "ES256",
        ES384 => "ES384",
        ES512 => "ES512",
        _ => return None,
    })
}

fn text_label<'a>(h: &'a Header, name: &str) -> Option<&'a Value> {
    h.rest.iter().find(|(l, _)| matches!(l, Label::Text(t) if t == name)).map(|(_, v)| v)
}

fn int_label(h: &Header, label: i64) -> Option<&Value> {
    h.rest.iter().find(|(l, _)| *l == Label::Int(label)).map(|(_, v)| v)
}

/// An epoch-based date/time (RFC 8949 section 3.4.2: tag 1 over an integer), as Unix seconds.
fn time(h: &Header, name: &'static str) -> Result<Option<i64>, EnvelopeError> {
    let Some(v) = text_label(h, name) else { return Ok(None) };
    let bad = || EnvelopeError::Time { name, value: format!("{v:?}") };
    match v {
        Value::Tag(1, inner) => match inner.as_ref() {
            Value::Integer(i) => i64::try_from(*i).map(Some).map_err(|_| bad()),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests;
