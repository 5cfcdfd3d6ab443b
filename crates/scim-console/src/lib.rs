//! scimd's admin console at `/ui`: what oxTrust gives a Gluu operator, served
//! from the same binary. Pages are rendered on the server (maud); htmx, vendored
//! below, only swaps parts of them. Every page reads through the service layer
//! with the same indexed, paged searches as the API, and every change goes
//! through it under the admin's name (`admin:NAME` on the audit trail).

// Handlers answer `Result<Response, Response>` (axum's early-return idiom): the
// error is the page to send, built once per request; boxing it buys nothing.
#![allow(clippy::result_large_err)]

mod clients;
mod directory;
mod login;
mod pages;
mod session;
mod settings;
mod sync;

pub use session::{Lifetimes, COOKIE};
pub use sync::{ConsoleSync, MappingInfo};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use scim_auth::limits::{ClientAddr, FailureThrottle, ThrottlePolicy};
use scim_auth::Auth;
use scim_proto::ScimError;
use scim_server::extract::RequestId;
use scim_server::service::{RequestCtx, Service};
use session::{Admin, Sessions};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// How the console is set up (`scimd serve --admin-group …`).
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Members of this group (by displayName, directly or through nesting) may log in.
    pub admin_group: String,
    pub lifetimes: Lifetimes,
    /// Cookies get `Secure` (the server listens with TLS).
    pub secure_cookies: bool,
    /// What the dashboard says the data lives in (`SQLite …`, `PostgreSQL`).
    pub database: String,
}

pub struct Console {
    service: Arc<Service>,
    auth: Arc<Auth>,
    config: ConsoleConfig,
    /// The sync engine, when scimd runs with `--sync-dir`.
    sync: Option<ConsoleSync>,
    sessions: Sessions,
    /// Growing delays after failed logins per (user name, address): a password
    /// cannot be guessed faster than the policy allows, and the account itself
    /// stays usable from elsewhere.
    throttle: FailureThrottle,
}

impl Console {
    pub fn new(
        service: Arc<Service>,
        auth: Arc<Auth>,
        config: ConsoleConfig,
        sync: Option<ConsoleSync>,
    ) -> Arc<Console> {
        Arc::new(Console {
            sync,
            sessions: Sessions::new(config.lifetimes),
            throttle: FailureThrottle::new(LOGIN_THROTTLE),
            service,
            auth,
            config,
        })
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.service.clock.now()
    }

    /// Service work on a blocking thread (the service and its store are synchronous).
    async fn call<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Service) -> Result<T, ScimError> + Send + 'static,
    ) -> Result<T, ScimError> {
        let service = self.service.clone();
        tokio::task::spawn_blocking(move || f(&service))
            .await
            .map_err(|e| ScimError::internal(format!("console task: {e}")))?
    }
}

type Shared = Arc<Console>;

/// Two failed logins of a name from one address cost nothing (typos); after
/// the third it waits 2 s, twice as long after each further failure, up to 15
/// minutes (a lockout that does not lock the account for its owner elsewhere);
/// forgotten after an hour without failures.
const LOGIN_THROTTLE: ThrottlePolicy = ThrottlePolicy {
    free: 2,
    first_delay: std::time::Duration::from_secs(2),
    max_delay: std::time::Duration::from_secs(900),
    forget_after: std::time::Duration::from_secs(3600),
};

/// The console's routes, all under `/ui`.
pub fn routes(console: Shared) -> Router {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/static/htmx.min.js", get(htmx))
        .route("/ui/static/console.css", get(css))
        .route("/ui/login", get(login::form).post(login::submit))
        .route("/ui/logout", post(login::logout))
        .route("/ui/", get(pages::dashboard))
        .route("/ui/audit", get(pages::audit))
        .merge(directory::routes())
        .merge(clients::routes())
        .merge(settings::routes())
        .merge(sync::routes())
        .with_state(console)
}

const HTMX: &[u8] = include_bytes!("../assets/htmx.min.js");
const CSS: &[u8] = include_bytes!("../assets/console.css");

fn asset(body: &'static [u8], content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

async fn htmx() -> Response {
    asset(HTMX, "text/javascript; charset=utf-8")
}

async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

/// What every console handler knows about its request: the session (if any),
/// the session cookie's token, and who is asking for the audit trail.
pub(crate) struct Visit {
    admin: Option<Admin>,
    token: Option<String>,
    request_id: Option<String>,
    ip: Option<IpAddr>,
}

impl FromRequestParts<Shared> for Visit {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, c: &Shared) -> Result<Self, Self::Rejection> {
        let token = cookie(&parts.headers, COOKIE);
        let admin = token.as_deref().and_then(|t| c.sessions.find(t, c.now()));
        Ok(Visit {
            admin,
            token,
            request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
            ip: parts.extensions.get::<ClientAddr>().map(|a| a.0),
        })
    }
}

impl Visit {
    /// The logged-in admin, or the way to the login form.
    fn admin(&self) -> Result<&Admin, Response> {
        self.admin
            .as_ref()
            .ok_or_else(|| Redirect::to("/ui/login").into_response())
    }

    /// The admin of a form post whose CSRF token matches the session's.
    fn poster(&self, form: &HashMap<String, String>) -> Result<&Admin, Response> {
        let admin = self.admin()?;
        let sent = form.get("csrf").map(String::as_str).unwrap_or("");
        if session::same_secret(sent, &admin.csrf) {
            Ok(admin)
        } else {
            Err(pages::problem(
                StatusCode::FORBIDDEN,
                "The form is out of date or did not come from this console (CSRF check). Reload the page and try again.",
            ))
        }
    }

    /// A service context that records the admin as the author of its writes.
    fn ctx(&self, c: &Console) -> RequestCtx {
        let mut ctx = c.service.local_ctx();
        ctx.actor = scim_store::Actor {
            principal: self
                .admin
                .as_ref()
                .map(|a| format!("admin:{}", a.user_name)),
            request_id: self.request_id.clone(),
            source_ip: self.ip.map(|i| i.to_string()),
        };
        ctx
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| session::cookie_value(h, name).map(str::to_string))
}

/// A page's handler result: the page, or the response that replaces it.
type Page = Result<Response, Response>;

/// After a change: back to `to` (303, so a reload does not post again).
fn see(to: &str) -> Response {
    Redirect::to(to).into_response()
}
