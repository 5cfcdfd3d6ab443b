//! The one error type of the protocol layer. It carries exactly what a SCIM error
//! body needs (RFC 7644 §3.12); the HTTP edge only serialises it.

use serde_json::{json, Value};
use std::fmt;

/// `scimType` values of RFC 7644 §3.12 (plus `sensitive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
    InvalidVers,
    Sensitive,
    /// RFC 9865: a cursor that is malformed or belongs to another search.
    InvalidCursor,
}

impl ScimType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
            ScimType::InvalidCursor => "invalidCursor",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<ScimType>,
    pub detail: String,
    /// What went wrong inside, for the log line of a 500; never sent to a client.
    pub cause: Option<String>,
    /// A complete answer that replaces the operation (an interception script's
    /// response): this body and these headers are sent with `status` as they are.
    pub reply: Option<Box<Reply>>,
}

/// A response decided outside the protocol rules (see `ScimError::reply`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

pub type ScimResult<T> = Result<T, ScimError>;

impl ScimError {
    pub fn new(status: u16, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
            cause: None,
            reply: None,
        }
    }
    fn bad(t: ScimType, detail: impl Into<String>) -> Self {
        Self::new(400, Some(t), detail)
    }
    pub fn invalid_filter(d: impl Into<String>) -> Self {
        Self::bad(ScimType::InvalidFilter, d)
    }
    pub fn invalid_syntax(d: impl Into<String>) -> Self {
        Self::bad(ScimType::InvalidSyntax, d)
    }
    pub fn invalid_value(d: impl Into<String>) -> Self {
        Self::bad(ScimType::InvalidValue, d)
    }
    pub fn invalid_path(d: impl Into<String>) -> Self {
        Self::bad(ScimType::InvalidPath, d)
    }
    pub fn no_target(d: impl Into<String>) -> Self {
        Self::bad(ScimType::NoTarget, d)
    }
    pub fn mutability(d: impl Into<String>) -> Self {
        Self::bad(ScimType::Mutability, d)
    }
    pub fn invalid_cursor(d: impl Into<String>) -> Self {
        Self::bad(ScimType::InvalidCursor, d)
    }
    pub fn too_many(d: impl Into<String>) -> Self {
        Self::bad(ScimType::TooMany, d)
    }
    pub fn uniqueness(d: impl Into<String>) -> Self {
        Self::new(409, Some(ScimType::Uniqueness), d)
    }
    pub fn not_found(d: impl Into<String>) -> Self {
        Self::new(404, None, d)
    }
    pub fn bad_request(d: impl Into<String>) -> Self {
        Self::new(400, None, d)
    }
    pub fn conflict(d: impl Into<String>) -> Self {
        Self::new(409, None, d)
    }
    pub fn precondition_failed(d: impl Into<String>) -> Self {
        Self::new(412, None, d)
    }
    pub fn payload_too_large(d: impl Into<String>) -> Self {
        Self::new(413, None, d)
    }
    pub fn unauthorized(d: impl Into<String>) -> Self {
        Self::new(401, None, d)
    }
    pub fn forbidden(d: impl Into<String>) -> Self {
        Self::new(403, None, d)
    }
    pub fn method_not_allowed(d: impl Into<String>) -> Self {
        Self::new(405, None, d)
    }
    pub fn gone(d: impl Into<String>) -> Self {
        Self::new(410, None, d)
    }
    pub fn unsupported_media_type(d: impl Into<String>) -> Self {
        Self::new(415, None, d)
    }
    pub fn internal(d: impl Into<String>) -> Self {
        Self::new(500, None, d)
    }
    /// A 500 whose `detail` the client sees and whose `cause` only the log does.
    pub fn internal_because(d: impl Into<String>, cause: impl fmt::Display) -> Self {
        ScimError {
            cause: Some(cause.to_string()),
            ..Self::internal(d)
        }
    }

    /// An answer that replaces the operation: `status`, `body` and `headers` as given.
    pub fn replied(status: u16, body: Value, headers: Vec<(String, String)>) -> Self {
        ScimError {
            reply: Some(Box::new(Reply { body, headers })),
            ..Self::new(status, None, "answered by an interception script")
        }
    }

    /// The SCIM error body (or the replacing answer's body); `status` is a string
    /// as RFC 7644 §3.12 shows.
    pub fn to_json(&self) -> Value {
        if let Some(r) = &self.reply {
            return r.body.clone();
        }
        let mut body = json!({
            "schemas": [crate::messages::ERROR],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = Value::String(t.as_str().to_string());
        }
        body
    }
}

impl fmt::Display for ScimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scim_type {
            Some(t) => write!(f, "{} {}: {}", self.status, t.as_str(), self.detail),
            None => write!(f, "{}: {}", self.status, self.detail),
        }
    }
}

impl std::error::Error for ScimError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_string_status_and_scim_type() {
        let body = ScimError::uniqueness("userName taken").to_json();
        assert_eq!(body["status"], "409");
        assert_eq!(body["scimType"], "uniqueness");
        assert_eq!(body["schemas"][0], crate::messages::ERROR);
        assert!(ScimError::not_found("x")
            .to_json()
            .get("scimType")
            .is_none());
    }
}
