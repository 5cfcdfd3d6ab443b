//! API protection for scimd: a built-in OAuth 2.0 authorization server (client
//! registry, client_credentials, JWT access tokens, JWKS, discovery, RFC 7591
//! registration, UMA 2.0 tickets and RPTs), validation of tokens from an external
//! authorization server (JWKS or RFC 7662 introspection), and the scope policy the
//! HTTP layer enforces through [`guard::protect`].
//!
//! Secrets and tokens are never logged.

pub mod admin;
pub mod auth;
pub mod endpoints;
pub mod external;
pub mod guard;
pub mod keys;
pub mod limits;
pub mod scope;
pub mod secrets;
pub mod token;

#[cfg(test)]
mod tests;

pub use auth::Auth;
pub use endpoints::routes;
pub use guard::{protect, with_client, Caller, ClientId, Guard};
pub use scope::{classify, required_scope, Access, ScopePolicy};
pub use token::{TokenInfo, TokenKind};

use scim_store::StoreError;
use std::time::Duration;

/// How the SCIM API is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Bearer tokens with a scope per operation (Gluu's scope names).
    #[default]
    Oauth,
    /// UMA 2.0: a request without a suitable RPT gets a permission ticket.
    Uma,
    /// Any valid token; scopes are not checked.
    Test,
    /// No checks at all.
    Bypass,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "oauth" => Ok(Mode::Oauth),
            "uma" => Ok(Mode::Uma),
            "test" => Ok(Mode::Test),
            "bypass" => Ok(Mode::Bypass),
            other => Err(format!(
                "unknown protection mode '{other}' (expected oauth, uma, test or bypass)"
            )),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Oauth => "oauth",
            Mode::Uma => "uma",
            Mode::Test => "test",
            Mode::Bypass => "bypass",
        })
    }
}

/// A trusted external authorization server.
#[derive(Debug, Clone, Default)]
pub struct ExternalConfig {
    /// `iss` of its tokens.
    pub issuer: Option<String>,
    /// Its JWKS, for JWT access tokens.
    pub jwks_url: Option<String>,
    /// RFC 7662 introspection, for opaque tokens.
    pub introspection_url: Option<String>,
    pub introspection_client_id: Option<String>,
    pub introspection_client_secret: Option<String>,
}

impl ExternalConfig {
    pub fn is_configured(&self) -> bool {
        self.jwks_url.is_some() || self.introspection_url.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub mode: Mode,
    /// Public base URL of this server: `iss` of its tokens and the base of the
    /// OAuth endpoints it advertises.
    pub issuer: String,
    /// `aud` of built-in tokens and the audience required of external tokens
    /// (none required when unset; built-in tokens then carry the issuer).
    pub audience: Option<String>,
    pub token_lifetime: Duration,
    pub ticket_lifetime: Duration,
    pub scope_prefix: String,
    pub dynamic_registration: bool,
    /// Lifetime of clients registered through RFC 7591.
    pub dynamic_client_lifetime: Duration,
    pub external: ExternalConfig,
    /// Growing delays after failed client authentication, per (client id, address).
    pub throttle: limits::ThrottlePolicy,
    /// Token requests per source address (None: no limit).
    pub token_rate_per_ip: Option<limits::Rate>,
    /// API requests per client id (None: no limit).
    pub client_rate: Option<limits::Rate>,
    /// A new signing key is made when the active one is older than this.
    pub key_rotation: Duration,
    /// How long a validator trusts its cached view of a client (disable/delete
    /// take effect within this).
    pub client_cache_ttl: Duration,
    /// Token requests per client id (in this process).
    pub token_rate_per_client: limits::Rate,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: Mode::Oauth,
            issuer: "http://127.0.0.1:8080".into(),
            audience: None,
            token_lifetime: Duration::from_secs(300),
            ticket_lifetime: Duration::from_secs(300),
            scope_prefix: scope::DEFAULT_SCOPE_PREFIX.into(),
            dynamic_registration: false,
            dynamic_client_lifetime: Duration::from_secs(86_400),
            external: ExternalConfig::default(),
            throttle: limits::ThrottlePolicy::default(),
            token_rate_per_ip: limits::Rate::per_second(50),
            client_rate: limits::Rate::per_second(100_000),
            key_rotation: Duration::from_secs(30 * 86_400),
            client_cache_ttl: Duration::from_secs(2),
            token_rate_per_client: limits::Rate {
                per_second: 10.0,
                burst: 100.0,
            },
        }
    }
}

/// What setting up or running the authorization server can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("client store: {0}")]
    Store(#[from] StoreError),
    #[error("crypto: {0}")]
    Crypto(String),
    #[error("configuration: {0}")]
    Config(String),
}

pub(crate) fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
