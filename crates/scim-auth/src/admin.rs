//! Client administration shared by `scimd clients …` and dynamic registration.

use crate::scope::{ScopePolicy, SCOPE_NAMES};
use crate::secrets::{generate_secret, SecretHasher};
use crate::AuthError;
use chrono::{DateTime, Utc};
use scim_store::clients::{ClientRecord, ClientStore};
use serde_json::{json, Value};

pub const ORIGIN_CLI: &str = "cli";
pub const ORIGIN_DYNAMIC: &str = "dynamic";

/// Parse a scope list given by an operator: space- or comma-separated; short
/// names (`users.read`) get the prefix, `all` means every SCIM scope, other
/// strings with `:` or `/` are taken as they are.
pub fn parse_scopes(policy: &ScopePolicy, input: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    for item in input
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
    {
        if item.eq_ignore_ascii_case("all") {
            policy.all().into_iter().for_each(&mut push);
        } else if SCOPE_NAMES.contains(&item) {
            push(policy.full(item));
        } else if item.contains(':') || item.contains('/') {
            push(item.to_string());
        } else {
            return Err(format!(
                "unknown scope '{item}' (known: {}, or all)",
                SCOPE_NAMES.join(", ")
            ));
        }
    }
    Ok(out)
}

/// Register a client; returns the record and its secret (the only time the
/// secret exists in clear).
pub fn create_client(
    store: &dyn ClientStore,
    hasher: &SecretHasher,
    name: &str,
    scopes: Vec<String>,
    now: DateTime<Utc>,
    expires: Option<DateTime<Utc>>,
    origin: &str,
) -> Result<(ClientRecord, String), AuthError> {
    let secret = generate_secret()?;
    let record = ClientRecord {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_string(),
        secret_hash: hasher.hash(&secret),
        scopes,
        created: now,
        expires,
        disabled: false,
        locked_until: None,
        origin: origin.to_string(),
    };
    store.create_client(&record)?;
    Ok((record, secret))
}

/// A new secret for a client (the old one stops working at once).
pub fn rotate_secret(
    store: &dyn ClientStore,
    hasher: &SecretHasher,
    id: &str,
) -> Result<String, AuthError> {
    let secret = generate_secret()?;
    store.rotate_secret(id, &hasher.hash(&secret))?;
    Ok(secret)
}

/// What an operator sees of a client (never the secret or its hash).
pub fn client_json(c: &ClientRecord, now: DateTime<Utc>) -> Value {
    let status = if c.disabled {
        "disabled"
    } else if c.expires.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    };
    json!({
        "client_id": c.id,
        "name": c.name,
        "scopes": c.scopes,
        "status": status,
        "created": c.created.to_rfc3339(),
        "expires": c.expires.map(|e| e.to_rfc3339()),
        "origin": c.origin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_expand_and_reject_unknown_short_names() {
        let p = ScopePolicy::default();
        assert_eq!(
            parse_scopes(&p, "users.read, https://gluu.org/scim/bulk users.read").expect("ok"),
            vec![
                "https://gluu.org/scim/users.read",
                "https://gluu.org/scim/bulk"
            ]
        );
        assert_eq!(
            parse_scopes(&p, "all").expect("ok").len(),
            SCOPE_NAMES.len()
        );
        assert!(parse_scopes(&p, "users.reed").is_err());
        assert_eq!(parse_scopes(&p, "").expect("ok"), Vec::<String>::new());
    }
}
