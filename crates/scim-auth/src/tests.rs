//! The authorization core against a real (temporary) SQLite registry, with an
//! injected clock; the middleware and token endpoint through axum in-process.

use crate::admin::{create_client, ORIGIN_CLI};
use crate::auth::{Auth, ClientAuthFailure, Rejection};
use crate::guard::{protect, Caller, Guard};
use crate::token::TokenKind;
use crate::{AuthConfig, Mode};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Extension, Router};
use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use http_body_util::BodyExt;
use scim_proto::clock::Clock;
use scim_store::clients::ClientStore;
use scim_store::sqlite::SqliteClientStore;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

struct FakeClock(Mutex<DateTime<Utc>>);

impl FakeClock {
    fn advance(&self, secs: i64) {
        if let Ok(mut t) = self.0.lock() {
            *t += ChronoDuration::seconds(secs);
        }
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map(|t| *t).unwrap_or_default()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    auth: Arc<Auth>,
    clock: Arc<FakeClock>,
    store: Arc<SqliteClientStore>,
}

const USERS_READ: &str = "https://gluu.org/scim/users.read";
const USERS_WRITE: &str = "https://gluu.org/scim/users.write";

fn fixture(mode: Mode) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteClientStore::open(&dir.path().join("db")).expect("store"));
    // Real wall-clock time, so that JWT libraries and this clock agree.
    let clock = Arc::new(FakeClock(Mutex::new(
        Utc.timestamp_opt(Utc::now().timestamp(), 0)
            .single()
            .unwrap_or_default(),
    )));
    let config = AuthConfig {
        mode,
        issuer: "https://scim.test/".into(),
        client_cache_ttl: Duration::ZERO,
        ..AuthConfig::default()
    };
    let auth = Auth::new(config, store.clone(), clock.clone()).expect("auth");
    Fixture {
        _dir: dir,
        auth: Arc::new(auth),
        clock,
        store,
    }
}

fn client(f: &Fixture, scopes: &[&str]) -> (String, String) {
    let (record, secret) = create_client(
        f.store.as_ref(),
        f.auth.hasher(),
        "c",
        scopes.iter().map(|s| s.to_string()).collect(),
        f.clock.now(),
        None,
        ORIGIN_CLI,
    )
    .expect("client");
    (record.id, secret)
}

#[tokio::test]
async fn issued_tokens_validate_until_they_expire() {
    let f = fixture(Mode::Oauth);
    assert_eq!(f.auth.issuer(), "https://scim.test");
    let (id, secret) = client(&f, &[USERS_READ]);
    let c = f
        .auth
        .authenticate_client(&id, &secret, None)
        .await
        .expect("auth");
    let (token, lifetime) = f.auth.issue_token(&c.id, &c.scopes, None).expect("issue");
    assert_eq!(lifetime, 300);
    let info = f.auth.validate(&token).await.expect("valid");
    assert_eq!(info.kind, TokenKind::Access);
    assert_eq!(info.client_id.as_deref(), Some(id.as_str()));
    assert_eq!(info.scopes, vec![USERS_READ.to_string()]);
    f.clock.advance(299);
    assert!(f.auth.validate(&token).await.is_ok());
    f.clock.advance(1);
    assert_eq!(
        f.auth.validate(&token).await,
        Err(Rejection::Invalid("token has expired".into()))
    );
}

#[tokio::test]
async fn disabled_or_deleted_clients_invalidate_their_tokens() {
    let f = fixture(Mode::Oauth);
    let (id, _) = client(&f, &[USERS_READ]);
    let (token, _) = f.auth.issue_token(&id, &[], None).expect("issue");
    assert!(f.auth.validate(&token).await.is_ok());
    f.store.set_client_disabled(&id, true).expect("disable");
    assert!(f.auth.validate(&token).await.is_err());
    f.store.set_client_disabled(&id, false).expect("enable");
    assert!(f.auth.validate(&token).await.is_ok());
    f.store.delete_client(&id).expect("delete");
    assert!(f.auth.validate(&token).await.is_err());
}

#[tokio::test]
async fn expired_clients_get_no_tokens_and_lose_theirs() {
    let f = fixture(Mode::Oauth);
    let now = f.clock.now();
    let (record, secret) = create_client(
        f.store.as_ref(),
        f.auth.hasher(),
        "short-lived",
        vec![USERS_READ.into()],
        now,
        Some(now + ChronoDuration::seconds(10)),
        ORIGIN_CLI,
    )
    .expect("client");
    assert!(f
        .auth
        .authenticate_client(&record.id, &secret, None)
        .await
        .is_ok());
    let (token, _) = f
        .auth
        .issue_token(&record.id, &record.scopes, None)
        .expect("issue");
    assert!(f.auth.validate(&token).await.is_ok());
    f.clock.advance(11);
    assert!(matches!(
        f.auth.authenticate_client(&record.id, &secret, None).await,
        Err(ClientAuthFailure::Invalid)
    ));
    assert!(f.auth.validate(&token).await.is_err());
}

#[tokio::test]
async fn bad_secrets_throttle_their_address_not_the_client() {
    let f = fixture(Mode::Oauth);
    let (id, secret) = client(&f, &[]);
    let attacker = Some(std::net::IpAddr::from([192, 0, 2, 1]));
    let caller = Some(std::net::IpAddr::from([192, 0, 2, 2]));
    for _ in 0..6 {
        assert!(matches!(
            f.auth.authenticate_client(&id, "wrong", attacker).await,
            Err(ClientAuthFailure::Invalid)
        ));
    }
    // The attacker's address now waits, even with the right secret...
    assert!(matches!(
        f.auth.authenticate_client(&id, &secret, attacker).await,
        Err(ClientAuthFailure::Throttled(_))
    ));
    // ...while the real caller elsewhere is never locked out.
    assert!(f
        .auth
        .authenticate_client(&id, &secret, caller)
        .await
        .is_ok());
    f.clock.advance(2);
    assert!(f
        .auth
        .authenticate_client(&id, &secret, attacker)
        .await
        .is_ok());
    assert!(f
        .auth
        .authenticate_client("nobody", &secret, caller)
        .await
        .is_err());
}

#[tokio::test]
async fn tickets_and_access_tokens_are_not_interchangeable() {
    let f = fixture(Mode::Uma);
    let ticket = f.auth.issue_ticket(&[USERS_READ.into()]).expect("ticket");
    let t = f.auth.redeem_ticket(&ticket).await.expect("ticket");
    assert_eq!(t.scopes, vec![USERS_READ.to_string()]);
    // Spent once, refused ever after.
    assert!(f.auth.spend_ticket(&t).await.is_ok());
    assert!(f.auth.spend_ticket(&t).await.is_err());
    assert!(f.auth.validate(&ticket).await.is_err());
    let (id, _) = client(&f, &[USERS_READ]);
    let (token, _) = f.auth.issue_token(&id, &[], None).expect("issue");
    assert!(f.auth.redeem_ticket(&token).await.is_err());
    f.clock.advance(301);
    assert!(f.auth.redeem_ticket(&ticket).await.is_err());
}

async fn echo(caller: Option<Extension<Caller>>) -> String {
    caller
        .and_then(|Extension(c)| c.token().and_then(|t| t.client_id.clone()))
        .unwrap_or_default()
}

fn app(f: &Fixture) -> Router {
    let api = Router::new()
        .route("/Users", get(echo).post(echo))
        .route("/Schemas", get(echo))
        .layer(axum::middleware::from_fn_with_state(
            Guard::new(f.auth.clone()),
            protect,
        ));
    Router::new()
        .nest("/scim/v2", api)
        .merge(crate::routes(f.auth.clone()))
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Option<String>, String) {
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let www = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, www, String::from_utf8_lossy(&body).into_owned())
}

fn req(method: &str, uri: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).expect("request")
}

#[tokio::test]
async fn middleware_applies_scopes_and_exposes_the_caller() {
    let f = fixture(Mode::Oauth);
    let app = app(&f);
    let (id, secret) = client(&f, &[USERS_READ, USERS_WRITE]);
    let form = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}&scope=https%3A%2F%2Fgluu.org%2Fscim%2Fusers.read");
    let token_req = Request::builder()
        .method("POST")
        .uri("/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .expect("request");
    let (status, _, body) = call(&app, token_req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    let token = v["access_token"].as_str().expect("token");
    assert_eq!(v["scope"], USERS_READ);

    let (status, _, body) = call(&app, req("GET", "/scim/v2/Users", Some(token))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, id.as_str()));
    let (status, www, body) = call(&app, req("POST", "/scim/v2/Users", Some(token))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        www.as_deref(),
        Some("Bearer realm=\"scimd\", error=\"insufficient_scope\", scope=\"https://gluu.org/scim/users.write\"")
    );
    let err: Value = serde_json::from_str(&body).expect("scim error");
    assert_eq!(err["status"], "403");
    let (status, www, _) = call(&app, req("GET", "/scim/v2/Users", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www.as_deref(), Some("Bearer realm=\"scimd\""));
    let (status, _, _) = call(&app, req("GET", "/scim/v2/Schemas", None)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn unconfigured_guard_fails_closed_except_in_bypass() {
    let router =
        |mode| {
            Router::new().nest(
                "/scim/v2",
                Router::new().route("/Users", get(echo)).layer(
                    axum::middleware::from_fn_with_state(Guard::unconfigured(mode), protect),
                ),
            )
        };
    let (status, _, _) = call(
        &router(Mode::Oauth),
        req("GET", "/scim/v2/Users", Some("x")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(&router(Mode::Bypass), req("GET", "/scim/v2/Users", None)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn uma_mode_answers_with_a_ticket() {
    let f = fixture(Mode::Uma);
    let app = app(&f);
    let (status, www, _) = call(&app, req("GET", "/scim/v2/Users", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let www = www.expect("header");
    assert!(
        www.starts_with("UMA realm=\"scimd\", as_uri=\"https://scim.test\", ticket=\""),
        "{www}"
    );
    let ticket = www
        .rsplit("ticket=\"")
        .next()
        .and_then(|t| t.strip_suffix('"'))
        .expect("ticket");
    assert_eq!(
        f.auth.redeem_ticket(ticket).await.map(|t| t.scopes),
        Ok(vec![USERS_READ.to_string()])
    );
}
