//! The OAuth client registry and the authorization server's signing keys, kept in
//! the same database as the resources so that every scimd process on one database
//! sees the same clients, the same keys and the same lock-outs.
//!
//! The store never sees a clear-text client secret: callers hand it a keyed hash.

use crate::StoreResult;
use chrono::{DateTime, Utc};

/// A registered client as stored (and as `scimd export` writes it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientRecord {
    pub id: String,
    pub name: String,
    /// Keyed hash of the secret (the caller decides the scheme).
    pub secret_hash: String,
    pub scopes: Vec<String>,
    pub created: DateTime<Utc>,
    /// After this instant the client can no longer obtain or use tokens.
    pub expires: Option<DateTime<Utc>>,
    pub disabled: bool,
    /// Set after repeated bad secrets; token requests fail until then.
    pub locked_until: Option<DateTime<Utc>>,
    /// How the client came to be: `cli` or `dynamic` (RFC 7591 registration).
    pub origin: String,
}

/// A signing key of the built-in authorization server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: String,
    /// PKCS#8 DER of the private key.
    pub private_key: Vec<u8>,
    /// The public key as a JWK (JSON text), as published at the JWKS endpoint.
    pub public_jwk: String,
    pub created: DateTime<Utc>,
    /// When a newer key took over signing; the key still verifies until pruned.
    pub retired: Option<DateTime<Utc>>,
}

/// Storage the authorization server needs; one implementation per backend.
pub trait ClientStore: Send + Sync {
    /// Fails with `Uniqueness` when the id is taken.
    fn create_client(&self, client: &ClientRecord) -> StoreResult<()>;
    fn get_client(&self, id: &str) -> StoreResult<Option<ClientRecord>>;
    fn list_clients(&self) -> StoreResult<Vec<ClientRecord>>;
    /// `NotFound` when there is no such client.
    fn set_client_disabled(&self, id: &str, disabled: bool) -> StoreResult<()>;
    /// `NotFound` when there is no such client.
    fn delete_client(&self, id: &str) -> StoreResult<()>;
    /// Replace the secret hash.
    fn rotate_secret(&self, id: &str, secret_hash: &str) -> StoreResult<()>;
    /// Mark the UMA permission ticket `jti` (valid until `expires`) as used:
    /// true the first time, false ever after, in every process on the database.
    fn redeem_ticket(&self, jti: &str, expires: DateTime<Utc>) -> StoreResult<bool>;
    /// Delete dynamically registered clients that expired before `now` (and the
    /// record of tickets that expired).
    fn delete_expired_dynamic_clients(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Every signing key, newest first.
    fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    fn add_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<()>;
    /// Mark every key other than `keep_kid` that is still active as retired at `at`.
    fn retire_signing_keys_except(&self, keep_kid: &str, at: DateTime<Utc>) -> StoreResult<u64>;
    fn delete_signing_key(&self, kid: &str) -> StoreResult<()>;

    /// The named server secret: `candidate` is stored when none exists yet, and the
    /// stored value is returned (so concurrent first starts agree on one value).
    fn server_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>>;
}
