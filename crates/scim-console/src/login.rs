//! Logging in and out. An admin is an active SCIM user who is a member of the
//! admin group (directly or through nested groups), checked against the
//! user's Argon2id password hash. Failures are answered the same way whatever
//! failed, take as long as a real check, and slow down per (name, address).

use crate::pages::{layout, problem, quoted, respond};
use crate::session::{random_token, same_secret, set_cookie, COOKIE};
use crate::{cookie, see, Page, Shared, Visit};
use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use scim_proto::messages::SearchRequest;
use scim_proto::ScimError;
use scim_server::service::Service;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The cookie holding the login form's CSRF token (there is no session yet).
const LOGIN_COOKIE: &str = "scimd_console_login";

fn login_page(token: &str, user_name: &str, error: Option<&str>, status: StatusCode) -> Response {
    let body = html! {
        (crate::pages::error_box(error))
        form.stack method="post" action="/ui/login" {
            input type="hidden" name="login_token" value=(token);
            label { "User name" input name="user_name" autocomplete="username" required autofocus value=(user_name); }
            label { "Password" input name="password" type="password" autocomplete="current-password" required; }
            button type="submit" { "Log in" }
        }
        p.muted { "Members of the admin group log in with their SCIM user name and password." }
    };
    let mut r = respond(status, layout("Log in", None, "/ui/login", body));
    let c = set_cookie(LOGIN_COOKIE, token, false, Some(3600));
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

pub(crate) async fn form(v: Visit) -> Page {
    if v.admin.is_some() {
        return Ok(see("/ui/"));
    }
    Ok(login_page(&random_token(), "", None, StatusCode::OK))
}

pub(crate) async fn submit(
    State(c): State<Shared>,
    v: Visit,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Page {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let (user_name, password) = (get("user_name").trim().to_string(), get("password"));
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_secret(&get("login_token"), &expected) {
        return Err(problem(
            StatusCode::FORBIDDEN,
            "The login form is out of date (CSRF check). Open the login page again.",
        ));
    }
    let key = user_name.to_lowercase();
    let now = c.now();
    if let Err(wait) = c.throttle.check(&key, v.ip, now) {
        let msg = format!(
            "Too many failed logins for this name from here: try again in {} s.",
            wait.as_secs().max(1)
        );
        return Err(login_page(
            &random_token(),
            &user_name,
            Some(&msg),
            StatusCode::TOO_MANY_REQUESTS,
        ));
    }
    let group = c.config.admin_group.clone();
    let name = user_name.clone();
    let found = c
        .call(move |s| check(s, &group, &name, &password))
        .await
        .map_err(|e| crate::pages::failed(&e))?;
    let Some((id, name)) = found else {
        c.throttle.failed(&key, v.ip, c.now());
        tracing::info!(user = %user_name, ip = ?v.ip, "console: login refused");
        return Err(login_page(
            &random_token(),
            &user_name,
            Some("Wrong user name or password, or the user is not an administrator."),
            StatusCode::UNAUTHORIZED,
        ));
    };
    c.throttle.succeeded(&key, v.ip);
    // Now, not when the request came: checking the password takes a while.
    let token = c.sessions.start(&id, &name, c.now());
    tracing::info!(user = %name, "console: login");
    let mut r = see("/ui/");
    let session = set_cookie(COOKIE, &token, c.config.secure_cookies, None);
    let clear = set_cookie(LOGIN_COOKIE, "", false, Some(0));
    for v in [session, clear] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(r)
}

pub(crate) async fn logout(
    State(c): State<Shared>,
    v: Visit,
    Form(f): Form<HashMap<String, String>>,
) -> Page {
    v.poster(&f)?;
    if let Some(t) = &v.token {
        c.sessions.end(t);
    }
    let mut r = see("/ui/login");
    if let Ok(h) = HeaderValue::from_str(&set_cookie(COOKIE, "", false, Some(0))) {
        r.headers_mut().append(header::SET_COOKIE, h);
    }
    Ok(r.into_response())
}

/// A hash to check passwords of unknown users against, so that a refusal takes
/// as long whether the user exists or not.
fn decoy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password(&random_token()).unwrap_or_default())
}

/// An Argon2id PHC string of `password`.
pub(crate) fn hash_password(password: &str) -> Result<String, ScimError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut rand_core::OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| ScimError::internal("password hashing failed"))
}

fn verify(hash: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// The (id, userName) of the admin these credentials are, if they are one.
fn check(
    s: &Service,
    admin_group: &str,
    user_name: &str,
    password: &str,
) -> Result<Option<(String, String)>, ScimError> {
    let rt = s
        .resource_type("Users")
        .ok_or_else(|| ScimError::internal("no User type"))?;
    let req = SearchRequest {
        filter: Some(format!("userName eq {}", quoted(user_name))),
        count: Some(1),
        ..SearchRequest::default()
    };
    let ctx = s.local_ctx();
    let list = s.search(&s.prepare_search(&rt, &req, &ctx)?, &ctx)?;
    let user = &list["Resources"][0];
    let id = user["id"].as_str().map(str::to_string);
    let hash = match &id {
        Some(id) if !user_name.is_empty() => s
            .store
            .password_hash(id)
            .map_err(scim_server::service::store_error)?,
        _ => None,
    };
    let verified = verify(hash.as_deref().unwrap_or(decoy_hash()), password) && hash.is_some();
    let active = user["active"] != serde_json::Value::Bool(false);
    let admin = user["groups"]
        .as_array()
        .is_some_and(|gs| gs.iter().any(|g| g["display"] == admin_group));
    Ok(match (id, verified && active && admin) {
        (Some(id), true) => Some((
            id,
            user["userName"].as_str().unwrap_or(user_name).to_string(),
        )),
        _ => None,
    })
}
