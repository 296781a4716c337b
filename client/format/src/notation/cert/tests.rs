//! The certificate requirements, one row per rule, on chains made by rcgen.

use rcgen::{
    BasicConstraints as Bc, CertificateParams, CrlDistributionPoint, DnType, ExtendedKeyUsagePurpose as Eku, IsCa,
    KeyPair, KeyUsagePurpose as Ku,
};
use x509_cert::der::Decode;

use super::*;

struct Made {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn params(cn: &str, is_ca: IsCa, usages: Vec<Ku>, ekus: Vec<Eku>) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CountryName, "US");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = is_ca;
    p.key_usages = usages;
    p.extended_key_usages = ekus;
    p
}

fn make(p: CertificateParams, issuer: Option<&Made>, alg: &'static rcgen::SignatureAlgorithm) -> Made {
    let key = KeyPair::generate_for(alg).unwrap();
    let cert = match issuer {
        Some(i) => p.signed_by(&key, &i.cert, &i.key).unwrap(),
        None => p.self_signed(&key).unwrap(),
    };
    Made { cert, key }
}

fn ca(cn: &str, bc: Bc, issuer: Option<&Made>) -> Made {
    make(params(cn, IsCa::Ca(bc), vec![Ku::KeyCertSign], vec![]), issuer, &rcgen::PKCS_ECDSA_P384_SHA384)
}

fn leaf_params() -> CertificateParams {
    params("leaf", IsCa::ExplicitNoCa, vec![Ku::DigitalSignature], vec![Eku::CodeSigning])
}

fn leaf(p: CertificateParams, issuer: &Made) -> Made {
    make(p, Some(issuer), &rcgen::PKCS_ECDSA_P256_SHA256)
}

fn certs(made: &[&Made]) -> Vec<Certificate> {
    made.iter().map(|m| Certificate::from_der(m.cert.der()).unwrap()).collect()
}

fn check(made: &[&Made], expect: Result<(), ChainError>) {
    let names: Vec<String> = certs(made).iter().map(|c| c.tbs_certificate.subject.to_string()).collect();
    assert_eq!(validate_chain(&certs(made)), expect, "{names:?}");
}

#[test]
fn chains() {
    let root = ca("root", Bc::Unconstrained, None);
    let inter = ca("inter", Bc::Constrained(0), Some(&root));
    let good = leaf(leaf_params(), &inter);
    check(&[&good, &inter, &root], Ok(()));
    check(&[&leaf(leaf_params(), &root), &root], Ok(()));
    // A lone self-signed certificate meets the leaf's requirements instead of a CA's.
    let alone = make(leaf_params(), None, &rcgen::PKCS_ECDSA_P256_SHA256);
    check(&[&alone], Ok(()));
    check(&[&root], Err(ChainError::Leaf("basic constraints say it is a CA")));

    check(&[], Err(ChainError::NoRoot));
    check(&[&good, &inter], Err(ChainError::NoRoot));
    check(&[&good, &root], Err(ChainError::NotIssuedBy { index: 0 }));
    let other = ca("root", Bc::Unconstrained, None);
    check(&[&good, &inter, &other], Err(ChainError::NotIssuedBy { index: 1 }));
    check(&[&good, &root, &inter], Err(ChainError::NotIssuedBy { index: 0 }));
}

#[test]
fn leaf_requirements() {
    let root = ca("root", Bc::Unconstrained, None);
    let row =
        |p: CertificateParams, expect: &'static str| check(&[&leaf(p, &root), &root], Err(ChainError::Leaf(expect)));
    let mut p = leaf_params();
    p.key_usages = vec![];
    row(p, "no key usage extension");
    let mut p = leaf_params();
    p.key_usages = vec![Ku::ContentCommitment];
    row(p, "key usage is not critical with digitalSignature");
    for extra in [Ku::KeyEncipherment, Ku::KeyAgreement, Ku::KeyCertSign, Ku::CrlSign] {
        let mut p = leaf_params();
        p.key_usages = vec![Ku::DigitalSignature, extra];
        row(p, "key usage allows more than signing");
    }
    for eku in [Eku::ServerAuth, Eku::ClientAuth, Eku::EmailProtection, Eku::TimeStamping, Eku::Any] {
        let mut p = leaf_params();
        p.extended_key_usages = vec![Eku::CodeSigning, eku];
        row(p, "extended key usage names a purpose other than code signing");
    }
    let mut p = leaf_params();
    p.is_ca = IsCa::Ca(Bc::Unconstrained);
    row(p, "basic constraints say it is a CA");
    // Basic constraints and EKU are optional.
    let mut p = leaf_params();
    (p.is_ca, p.extended_key_usages) = (IsCa::NoCa, vec![]);
    // (rcgen writes no extension at all, key usage included, unless one of these is asked for.)
    p.use_authority_key_identifier_extension = true;
    check(&[&leaf(p, &root), &root], Ok(()));
    // An ed25519 signing key is none the specification lists.
    let ed = make(leaf_params(), Some(&root), &rcgen::PKCS_ED25519);
    check(&[&ed, &root], Err(ChainError::Key { index: 0, reason: "neither RSA nor EC" }));
}

#[test]
fn ca_requirements() {
    let root = ca("root", Bc::Unconstrained, None);
    let p = params("inter", IsCa::Ca(Bc::Unconstrained), vec![Ku::DigitalSignature], vec![]);
    let no_cert_sign = make(p, Some(&root), &rcgen::PKCS_ECDSA_P256_SHA256);
    let reason = "key usage is not critical with keyCertSign";
    check(&[&leaf(leaf_params(), &no_cert_sign), &no_cert_sign, &root], Err(ChainError::Ca { index: 1, reason }));
    let p = params("inter", IsCa::NoCa, vec![Ku::KeyCertSign], vec![]);
    let not_ca = make(p, Some(&root), &rcgen::PKCS_ECDSA_P256_SHA256);
    let reason = "no basic constraints extension";
    check(&[&leaf(leaf_params(), &not_ca), &not_ca, &root], Err(ChainError::Ca { index: 1, reason }));
    // A root that allows no intermediate, and one that allows one.
    let strict_root = ca("root", Bc::Constrained(0), None);
    let inter = ca("inter", Bc::Constrained(0), Some(&strict_root));
    check(&[&leaf(leaf_params(), &inter), &inter, &strict_root], Err(ChainError::PathLength { index: 2 }));
    check(&[&leaf(leaf_params(), &strict_root), &strict_root], Ok(()));
    let one = ca("root", Bc::Constrained(1), None);
    let inter = ca("inter", Bc::Constrained(0), Some(&one));
    check(&[&leaf(leaf_params(), &inter), &inter, &one], Ok(()));
}

#[test]
fn validity_and_revocation_info() {
    let root = ca("root", Bc::Unconstrained, None);
    let mut p = leaf_params();
    p.not_before = rcgen::date_time_ymd(2030, 1, 1);
    p.not_after = rcgen::date_time_ymd(2030, 1, 31);
    let c = &certs(&[&leaf(p, &root)])[0];
    let jan_1_2030 = 1_893_456_000;
    assert!(!valid_at(c, jan_1_2030 - 1));
    assert!(valid_at(c, jan_1_2030));
    assert!(valid_at(c, jan_1_2030 + 30 * 86_400));
    assert!(!valid_at(c, jan_1_2030 + 30 * 86_400 + 1));

    assert!(!has_revocation_info(&certs(&[&root])[0]));
    let mut p = leaf_params();
    p.crl_distribution_points = vec![CrlDistributionPoint { uris: vec!["http://crl.example/ca.crl".into()] }];
    assert!(has_revocation_info(&certs(&[&leaf(p, &root)])[0]));
}
