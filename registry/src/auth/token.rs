//! Bearer tokens: short-lived JWTs (ES256) signed by the server's own key, which is sealed at rest under the
//! key-encryption key like the trust keys; refresh tokens for `docker login`; and tokens of configured external
//! issuers, checked against their published keys (a JWKS file). Signing and verification are `jsonwebtoken`'s.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePrivateKey;
use serde::{Deserialize, Serialize};
use wharf_format::seal::Kek;
use wharf_storage::{Metadata, UnixTime};

use super::scope::{Actions, Resource, Scope};

const KEY_SETTING: &str = "auth.token_key";
const KEY_AAD: &[u8] = b"wharf auth token signing key v1";
const REFRESH: &str = "refresh";

/// One `access` claim entry, as the Docker token specification spells it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaim {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: serde_json::Value,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<AccessClaim>,
    /// `refresh` for refresh tokens; absent for access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// A refresh token's fingerprint of the account's secret: a password change ends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sv: Option<String>,
}

impl Claims {
    /// The access the claims grant.
    pub fn granted(&self) -> Vec<Scope> {
        self.access
            .iter()
            .filter_map(|a| {
                let resource = match (a.kind.as_str(), a.name.as_str()) {
                    ("repository", n) => Resource::Repository(n.to_owned()),
                    ("registry", "catalog") => Resource::Catalog,
                    _ => return None,
                };
                Some(Scope { resource, actions: Actions::parse_requested(&a.actions.join(",")) })
            })
            .collect()
    }

    pub fn is_refresh(&self) -> bool {
        self.typ.as_deref() == Some(REFRESH)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token signing key: {0}")]
    Key(String),
}

struct External {
    issuer: String,
    keys: JwkSet,
}

/// Who signs and whose signatures are accepted.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    issuer: String,
    service: String,
    external: Vec<External>,
}

/// An external issuer whose tokens are accepted: its `iss` and its public keys.
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    pub issuer: String,
    pub jwks: String,
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    hex::encode(b)
}

impl TokenKeys {
    /// Loads the signing key (creating and sealing it on first start, once for every replica).
    pub async fn load(
        meta: &Metadata,
        kek: &Kek,
        issuer: &str,
        service: &str,
        trusted: &[TrustedIssuer],
    ) -> Result<TokenKeys, TokenError> {
        let fresh = SigningKey::random(&mut rand_core::OsRng);
        let der = fresh.to_pkcs8_der().map_err(|e| TokenError::Key(e.to_string()))?;
        let sealed = kek.seal(der.as_bytes(), KEY_AAD);
        let stored = meta.settings().init(KEY_SETTING, &sealed).await.map_err(|e| TokenError::Key(e.to_string()))?;
        let der = kek.open(&stored, KEY_AAD).map_err(|_| {
            TokenError::Key(
                "cannot unseal the token signing key: is this the key-encryption key it was made with?".into(),
            )
        })?;
        TokenKeys::from_pkcs8_der(&der, issuer, service, trusted)
    }

    /// The keys from the signing key's PKCS#8 DER (what [`TokenKeys::load`] unseals).
    pub fn from_pkcs8_der(
        der: &[u8],
        issuer: &str,
        service: &str,
        trusted: &[TrustedIssuer],
    ) -> Result<TokenKeys, TokenError> {
        let key = <SigningKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_der(der)
            .map_err(|e| TokenError::Key(e.to_string()))?;
        let point = key.verifying_key().to_encoded_point(false);
        let (x, y) = (
            point.x().ok_or_else(|| TokenError::Key("x".into()))?,
            point.y().ok_or_else(|| TokenError::Key("y".into()))?,
        );
        let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
        let decoding = DecodingKey::from_ec_components(&b64(x), &b64(y)).map_err(|e| TokenError::Key(e.to_string()))?;
        let kid = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(point.as_bytes())[..12]);
        let mut external = Vec::new();
        for t in trusted {
            let keys: JwkSet = serde_json::from_str(&t.jwks)
                .map_err(|e| TokenError::Key(format!("JWKS of issuer {:?}: {e}", t.issuer)))?;
            external.push(External { issuer: t.issuer.clone(), keys });
        }
        Ok(TokenKeys {
            encoding: EncodingKey::from_ec_der(der),
            decoding,
            kid,
            issuer: issuer.into(),
            service: service.into(),
            external,
        })
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| TokenError::Key(e.to_string()))
    }

    fn claims(&self, sub: &str, now: UnixTime, lifetime: i64) -> Claims {
        Claims {
            iss: self.issuer.clone(),
            sub: sub.into(),
            aud: self.service.clone().into(),
            exp: now + lifetime,
            nbf: now - 1,
            iat: now,
            jti: random_hex(16),
            access: Vec::new(),
            typ: None,
            sv: None,
        }
    }

    /// An access token for `sub` with `access`.
    pub fn issue(&self, sub: &str, access: &[Scope], now: UnixTime, lifetime: i64) -> Result<String, TokenError> {
        let mut c = self.claims(sub, now, lifetime);
        c.access = access
            .iter()
            .map(|s| match &s.resource {
                Resource::Repository(n) => AccessClaim {
                    kind: "repository".into(),
                    name: n.clone(),
                    actions: s.actions.names().into_iter().map(String::from).collect(),
                },
                Resource::Catalog => {
                    AccessClaim { kind: "registry".into(), name: "catalog".into(), actions: vec!["*".into()] }
                }
            })
            .collect();
        self.sign(&c)
    }

    /// A refresh token for `sub`, valid while the account's secret is unchanged.
    pub fn issue_refresh(
        &self,
        sub: &str,
        secret_hash: &str,
        now: UnixTime,
        lifetime: i64,
    ) -> Result<String, TokenError> {
        let mut c = self.claims(sub, now, lifetime);
        c.typ = Some(REFRESH.into());
        c.sv = Some(secret_version(secret_hash));
        self.sign(&c)
    }

    /// Checks signature, `exp`, `nbf`, `aud` and `iss`. The second value says whether an external issuer signed.
    pub fn verify(&self, token: &str) -> Result<(Claims, bool), TokenError> {
        let bad = |e: jsonwebtoken::errors::Error| TokenError::Invalid(e.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(bad)?;
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[&self.service]);
        v.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
        v.leeway = 5;
        let local = header.kid.as_deref().is_none_or(|k| k == self.kid);
        if local && header.alg == Algorithm::ES256 {
            v.set_issuer(&[&self.issuer]);
            if let Ok(d) = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v) {
                return Ok((d.claims, false));
            }
        }
        for ext in &self.external {
            let Some(jwk) = ext.keys.keys.iter().find(|k| header.kid.is_none() || k.common.key_id == header.kid) else {
                continue;
            };
            if !matches!(
                header.alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
                    | Algorithm::ES256
                    | Algorithm::ES384
                    | Algorithm::EdDSA
            ) {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
            let mut v = v.clone();
            v.algorithms = vec![header.alg];
            v.set_issuer(&[&ext.issuer]);
            if let Ok(d) = jsonwebtoken::decode::<Claims>(token, &key, &v) {
                return Ok((d.claims, true));
            }
        }
        // The local key's own error is the informative one.
        v.set_issuer(&[&self.issuer]);
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &v) {
            Ok(_) => Err(TokenError::Invalid("unexpected algorithm".into())),
            Err(e) => Err(bad(e)),
        }
    }
}

/// A short fingerprint of a secret hash (itself salted), carried in refresh tokens.
pub fn secret_version(secret_hash: &str) -> String {
    hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(secret_hash.as_bytes())[..8])
}
