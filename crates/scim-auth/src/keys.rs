//! Signing keys of the built-in authorization server. Keys live in the database so
//! every process on it signs and verifies alike. The newest active key signs;
//! retired keys stay published (and accepted) until every token they signed has
//! expired, then they are pruned.

use crate::AuthError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey};
use ring::signature::{Ed25519KeyPair, KeyPair};
use scim_store::clients::{ClientStore, SigningKeyRecord};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub const SIGNING_ALG: &str = "EdDSA";

/// A new Ed25519 key; kid = RFC 7638 thumbprint of its public JWK.
pub fn generate_key(now: DateTime<Utc>) -> Result<SigningKeyRecord, AuthError> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| AuthError::Crypto("cannot generate an Ed25519 key".into()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| AuthError::Crypto("generated key does not parse".into()))?;
    let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    // RFC 7638: members in lexicographic order, no whitespace.
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    let jwk = json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": x,
        "kid": kid,
        "use": "sig",
        "alg": SIGNING_ALG,
    });
    Ok(SigningKeyRecord {
        kid,
        alg: SIGNING_ALG.into(),
        private_key: pkcs8.as_ref().to_vec(),
        public_jwk: jwk.to_string(),
        created: now,
        retired: None,
    })
}

/// Keys as loaded from the store, ready to sign and verify.
#[derive(Clone, Default)]
pub struct KeySet {
    signer: Option<(String, EncodingKey)>,
    verifiers: HashMap<String, DecodingKey>,
    jwks: Value,
}

impl KeySet {
    /// Build from stored keys (newest first). Keys that do not parse are skipped
    /// (and logged) rather than taking the server down.
    pub fn from_records(records: &[SigningKeyRecord]) -> KeySet {
        let mut set = KeySet::default();
        let mut published = Vec::new();
        for r in records {
            if r.alg != SIGNING_ALG {
                tracing::warn!(kid = %r.kid, alg = %r.alg, "skipping signing key with unsupported algorithm");
                continue;
            }
            let jwk: Value = match serde_json::from_str(&r.public_jwk) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(kid = %r.kid, error = %e, "skipping signing key with a bad public JWK");
                    continue;
                }
            };
            let decoding = match jwk
                .get("x")
                .and_then(Value::as_str)
                .map(DecodingKey::from_ed_components)
            {
                Some(Ok(k)) => k,
                _ => {
                    tracing::warn!(kid = %r.kid, "skipping signing key without a usable public key");
                    continue;
                }
            };
            if r.retired.is_none() && set.signer.is_none() {
                set.signer = Some((r.kid.clone(), EncodingKey::from_ed_der(&r.private_key)));
            }
            set.verifiers.insert(r.kid.clone(), decoding);
            published.push(jwk);
        }
        set.jwks = json!({ "keys": published });
        set
    }

    pub fn signer(&self) -> Option<(&str, &EncodingKey)> {
        self.signer.as_ref().map(|(k, e)| (k.as_str(), e))
    }

    pub fn verifier(&self, kid: &str) -> Option<&DecodingKey> {
        self.verifiers.get(kid)
    }

    pub fn jwks(&self) -> &Value {
        &self.jwks
    }
}

/// Bring the stored keys in line with policy: make sure one active key exists and
/// is younger than `rotate_after`; prune retired keys older than `keep_retired`.
/// Returns the keys after the changes, newest first.
pub fn maintain_keys(
    store: &dyn ClientStore,
    now: DateTime<Utc>,
    rotate_after: chrono::Duration,
    keep_retired: chrono::Duration,
) -> Result<Vec<SigningKeyRecord>, AuthError> {
    let keys = store.signing_keys()?;
    let newest_active = keys.iter().find(|k| k.retired.is_none());
    let needs_new = match newest_active {
        None => true,
        Some(k) => now - k.created > rotate_after,
    };
    if needs_new {
        rotate_keys(store, now)?;
    }
    for k in store.signing_keys()? {
        if k.retired.is_some_and(|r| now - r > keep_retired) {
            tracing::info!(kid = %k.kid, "pruning retired signing key");
            store.delete_signing_key(&k.kid)?;
        }
    }
    Ok(store.signing_keys()?)
}

/// Add a new signing key and retire every other active one. Tokens signed by the
/// retired keys keep verifying until they expire.
pub fn rotate_keys(
    store: &dyn ClientStore,
    now: DateTime<Utc>,
) -> Result<SigningKeyRecord, AuthError> {
    let key = generate_key(now)?;
    store.add_signing_key(&key)?;
    store.retire_signing_keys_except(&key.kid, now)?;
    tracing::info!(kid = %key.kid, "new signing key in use");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, encode, Algorithm, Header, Validation};

    #[test]
    fn generated_keys_sign_and_verify() {
        let now = Utc::now();
        let a = generate_key(now).expect("key");
        let mut b = generate_key(now - chrono::Duration::seconds(5)).expect("key");
        b.retired = Some(now);
        assert_ne!(a.kid, b.kid);
        let set = KeySet::from_records(&[a.clone(), b.clone()]);
        let (kid, enc) = set.signer().expect("signer");
        assert_eq!(kid, a.kid);
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_string());
        let token = encode(&header, &json!({"x": 1}), enc).expect("encode");
        let mut v = Validation::new(Algorithm::EdDSA);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let ok = decode::<Value>(&token, set.verifier(&a.kid).expect("a"), &v);
        assert!(ok.is_ok());
        let wrong = decode::<Value>(&token, set.verifier(&b.kid).expect("b"), &v);
        assert!(wrong.is_err());
        assert_eq!(set.jwks()["keys"].as_array().map(Vec::len), Some(2));
        assert_eq!(set.jwks()["keys"][0]["kty"], "OKP");
        assert!(set.jwks()["keys"][0].get("d").is_none());
    }
}
