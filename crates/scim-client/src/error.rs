//! The one error type of the crate.

use serde_json::Value;

/// A `Result` whose error is [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong talking to a SCIM server.
///
/// `Display` gives one line, e.g. `409 uniqueness: userName "bjensen" is already taken`.
/// No variant ever holds a secret (tokens, client secrets, passwords).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a SCIM error (or any non-2xx status).
    #[error("{}", scim_line(*.status, .scim_type.as_deref(), .detail))]
    Scim {
        /// The HTTP status (the body's `status` when it has one).
        status: u16,
        /// The RFC 7644 §3.12 `scimType`, when the server gave one.
        scim_type: Option<String>,
        /// The server's `detail`, or the start of a non-SCIM body.
        detail: String,
    },
    /// Could not get or use credentials: the token endpoint refused, UMA failed,
    /// the API rejected a freshly obtained token.
    #[error("authentication failed{}: {detail}", .status.map(|s| format!(" ({s})")).unwrap_or_default())]
    Auth {
        /// The HTTP status of the refusal, when there was one.
        status: Option<u16>,
        /// What went wrong (never a secret).
        detail: String,
    },
    /// Connection, TLS, timeout, retry budget exhausted.
    #[error("transport: {0}")]
    Transport(String),
    /// A body that is not what SCIM says it should be.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// Bad builder or configuration input (bad URL, bad header, missing secret...).
    #[error("configuration: {0}")]
    Config(String),
}

fn scim_line(status: u16, scim_type: Option<&str>, detail: &str) -> String {
    match scim_type {
        Some(t) => format!("{status} {t}: {detail}"),
        None => format!("{status}: {detail}"),
    }
}

impl Error {
    /// The HTTP status behind this error, if it came from a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Scim { status, .. } => Some(*status),
            Error::Auth { status, .. } => *status,
            _ => None,
        }
    }

    /// The SCIM `scimType` (e.g. `uniqueness`, `invalidFilter`), if any.
    pub fn scim_type(&self) -> Option<&str> {
        match self {
            Error::Scim { scim_type, .. } => scim_type.as_deref(),
            _ => None,
        }
    }

    /// Decode an error response: a SCIM error body when there is one, else the
    /// status with the start of whatever the body was.
    pub fn from_response(status: u16, body: &[u8]) -> Error {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(name))
                .and_then(Value::as_str)
                .map(one_line)
        };
        let scim_type = field("scimType");
        let detail = field("detail")
            .or_else(|| field("error_description"))
            .or_else(|| field("error"))
            .unwrap_or_else(|| fallback_detail(status, body));
        Error::Scim {
            status,
            scim_type,
            detail,
        }
    }

    /// Decode a refusal from an OAuth token endpoint (RFC 6749 §5.2 body).
    pub(crate) fn from_token_endpoint(status: u16, body: &[u8]) -> Error {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let get = |k: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(k))
                .and_then(Value::as_str)
                .map(one_line)
        };
        let detail = match (get("error"), get("error_description")) {
            (Some(e), Some(d)) => format!("token endpoint: {e}: {d}"),
            (Some(e), None) => format!("token endpoint: {e}"),
            _ => format!("token endpoint: {}", fallback_detail(status, body)),
        };
        Error::Auth {
            status: Some(status),
            detail,
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The start of a non-SCIM body, or the status's reason when it is empty.
fn fallback_detail(status: u16, body: &[u8]) -> String {
    let text = one_line(&String::from_utf8_lossy(body));
    if text.is_empty() {
        return reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("error")
            .to_string();
    }
    let mut cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Error {
        // reqwest's Display names the URL but never headers, so no token leaks.
        Error::Transport(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scim_error_body_is_decoded() {
        let body = br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status":"409","scimType":"uniqueness","detail":"userName \"bjensen\" is already taken"}"#;
        let e = Error::from_response(409, body);
        assert_eq!(e.status(), Some(409));
        assert_eq!(e.scim_type(), Some("uniqueness"));
        assert_eq!(
            e.to_string(),
            "409 uniqueness: userName \"bjensen\" is already taken"
        );
    }

    #[test]
    fn non_scim_bodies_still_give_one_line() {
        let e = Error::from_response(502, b"<html>\n<body>Bad gateway</body>\n</html>");
        assert_eq!(
            e.to_string(),
            "502: <html> <body>Bad gateway</body> </html>"
        );
        assert_eq!(e.scim_type(), None);
        let e = Error::from_response(404, b"");
        assert_eq!(e.to_string(), "404: Not Found");
        let long = "x".repeat(500);
        let e = Error::from_response(500, long.as_bytes());
        assert!(e.to_string().chars().count() < 210);
    }

    #[test]
    fn token_endpoint_refusal_is_an_auth_error() {
        let e = Error::from_token_endpoint(
            401,
            br#"{"error":"invalid_client","error_description":"bad credentials"}"#,
        );
        assert!(matches!(
            e,
            Error::Auth {
                status: Some(401),
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "authentication failed (401): token endpoint: invalid_client: bad credentials"
        );
    }
}
