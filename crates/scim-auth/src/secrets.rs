//! Client secrets: random, shown once, stored only as an HMAC-SHA256 keyed hash
//! (the key is a server secret kept in the database, so every process on one
//! database verifies the same way), compared in constant time.

use crate::AuthError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use scim_store::clients::ClientStore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Name of the HMAC key in the server-secret table.
pub const HMAC_KEY_NAME: &str = "client-secret-hmac-sha256";
const HASH_PREFIX: &str = "hmac-sha256:";
/// Bytes of randomness in a generated client secret.
pub const SECRET_BYTES: usize = 32;

pub fn random_bytes(n: usize) -> Result<Vec<u8>, AuthError> {
    let mut buf = vec![0u8; n];
    OsRng
        .try_fill_bytes(&mut buf)
        .map_err(|e| AuthError::Crypto(format!("no randomness available: {e}")))?;
    Ok(buf)
}

/// A new client secret: 32 random bytes, base64url without padding (43 characters).
pub fn generate_secret() -> Result<String, AuthError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes(SECRET_BYTES)?))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Hashes and verifies client secrets with the server's HMAC key.
#[derive(Clone)]
pub struct SecretHasher {
    key: Vec<u8>,
}

impl SecretHasher {
    pub fn new(key: Vec<u8>) -> Self {
        SecretHasher { key }
    }

    /// The hasher with the database's key, created on first use.
    pub fn load(store: &dyn ClientStore) -> Result<Self, AuthError> {
        let candidate = random_bytes(32)?;
        let key = store.server_secret(HMAC_KEY_NAME, &candidate)?;
        if key.len() < 32 {
            return Err(AuthError::Config(
                "the stored client-secret key is too short".into(),
            ));
        }
        Ok(SecretHasher { key })
    }

    fn mac(&self, secret: &str) -> Vec<u8> {
        // HMAC accepts keys of any length, so this cannot fail.
        match <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            Ok(mut m) => {
                m.update(secret.as_bytes());
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }

    pub fn hash(&self, secret: &str) -> String {
        format!("{HASH_PREFIX}{}", hex(&self.mac(secret)))
    }

    /// Constant-time comparison of the presented secret's hash with the stored one.
    pub fn verify(&self, secret: &str, stored: &str) -> bool {
        let computed = self.hash(secret);
        computed.len() == stored.len() && bool::from(computed.as_bytes().ct_eq(stored.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_verify_only_themselves() {
        let a = generate_secret().expect("secret");
        let b = generate_secret().expect("secret");
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        let h = SecretHasher::new(vec![7; 32]);
        let stored = h.hash(&a);
        assert!(stored.starts_with("hmac-sha256:"));
        assert!(!stored.contains(&a));
        assert!(h.verify(&a, &stored));
        assert!(!h.verify(&b, &stored));
        assert!(!h.verify(&a, "hmac-sha256:00"));
        // A different server key gives a different hash.
        assert!(!SecretHasher::new(vec![8; 32]).verify(&a, &stored));
    }

    #[test]
    fn hex_encodes() {
        assert_eq!(hex(&[0, 15, 16, 255]), "000f10ff");
    }
}
