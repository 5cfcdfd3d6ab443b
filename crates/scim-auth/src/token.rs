//! Tokens of the built-in server: access tokens, UMA RPTs and permission tickets
//! (all JWTs signed with the key ring), and what the HTTP layer learns about any
//! validated token.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `token_use` claim values: a ticket must never be accepted as an access token.
pub const USE_ACCESS: &str = "access";
pub const USE_RPT: &str = "rpt";
pub const USE_TICKET: &str = "uma_ticket";
/// The one protected resource of UMA mode: the SCIM API.
pub const UMA_RESOURCE_ID: &str = "scim";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    pub resource_id: String,
    pub resource_scopes: Vec<String>,
}

/// Claims of every JWT the built-in server issues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub aud: String,
    pub exp: i64,
    #[serde(default)]
    pub iat: i64,
    #[serde(default)]
    pub jti: String,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub token_use: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<Permission>>,
}

impl Claims {
    pub fn scopes(&self) -> Vec<String> {
        self.scope.split_whitespace().map(str::to_string).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// An access token of the built-in server (client_credentials).
    Access,
    /// A UMA requesting party token of the built-in server.
    Rpt,
    /// A JWT of the configured external issuer, checked against its JWKS.
    ExternalJwt,
    /// A token the external server vouched for through RFC 7662 introspection.
    Introspected,
}

/// What the HTTP layer (and interception scripts) know about the caller's token.
/// Placed in the request extensions by the protection middleware.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub kind: TokenKind,
    pub client_id: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    /// Full scope strings (for an RPT: the scopes of its permissions).
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub token_id: Option<String>,
}
