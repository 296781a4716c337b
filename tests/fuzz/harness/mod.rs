//! The fuzz targets, shared by the libFuzzer binaries (`tests/fuzz/fuzz_targets/*.rs`) and the replay test
//! (`tests/e2e/fuzz_replay.rs`), which runs every corpus file and past crash through the same functions on the stable
//! compiler. Each target takes any bytes: it may return early on input its parser refuses, and it panics only when
//! a parser panics or a property it states does not hold.

#![allow(dead_code)]

pub mod formats;
pub mod notary;
pub mod routes;
pub mod token;
pub mod tuf;
pub mod unpack;

/// A fuzz target: any bytes in, a panic only for a bug.
pub type Target = fn(&[u8]);

/// Every target by name; the name is the fuzz binary's and the corpus directory's.
pub const TARGETS: &[(&str, Target)] = &[
    ("manifest", formats::manifest),
    ("challenge", formats::challenge),
    ("range", formats::range),
    ("config", formats::config),
    ("routes", routes::routes),
    ("jwt", token::jwt),
    ("tuf_envelope", tuf::envelope),
    ("tuf_trusted", tuf::trusted),
    ("notary_signed", notary::signed),
    ("notary_trusted", notary::trusted),
    ("notary_upload", notary::upload),
    ("unpack", unpack::unpack),
];

/// Splits a multi-document input at NUL bytes (which JSON text never holds raw).
pub fn documents(data: &[u8]) -> Vec<&[u8]> {
    data.split(|b| *b == 0).collect()
}

/// The lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

/// The `signed` object of an envelope, or the whole value when it has none (so a seed may be a bare role).
pub fn signed_part(doc: &[u8]) -> Option<serde_json::Value> {
    let mut v: serde_json::Value = serde_json::from_slice(doc).ok()?;
    Some(match v.get_mut("signed") {
        Some(s) => s.take(),
        None => v,
    })
}

/// Sets `signed.meta[name]` (when `meta` is an object) to `entry`: how a harness chains a re-signed document into
/// the one that lists it, so the fuzzer reaches the checks after the hash comparison.
pub fn set_meta(signed: &mut serde_json::Value, name: &str, entry: serde_json::Value) {
    if let Some(meta) = signed.get_mut("meta").and_then(|m| m.as_object_mut()) {
        meta.insert(name.to_owned(), entry);
    }
}
