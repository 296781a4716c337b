//! A Notation trust store, from the raw files the caller read: `x509/<type>/<name>/<file>.{pem,crt,cer}`, each
//! holding certificates in PEM (one or more) or DER. As the specification says, deeper sub-directories of a named
//! store and files of other extensions are ignored.

use std::collections::BTreeMap;

use x509_cert::der::{Decode, DecodePem};
use x509_cert::Certificate;

use super::trust_policy::StoreType;

/// The certificates of one trust store directory, by named store.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    stores: BTreeMap<(StoreType, String), Vec<Vec<u8>>>,
}

/// A trust store file that could not be read as certificates.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: not a PEM or DER certificate: {source}")]
    Certificate {
        path: String,
        #[source]
        source: x509_cert::der::Error,
    },
    #[error("{0}: no certificate in the file")]
    Empty(String),
}

/// More certificates than any trust store needs; a bound on what one file costs to parse.
const MAX_CERTIFICATES_PER_FILE: usize = 64;

impl TrustStore {
    /// Collects the certificates of `files` (path relative to the trust store directory → contents). Only the named
    /// stores in `wanted` are parsed; a malformed file in one of them is an error.
    pub fn parse(files: &BTreeMap<String, Vec<u8>>, wanted: &[(StoreType, String)]) -> Result<TrustStore, StoreError> {
        let mut stores: BTreeMap<(StoreType, String), Vec<Vec<u8>>> = BTreeMap::new();
        for (path, bytes) in files {
            let parts: Vec<&str> = path.split('/').collect();
            let [x509, kind, name, file] = parts[..] else { continue };
            let Some(kind) = StoreType::parse(kind) else { continue };
            let certificate_file = [".pem", ".crt", ".cer"].iter().any(|ext| file.ends_with(ext));
            let key = (kind, name.to_string());
            if x509 != "x509" || !certificate_file || !wanted.contains(&key) {
                continue;
            }
            let certs = certificates(path, bytes)?;
            stores.entry(key).or_default().extend(certs);
        }
        Ok(TrustStore { stores })
    }

    /// The DER certificates of the named stores of `kind` among `names`.
    pub fn certificates<'a>(
        &'a self,
        names: &'a [(StoreType, String)],
        kind: StoreType,
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        names
            .iter()
            .filter(move |(k, _)| *k == kind)
            .filter_map(|key| self.stores.get(key))
            .flatten()
            .map(Vec::as_slice)
    }
}

/// The certificates of one file, as DER: PEM blocks if it has any, else the whole file as one DER certificate.
fn certificates(path: &str, bytes: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
    let err = |source| StoreError::Certificate { path: path.to_string(), source };
    if !bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let cert = Certificate::from_der(bytes).map_err(err)?;
        return Ok(vec![x509_cert::der::Encode::to_der(&cert).map_err(err)?]);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| StoreError::Empty(path.to_string()))?;
    let mut out = vec![];
    const END: &str = "-----END CERTIFICATE-----";
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(end) = rest[start..].find(END) else { break };
        let block = &rest[start..start + end + END.len()];
        let cert = Certificate::from_pem(block.as_bytes()).map_err(err)?;
        out.push(x509_cert::der::Encode::to_der(&cert).map_err(err)?);
        if out.len() > MAX_CERTIFICATES_PER_FILE {
            break;
        }
        rest = &rest[start + end + END.len()..];
    }
    if out.is_empty() {
        return Err(StoreError::Empty(path.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_and_der() -> (String, Vec<u8>) {
        let cert = rcgen::generate_simple_self_signed(vec!["root".into()]).unwrap().cert;
        (cert.pem(), cert.der().to_vec())
    }

    #[test]
    fn layout_and_formats() {
        let (pem, der) = pem_and_der();
        let (pem2, der2) = pem_and_der();
        let files: BTreeMap<String, Vec<u8>> = [
            ("x509/ca/acme/root.pem", format!("{pem}\n{pem2}").into_bytes()),
            ("x509/ca/acme/root.crt", der.clone()),
            ("x509/ca/acme/sub/ignored.pem", b"not a certificate".to_vec()),
            ("x509/ca/acme/readme.txt", b"not a certificate".to_vec()),
            ("x509/ca/other/root.pem", b"not a certificate either".to_vec()),
            ("x509/signingAuthority/acme/sa.cer", der2.clone()),
        ]
        .into_iter()
        .map(|(p, b)| (p.to_string(), b))
        .collect();
        let wanted = [(StoreType::Ca, "acme".to_string()), (StoreType::SigningAuthority, "acme".to_string())];
        let store = TrustStore::parse(&files, &wanted).unwrap();
        let ca: Vec<&[u8]> = store.certificates(&wanted, StoreType::Ca).collect();
        // The `.crt` (DER) sorts before the `.pem` (two certificates).
        assert_eq!(ca, vec![der.as_slice(), der.as_slice(), der2.as_slice()]);
        let sa: Vec<&[u8]> = store.certificates(&wanted, StoreType::SigningAuthority).collect();
        assert_eq!(sa, vec![der2.as_slice()]);

        // A malformed certificate in a store the policy names is an error; in one it does not name, ignored.
        let other = [(StoreType::Ca, "other".to_string())];
        assert!(
            matches!(TrustStore::parse(&files, &other), Err(StoreError::Certificate { path, .. }) if path == "x509/ca/other/root.pem")
        );
        let no_pem_block: BTreeMap<String, Vec<u8>> =
            [("x509/ca/acme/x.pem".to_string(), b"-----BEGIN PUBLIC KEY-----".to_vec())].into();
        assert!(matches!(TrustStore::parse(&no_pem_block, &wanted), Err(StoreError::Empty(_))));
    }
}
