//! The built-in authorization server's HTTP endpoints: token (client_credentials
//! and the UMA grant), JWKS, discovery metadata, and optional RFC 7591 dynamic
//! client registration. Errors follow RFC 6749 §5.2.

use crate::admin::{create_client, ORIGIN_DYNAMIC};
use crate::auth::{Auth, ClientAuthFailure};
use crate::keys::SIGNING_ALG;
use crate::token::{Permission, UMA_RESOURCE_ID};
use crate::{to_chrono, Mode};
use axum::body::Bytes;
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use std::sync::Arc;

pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
pub const GRANT_UMA_TICKET: &str = "urn:ietf:params:oauth:grant-type:uma-ticket";
pub const AUTH_METHODS: [&str; 2] = ["client_secret_basic", "client_secret_post"];

type AuthState = State<Arc<Auth>>;

/// Routes of the authorization server, at the root of the site. Gluu's paths
/// (`/oxauth/restv1/…`) are aliases.
pub fn routes<S: Clone + Send + Sync + 'static>(auth: Arc<Auth>) -> Router<S> {
    let mut r = Router::new()
        .route("/oauth/token", post(token))
        .route("/oxauth/restv1/token", post(token))
        .route("/oauth/jwks", get(jwks))
        .route("/oxauth/restv1/jwks", get(jwks))
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth_metadata),
        )
        .route("/.well-known/uma2-configuration", get(uma2_configuration));
    if auth.config().dynamic_registration {
        r = r
            .route("/oauth/register", post(register))
            .route("/oxauth/restv1/register", post(register));
    }
    r.with_state(auth)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// An RFC 6749 §5.2 error.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn invalid_request(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// 401 invalid_client, with `WWW-Authenticate: Basic` (every 401 names a
/// scheme; Basic is how clients authenticate here, whichever way this one did).
fn invalid_client() -> Response {
    let mut resp = oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "client authentication failed",
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"scimd\""),
    );
    resp
}

/// 429 with `Retry-After` (whole seconds, at least 1).
fn too_many(wait: std::time::Duration, description: &str) -> Response {
    let mut resp = oauth_error(
        StatusCode::TOO_MANY_REQUESTS,
        "invalid_request",
        description,
    );
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

fn server_error() -> Response {
    oauth_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the authorization server failed; try again later",
    )
}

/// application/x-www-form-urlencoded decoding of one component.
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Credentials of `Authorization: Basic` (RFC 6749 §2.3.1: each part
/// form-urlencoded before base64). None without such a header; Some(Err) when
/// it is malformed.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let parsed = STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (id, secret) = s.split_once(':')?;
            Some((form_decode(id)?, form_decode(secret)?))
        });
    Some(parsed.ok_or(()))
}

fn split_scopes(s: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in s.unwrap_or_default().split_whitespace() {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

async fn token(
    State(auth): AuthState,
    peer: Option<axum::Extension<crate::limits::ClientAddr>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Ok(Form(params)) = form else {
        return invalid_request("the request must be an application/x-www-form-urlencoded POST");
    };
    for (i, (k, _)) in params.iter().enumerate() {
        if params[..i].iter().any(|(other, _)| other == k) {
            return invalid_request(&format!("parameter '{k}' is repeated"));
        }
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (client_id, secret) = match (basic_credentials(&headers), get("client_secret")) {
        (Some(Err(())), _) => return invalid_client(),
        (Some(Ok(_)), Some(_)) => {
            return invalid_request("use exactly one client authentication method")
        }
        (Some(Ok((id, secret))), None) => {
            if get("client_id").is_some_and(|c| c != id) {
                return invalid_request("client_id does not match the authenticated client");
            }
            (id, secret)
        }
        (None, Some(secret)) => match get("client_id") {
            Some(id) => (id.to_string(), secret.to_string()),
            None => return invalid_request("client_id is required with client_secret"),
        },
        (None, None) => return invalid_client(),
    };
    let ip = peer.map(|axum::Extension(c)| c.0);
    if let Err(wait) = auth.allow_token_request(&client_id, ip) {
        metrics::counter!("scimd_rate_limited_total", "limit" => "token").increment(1);
        return too_many(wait, "too many token requests; slow down");
    }
    let grant = match get("grant_type") {
        None => return invalid_request("grant_type is required"),
        Some(g @ (GRANT_CLIENT_CREDENTIALS | GRANT_UMA_TICKET)) => g,
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "supported grant types: client_credentials, urn:ietf:params:oauth:grant-type:uma-ticket",
            )
        }
    };
    let client = match auth.authenticate_client(&client_id, &secret, ip).await {
        Ok(c) => c,
        Err(ClientAuthFailure::Invalid) => return invalid_client(),
        Err(ClientAuthFailure::Throttled(wait)) => {
            return too_many(
                wait,
                "too many failed attempts from this address; try again later",
            )
        }
        Err(ClientAuthFailure::Internal(e)) => {
            tracing::error!(error = %e, "client authentication failed internally");
            return server_error();
        }
    };
    let requested = split_scopes(get("scope"));
    let not_granted = |scopes: &[String]| -> Option<String> {
        scopes.iter().find(|s| !client.scopes.contains(s)).cloned()
    };
    let (scopes, permissions) = if grant == GRANT_CLIENT_CREDENTIALS {
        if let Some(s) = not_granted(&requested) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                &format!("scope '{s}' is not granted to this client"),
            );
        }
        let scopes = if requested.is_empty() {
            client.scopes.clone()
        } else {
            requested
        };
        (scopes, None)
    } else {
        let Some(ticket) = get("ticket") else {
            return invalid_request("ticket is required for the UMA grant");
        };
        let ticket = match auth.redeem_ticket(ticket).await {
            Ok(t) => t,
            Err(_) => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the permission ticket is invalid or has expired",
                )
            }
        };
        let mut scopes = ticket.scopes.clone();
        if let Some(s) = not_granted(&scopes) {
            tracing::info!(client_id = %client.id, scope = %s, "UMA request denied");
            return oauth_error(
                StatusCode::FORBIDDEN,
                "request_denied",
                &format!("the client may not obtain permission for '{s}'"),
            );
        }
        if let Some(s) = not_granted(&requested) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                &format!("scope '{s}' is not granted to this client"),
            );
        }
        match auth.spend_ticket(&ticket).await {
            Ok(()) => {}
            Err(crate::auth::Rejection::Unavailable(e)) => {
                tracing::error!(error = %e, "cannot spend a permission ticket");
                return server_error();
            }
            Err(crate::auth::Rejection::Invalid(_)) => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the permission ticket was already used",
                )
            }
        }
        for s in requested {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        let permissions = vec![Permission {
            resource_id: UMA_RESOURCE_ID.into(),
            resource_scopes: scopes.clone(),
        }];
        (scopes, Some(permissions))
    };
    let rpt = permissions.is_some();
    match auth.issue_token(&client.id, &scopes, permissions) {
        Ok((token, expires_in)) => {
            tracing::info!(client_id = %client.id, grant, scopes = %scopes.join(" "), "token issued");
            metrics::counter!("scimd_tokens_issued_total", "grant" => grant.to_string())
                .increment(1);
            let mut body = json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": expires_in,
                "scope": scopes.join(" "),
            });
            if rpt {
                body["upgraded"] = json!(false);
            }
            json_response(StatusCode::OK, &body)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot issue a token");
            server_error()
        }
    }
}

async fn jwks(State(auth): AuthState) -> Response {
    let mut resp = (StatusCode::OK, auth.keys().jwks().to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    resp
}

const GRANT_TYPES: [&str; 2] = [GRANT_CLIENT_CREDENTIALS, GRANT_UMA_TICKET];

fn metadata(auth: &Auth) -> Value {
    let iss = auth.issuer();
    let mut m = json!({
        "issuer": iss,
        "token_endpoint": format!("{iss}/oauth/token"),
        "jwks_uri": format!("{iss}/oauth/jwks"),
        "scopes_supported": auth.policy().all(),
        "grant_types_supported": GRANT_TYPES,
        "response_types_supported": ["none"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
    });
    if auth.config().dynamic_registration {
        m["registration_endpoint"] = json!(format!("{iss}/oauth/register"));
    }
    m
}

fn public_json(body: &Value) -> Response {
    let mut resp = (StatusCode::OK, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

async fn oauth_metadata(State(auth): AuthState) -> Response {
    public_json(&metadata(&auth))
}

async fn openid_configuration(State(auth): AuthState) -> Response {
    let mut m = metadata(&auth);
    m["subject_types_supported"] = json!(["public"]);
    m["id_token_signing_alg_values_supported"] = json!([SIGNING_ALG]);
    public_json(&m)
}

async fn uma2_configuration(State(auth): AuthState) -> Response {
    let mut m = metadata(&auth);
    m["uma_profiles_supported"] = json!([]);
    m["uma_protection_mode"] = json!(auth.mode() == Mode::Uma);
    public_json(&m)
}

fn registration_error(description: &str) -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
        description,
    )
}

/// RFC 7591 dynamic client registration (only mounted when enabled). Registered
/// clients expire (a day by default) and may ask for any SCIM scope.
async fn register(State(auth): AuthState, body: Bytes) -> Response {
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(&body) else {
        return registration_error("the body must be a JSON object");
    };
    let text = |k: &str| req.get(k).and_then(Value::as_str);
    let name = text("client_name").unwrap_or("dynamic client").to_string();
    if let Some(m) = text("token_endpoint_auth_method") {
        if !AUTH_METHODS.contains(&m) {
            return registration_error(&format!(
                "token_endpoint_auth_method '{m}' is not supported"
            ));
        }
    }
    let method = text("token_endpoint_auth_method")
        .unwrap_or(AUTH_METHODS[0])
        .to_string();
    // Unknown scopes are dropped (RFC 7591 §2 lets the server replace values).
    let scopes: Vec<String> = split_scopes(text("scope"))
        .into_iter()
        .filter(|s| auth.policy().is_known(s))
        .collect();
    let now = auth.now();
    let expires = now + to_chrono(auth.config().dynamic_client_lifetime);
    let hasher = auth.hasher().clone();
    let store = auth.store().clone();
    let name2 = name.clone();
    let scopes2 = scopes.clone();
    let created = tokio::task::spawn_blocking(move || {
        create_client(
            store.as_ref(),
            &hasher,
            &name2,
            scopes2,
            now,
            Some(expires),
            ORIGIN_DYNAMIC,
        )
    })
    .await;
    match created {
        Ok(Ok((record, secret))) => {
            tracing::info!(client_id = %record.id, "client registered dynamically");
            json_response(
                StatusCode::CREATED,
                &json!({
                    "client_id": record.id,
                    "client_secret": secret,
                    "client_id_issued_at": now.timestamp(),
                    "client_secret_expires_at": expires.timestamp(),
                    "client_name": name,
                    "scope": scopes.join(" "),
                    "grant_types": GRANT_TYPES,
                    "token_endpoint_auth_method": method,
                }),
            )
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "dynamic registration failed");
            server_error()
        }
        Err(_) => server_error(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut h = HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode("my%20id:s%3Acr+t"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&v).expect("header"),
        );
        assert_eq!(
            basic_credentials(&h),
            Some(Ok(("my id".into(), "s:cr t".into())))
        );
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_credentials(&h), Some(Err(())));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_credentials(&h), None);
        assert_eq!(form_decode("%zz"), None);
    }
}
