//! The protection middleware of the SCIM API (RFC 6750 bearer tokens, UMA 2.0
//! tickets, test and bypass modes), and [`Caller`]: what later layers (Bulk,
//! interception scripts) learn about the request's token from the extensions.

use crate::auth::{Auth, Rejection};
use crate::scope::{classify, required_scope, Access, ScopePolicy};
use crate::token::{TokenInfo, TokenKind};
use crate::Mode;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use scim_proto::ScimError;
use std::sync::Arc;

pub const REALM: &str = "scimd";
const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// State of the [`protect`] middleware.
#[derive(Clone)]
pub struct Guard {
    mode: Mode,
    auth: Option<Arc<Auth>>,
    policy: ScopePolicy,
}

impl Guard {
    pub fn new(auth: Arc<Auth>) -> Self {
        Guard {
            mode: auth.mode(),
            policy: auth.policy().clone(),
            auth: Some(auth),
        }
    }

    /// Without an authorization server: bypass stays open, every other mode
    /// refuses every protected request (fail closed).
    pub fn unconfigured(mode: Mode) -> Self {
        Guard {
            mode,
            auth: None,
            policy: ScopePolicy::default(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }
}

/// The caller as the protection layer saw it; in the request extensions of every
/// request that passed the middleware (except public discovery requests).
#[derive(Debug, Clone)]
pub struct Caller {
    token: Option<TokenInfo>,
    enforce_scopes: bool,
    policy: ScopePolicy,
}

impl Caller {
    /// No protection (bypass mode): everything is allowed.
    pub fn bypass() -> Self {
        Caller {
            token: None,
            enforce_scopes: false,
            policy: ScopePolicy::default(),
        }
    }

    pub fn new(token: TokenInfo, enforce_scopes: bool, policy: ScopePolicy) -> Self {
        Caller {
            token: Some(token),
            enforce_scopes,
            policy,
        }
    }

    /// The validated token (client id, scopes, expiry), when there is one.
    pub fn token(&self) -> Option<&TokenInfo> {
        self.token.as_ref()
    }

    /// The caller's scopes (full strings); empty without a token.
    pub fn scopes(&self) -> &[String] {
        self.token.as_ref().map_or(&[], |t| t.scopes.as_slice())
    }

    /// May the caller run `method` on `resource_endpoint` (e.g. `POST`, `/Users`)?
    /// Bulk asks this for each of its operations. `Err` carries the missing scope
    /// (full string).
    pub fn authorise(&self, method: &str, resource_endpoint: &str) -> Result<(), String> {
        if !self.enforce_scopes {
            return Ok(());
        }
        match required_scope(method, resource_endpoint) {
            None => Ok(()),
            Some(name) if self.policy.grants(self.scopes(), name) => Ok(()),
            Some(name) => Err(self.policy.full(name)),
        }
    }
}

/// The scheme and token of `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A value safe inside a quoted-string of WWW-Authenticate.
fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

fn scim_error(status: StatusCode, detail: &str) -> Response {
    let body = ScimError::new(status.as_u16(), None, detail).to_json();
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    resp
}

fn challenge(status: StatusCode, www: &str, detail: &str) -> Response {
    let mut resp = scim_error(status, detail);
    if let Ok(v) = HeaderValue::from_str(www) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

fn missing_token() -> Response {
    challenge(
        StatusCode::UNAUTHORIZED,
        &format!("Bearer realm=\"{REALM}\""),
        "authentication required: send 'Authorization: Bearer <access token>'",
    )
}

fn invalid_token(reason: &str) -> Response {
    challenge(
        StatusCode::UNAUTHORIZED,
        &format!(
            "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
            quoted(reason)
        ),
        &format!("invalid access token: {reason}"),
    )
}

fn insufficient_scope(scope: &str) -> Response {
    challenge(
        StatusCode::FORBIDDEN,
        &format!(
            "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{}\"",
            quoted(scope)
        ),
        &format!("the access token lacks the scope this operation needs: {scope}"),
    )
}

/// 429 with `Retry-After` (whole seconds, at least 1) and a SCIM error body.
pub fn rate_limited(wait: std::time::Duration, detail: &str) -> Response {
    let mut resp = scim_error(StatusCode::TOO_MANY_REQUESTS, detail);
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// The client's API rate, checked once its token is.
fn over_client_rate(auth: &Auth, info: &TokenInfo) -> Option<Response> {
    let client = info.client_id.as_deref()?;
    let wait = auth.allow_api_request(client).err()?;
    metrics::counter!("scimd_rate_limited_total", "limit" => "client").increment(1);
    Some(with_client(
        rate_limited(wait, "too many requests from this client; slow down"),
        Some(client),
    ))
}

fn unavailable(reason: &str) -> Response {
    scim_error(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("cannot check the access token now: {reason}"),
    )
}

/// 401 with a fresh UMA permission ticket for the scopes the request needs.
fn uma_challenge(auth: &Auth, scopes: &[String], reason: &str) -> Response {
    match auth.issue_ticket(scopes) {
        Ok(ticket) => challenge(
            StatusCode::UNAUTHORIZED,
            &format!(
                "UMA realm=\"{REALM}\", as_uri=\"{}\", ticket=\"{ticket}\"",
                quoted(auth.issuer())
            ),
            &format!("{reason}: obtain an RPT for the ticket in WWW-Authenticate"),
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot issue a UMA permission ticket");
            scim_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot issue a permission ticket",
            )
        }
    }
}

/// axum middleware: apply the protection mode to a request of the SCIM API. The
/// request path is relative to the SCIM base (the layer sits on the nested API
/// router). On success a [`Caller`] is put into the request extensions.
pub async fn protect(State(guard): State<Guard>, mut req: Request, next: Next) -> Response {
    if guard.mode == Mode::Bypass {
        req.extensions_mut().insert(Caller::bypass());
        return next.run(req).await;
    }
    let access = classify(req.method().as_str(), req.uri().path());
    if access == Access::Public {
        return next.run(req).await;
    }
    let Some(auth) = guard.auth.as_ref() else {
        tracing::error!(
            "protection mode {:?} without an authorization server: request refused",
            guard.mode
        );
        return invalid_token("no authorization server is configured");
    };
    let names = access.scope_names();
    let needed: Vec<String> = names.iter().map(|n| guard.policy.full(n)).collect();
    let missing = |info: &TokenInfo| {
        names
            .iter()
            .find(|n| !guard.policy.grants(&info.scopes, n))
            .map(|n| guard.policy.full(n))
    };
    let token = bearer(req.headers()).map(str::to_string);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if guard.mode == Mode::Uma {
        let Some(token) = token else {
            return uma_challenge(auth, &needed, "no RPT");
        };
        let info = match auth.validate(&token).await {
            Ok(i) => i,
            Err(Rejection::Unavailable(r)) => return unavailable(&r),
            Err(Rejection::Invalid(r)) => {
                tracing::info!(%method, %path, reason = %r, "RPT rejected");
                return uma_challenge(auth, &needed, "invalid RPT");
            }
        };
        if info.kind == TokenKind::Access {
            return uma_challenge(auth, &needed, "an access token is not an RPT");
        }
        if missing(&info).is_some() {
            return uma_challenge(auth, &needed, "the RPT lacks a needed permission");
        }
        if let Some(resp) = over_client_rate(auth, &info) {
            return resp;
        }
        let client = info.client_id.clone();
        req.extensions_mut()
            .insert(Caller::new(info.clone(), true, guard.policy.clone()));
        req.extensions_mut().insert(info);
        return with_client(next.run(req).await, client.as_deref());
    }
    let Some(token) = token else {
        return missing_token();
    };
    let info = match auth.validate(&token).await {
        Ok(i) => i,
        Err(Rejection::Unavailable(r)) => return unavailable(&r),
        Err(Rejection::Invalid(r)) => {
            tracing::info!(%method, %path, reason = %r, "access token rejected");
            return invalid_token(&r);
        }
    };
    let enforce = guard.mode == Mode::Oauth;
    if enforce {
        if let Some(scope) = missing(&info) {
            tracing::info!(%method, %path, client_id = ?info.client_id, "insufficient scope");
            return with_client(insufficient_scope(&scope), info.client_id.as_deref());
        }
    }
    if let Some(resp) = over_client_rate(auth, &info) {
        return resp;
    }
    let client = info.client_id.clone();
    req.extensions_mut()
        .insert(Caller::new(info.clone(), enforce, guard.policy.clone()));
    req.extensions_mut().insert(info);
    with_client(next.run(req).await, client.as_deref())
}

/// The client a request was made by, on its response: the request log line of
/// the outer layer names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(pub String);

/// `resp` marked as answered to `client`.
pub fn with_client(mut resp: Response, client: Option<&str>) -> Response {
    if let Some(c) = client {
        resp.extensions_mut().insert(ClientId(c.to_string()));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn info(scopes: &[&str]) -> TokenInfo {
        TokenInfo {
            kind: TokenKind::Access,
            client_id: Some("c".into()),
            subject: Some("c".into()),
            issuer: None,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires_at: Some(Utc::now()),
            token_id: None,
        }
    }

    #[test]
    fn caller_authorises_bulk_operations_by_scope() {
        let p = ScopePolicy::default();
        let c = Caller::new(
            info(&["https://gluu.org/scim/users.write"]),
            true,
            p.clone(),
        );
        assert_eq!(c.authorise("POST", "/Users"), Ok(()));
        assert_eq!(
            c.authorise("DELETE", "/Groups"),
            Err("https://gluu.org/scim/groups.write".into())
        );
        let test_mode = Caller::new(info(&[]), false, p);
        assert_eq!(test_mode.authorise("DELETE", "/Groups"), Ok(()));
        assert_eq!(Caller::bypass().authorise("PUT", "/Users"), Ok(()));
    }

    #[test]
    fn bearer_parsing_and_quoting() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        assert_eq!(quoted("a\"b\\c"), "abc");
    }
}
