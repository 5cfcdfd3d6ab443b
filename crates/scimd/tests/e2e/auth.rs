//! API protection end to end: real scimd processes, real tokens over HTTP, the
//! seed's curl flows (client_credentials with Basic or form credentials, Bearer
//! calls), scopes per operation, token failures, external issuers, UMA.

use crate::harness::{parts, scimd, Server};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::blocking::{RequestBuilder, Response};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const PREFIX: &str = "https://gluu.org/scim/";
const GLUU: &str = "/identity/restv1/scim/v2";
const UMA_GRANT: &str = "urn:ietf:params:oauth:grant-type:uma-ticket";

fn scope(name: &str) -> String {
    format!("{PREFIX}{name}")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

struct Client {
    id: String,
    secret: String,
}

fn create_client(s: &Server, scopes: &str) -> Client {
    let out = scimd(
        s,
        &[
            "clients",
            "create",
            "--name",
            "SCIM-Client",
            "--scope",
            scopes,
            "--json",
        ],
    );
    let v: Value = serde_json::from_str(out.trim()).expect("client JSON");
    Client {
        id: v["client_id"].as_str().expect("id").to_string(),
        secret: v["client_secret"].as_str().expect("secret").to_string(),
    }
}

/// `curl -u id:secret -d grant_type=client_credentials [-d scope=…] …/oxauth/restv1/token`
fn token_request(s: &Server, c: &Client, extra: &[(&str, &str)]) -> Response {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    s.client
        .post(s.url("/oxauth/restv1/token"))
        .basic_auth(&c.id, Some(&c.secret))
        .form(&form)
        .send()
        .expect("token request")
}

fn token(s: &Server, c: &Client, scopes: Option<&str>) -> String {
    let extra: Vec<(&str, &str)> = scopes.map(|sc| ("scope", sc)).into_iter().collect();
    let (st, body) = parts(token_request(s, c, &extra));
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

fn www(resp: &Response) -> String {
    resp.headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn with(req: RequestBuilder, token: &str) -> RequestBuilder {
    req.bearer_auth(token)
}

/// Status and WWW-Authenticate of a GET of the users list with this token.
fn get_users(s: &Server, token: &str) -> (u16, String) {
    let resp = with(s.get("/scim/v2/Users"), token).send().expect("get");
    let h = www(&resp);
    (resp.status().as_u16(), h)
}

fn assert_scim_status(resp: Response, status: u16) -> (String, Value) {
    let h = www(&resp);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (st, body) = parts(resp);
    assert_eq!(st, status, "{body}");
    assert!(ct.starts_with("application/scim+json"), "{ct}");
    assert_eq!(
        body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(body["status"], status.to_string());
    (h, body)
}

fn user(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name})
}

fn group(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name})
}

/// One operation of the scope table: method, path, body, the scope it needs.
struct Op {
    method: &'static str,
    path: String,
    body: Option<Value>,
    needs: &'static str,
}

fn op(method: &'static str, path: &str, body: Option<Value>, needs: &'static str) -> Op {
    Op {
        method,
        path: path.to_string(),
        body,
        needs,
    }
}

fn send(s: &Server, token: &str, o: &Op) -> Response {
    let req = match &o.body {
        Some(b) => s.send_json(o.method, &o.path, b),
        None => s.client.request(
            reqwest::Method::from_bytes(o.method.as_bytes()).expect("method"),
            s.url(&o.path),
        ),
    };
    with(req, token).send().expect("send")
}

const SCOPES: [&str; 11] = [
    "users.read",
    "users.write",
    "groups.read",
    "groups.write",
    "fido.read",
    "fido.write",
    "fido2.read",
    "fido2.write",
    "bulk",
    "all-resources.search",
    "admin",
];

fn scope_table(uid: &str, gid: &str) -> Vec<Op> {
    let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]});
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "x"}]});
    let bulk =
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": []});
    let u = format!("{GLUU}/Users/{uid}");
    let g = format!("{GLUU}/Groups/{gid}");
    vec![
        op("GET", &format!("{GLUU}/Users"), None, "users.read"),
        op("GET", &u, None, "users.read"),
        op(
            "POST",
            &format!("{GLUU}/Users/.search"),
            Some(search.clone()),
            "users.read",
        ),
        op(
            "POST",
            &format!("{GLUU}/Users"),
            Some(user("table-new")),
            "users.write",
        ),
        op("PUT", &u, Some(user("table-user")), "users.write"),
        op("PATCH", &u, Some(patch.clone()), "users.write"),
        op(
            "DELETE",
            &format!("{GLUU}/Users/no-such-id"),
            None,
            "users.write",
        ),
        op("GET", &format!("{GLUU}/Groups"), None, "groups.read"),
        op("GET", &g, None, "groups.read"),
        op(
            "POST",
            &format!("{GLUU}/Groups/.search"),
            Some(search.clone()),
            "groups.read",
        ),
        op(
            "POST",
            &format!("{GLUU}/Groups"),
            Some(group("table-g2")),
            "groups.write",
        ),
        op("PUT", &g, Some(group("table-group")), "groups.write"),
        op("PATCH", &g, Some(patch), "groups.write"),
        op(
            "DELETE",
            &format!("{GLUU}/Groups/no-such-id"),
            None,
            "groups.write",
        ),
        op("GET", &format!("{GLUU}/FidoDevices"), None, "fido.read"),
        op(
            "DELETE",
            &format!("{GLUU}/FidoDevices/x"),
            None,
            "fido.write",
        ),
        op("GET", &format!("{GLUU}/Fido2Devices"), None, "fido2.read"),
        op(
            "DELETE",
            &format!("{GLUU}/Fido2Devices/x"),
            None,
            "fido2.write",
        ),
        op("POST", &format!("{GLUU}/Bulk"), Some(bulk), "bulk"),
        op(
            "POST",
            &format!("{GLUU}/.search"),
            Some(search),
            "all-resources.search",
        ),
        op(
            "GET",
            "/identity/restv1/scim/UpdatedUsers?timeStamp=2020-01-01T00:00:00Z",
            None,
            "users.read",
        ),
        op("GET", "/admin/attributes", None, "admin"),
        op(
            "POST",
            "/admin/devices/FidoDevices",
            Some(json!({})),
            "fido.write",
        ),
        op(
            "POST",
            "/admin/devices/Fido2Devices",
            Some(json!({})),
            "fido2.write",
        ),
    ]
}

#[test]
fn each_scope_against_each_operation() {
    let s = Server::start_protected(&[]);
    let admin = create_client(&s, "all");
    let all = token(&s, &admin, None);
    let (st, u) = parts(
        with(
            s.send_json("POST", "/scim/v2/Users", &user("table-user")),
            &all,
        )
        .send()
        .expect("post"),
    );
    assert_eq!(st, 201, "{u}");
    let (st, g) = parts(
        with(
            s.send_json("POST", "/scim/v2/Groups", &group("table-group")),
            &all,
        )
        .send()
        .expect("post"),
    );
    assert_eq!(st, 201, "{g}");
    let table = scope_table(
        u["id"].as_str().expect("uid"),
        g["id"].as_str().expect("gid"),
    );
    let tokens: Vec<(&str, String)> = SCOPES
        .iter()
        .map(|name| (*name, token(&s, &admin, Some(&scope(name)))))
        .collect();
    for o in &table {
        for (name, tok) in &tokens {
            let resp = send(&s, tok, o);
            let status = resp.status().as_u16();
            if *name == o.needs {
                assert!(
                    status != 401 && status != 403,
                    "{} {} with {name}: {status} {}",
                    o.method,
                    o.path,
                    resp.text().unwrap_or_default()
                );
            } else {
                let h = www(&resp);
                assert_eq!(status, 403, "{} {} with {name}", o.method, o.path);
                assert_eq!(
                    h,
                    format!(
                        "Bearer realm=\"scimd\", error=\"insufficient_scope\", scope=\"{}\"",
                        scope(o.needs)
                    )
                );
            }
        }
    }
    // A token with several scopes (space-separated request) covers them all.
    let both = token(
        &s,
        &admin,
        Some(&format!("{} {}", scope("users.read"), scope("groups.read"))),
    );
    assert_eq!(get_users(&s, &both).0, 200);
    let resp = with(s.get("/scim/v2/Groups"), &both).send().expect("get");
    assert_eq!(resp.status().as_u16(), 200);
}

#[test]
fn bulk_checks_the_scope_of_each_operation() {
    let s = Server::start_protected(&[]);
    let c = create_client(&s, "bulk users.write");
    let t = token(&s, &c, None);
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u", "data": user("bulk-user")},
            {"method": "POST", "path": "/Groups", "bulkId": "g", "data": group("bulk-group")}
        ]
    });
    let (st, v) = parts(
        with(s.send_json("POST", "/scim/v2/Bulk", &body), &t)
            .send()
            .expect("bulk"),
    );
    assert_eq!(st, 200, "{v}");
    let ops = v["Operations"].as_array().expect("ops");
    assert_eq!(ops[0]["status"], "201", "{v}");
    assert_eq!(ops[1]["status"], "403", "{v}");
    assert!(ops[1]["response"]["detail"]
        .as_str()
        .is_some_and(|d| d.contains(&scope("groups.write"))));
}

#[test]
fn discovery_stays_public_and_metadata_is_published() {
    let s = Server::start_protected(&["--dynamic-registration"]);
    for path in [
        "/scim/v2/ServiceProviderConfig",
        "/scim/v2/Schemas",
        "/scim/v2/ResourceTypes",
        "/identity/restv1/scim/v2/ResourceTypes/User",
    ] {
        assert_eq!(
            s.get(path).send().expect("get").status().as_u16(),
            200,
            "{path}"
        );
    }
    let (_, spc) = parts(s.get("/scim/v2/ServiceProviderConfig").send().expect("spc"));
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");
    let base = s.url("");
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/.well-known/uma2-configuration",
    ] {
        let (st, m) = parts(s.get(path).send().expect("metadata"));
        assert_eq!(st, 200);
        assert_eq!(m["issuer"], base);
        assert_eq!(m["token_endpoint"], format!("{base}/oauth/token"));
        assert_eq!(m["jwks_uri"], format!("{base}/oauth/jwks"));
        assert_eq!(m["registration_endpoint"], format!("{base}/oauth/register"));
        assert!(m["scopes_supported"]
            .as_array()
            .is_some_and(|a| a.contains(&json!(scope("all-resources.search")))));
        assert!(m["grant_types_supported"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("client_credentials"))));
        assert_eq!(
            m["token_endpoint_auth_methods_supported"],
            json!(["client_secret_basic", "client_secret_post"])
        );
    }
    let (st, jwks) = parts(s.get("/oauth/jwks").send().expect("jwks"));
    assert_eq!(st, 200);
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str()),
        (Some("OKP"), Some("EdDSA"))
    );
    assert!(key.get("d").is_none(), "private part published: {key}");
    // RFC 7591 registration, then the seed's token flow with the new client.
    let (st, reg) = parts(
        s.client
            .post(s.url("/oauth/register"))
            .json(
                &json!({"client_name": "SCIM-Client", "grant_types": ["client_credentials"],
                "scope": format!("{} openid", scope("users.read"))}),
            )
            .send()
            .expect("register"),
    );
    assert_eq!(st, 201, "{reg}");
    assert_eq!(reg["scope"], scope("users.read"));
    assert!(reg["client_secret_expires_at"]
        .as_i64()
        .is_some_and(|e| e > now()));
    let c = Client {
        id: reg["client_id"].as_str().expect("id").into(),
        secret: reg["client_secret"].as_str().expect("secret").into(),
    };
    assert_eq!(get_users(&s, &token(&s, &c, None)).0, 200);
}

#[test]
fn dynamic_registration_is_off_by_default() {
    let s = Server::start_protected(&[]);
    let resp = s
        .client
        .post(s.url("/oauth/register"))
        .json(&json!({"client_name": "x"}))
        .send()
        .expect("register");
    assert_eq!(resp.status().as_u16(), 404);
    let (_, m) = parts(
        s.get("/.well-known/openid-configuration")
            .send()
            .expect("meta"),
    );
    assert!(m.get("registration_endpoint").is_none());
}

#[test]
fn rfc6750_header_forms() {
    let s = Server::start_protected(&[]);
    let c = create_client(&s, "users.read");
    let (h, body) = assert_scim_status(s.get("/scim/v2/Users").send().expect("get"), 401);
    assert_eq!(h, "Bearer realm=\"scimd\"");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    let (h, _) = assert_scim_status(
        with(s.get("/scim/v2/Users"), "not-a-token")
            .send()
            .expect("get"),
        401,
    );
    assert!(
        h.starts_with("Bearer realm=\"scimd\", error=\"invalid_token\""),
        "{h}"
    );
    let t = token(&s, &c, None);
    let (h, _) = assert_scim_status(
        with(s.send_json("POST", "/scim/v2/Users", &user("x")), &t)
            .send()
            .expect("post"),
        403,
    );
    assert_eq!(
        h,
        format!(
            "Bearer realm=\"scimd\", error=\"insufficient_scope\", scope=\"{}\"",
            scope("users.write")
        )
    );
    // Basic credentials are not accepted on the SCIM API.
    let resp = s
        .get("/scim/v2/Users")
        .basic_auth(&c.id, Some(&c.secret))
        .send()
        .expect("get");
    assert_eq!(resp.status().as_u16(), 401);
}

#[test]
fn token_endpoint_flows_and_errors() {
    let s = Server::start_protected(&[]);
    let c = create_client(&s, "users.read groups.read");
    // Absent scope: all the client's scopes; no-store.
    let resp = token_request(&s, &c, &[]);
    assert_eq!(
        resp.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let (st, body) = parts(resp);
    assert_eq!(st, 200);
    assert_eq!(body["expires_in"], 300);
    assert_eq!(
        body["scope"],
        format!("{} {}", scope("users.read"), scope("groups.read"))
    );
    // The JWT carries the documented claims.
    let t = body["access_token"].as_str().expect("token");
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(t.split('.').nth(1).expect("payload"))
            .expect("b64"),
    )
    .expect("claims");
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "jti",
        "scope",
        "client_id",
    ] {
        assert!(payload.get(claim).is_some(), "{claim} missing: {payload}");
    }
    assert_eq!(payload["client_id"], c.id.as_str());
    assert_eq!(
        payload["exp"].as_i64().unwrap_or_default() - payload["iat"].as_i64().unwrap_or_default(),
        300
    );
    // client_secret_post on the canonical path.
    let (st, body) = parts(
        s.client
            .post(s.url("/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", c.id.as_str()),
                ("client_secret", c.secret.as_str()),
                ("scope", scope("groups.read").as_str()),
            ])
            .send()
            .expect("token"),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["scope"], scope("groups.read"));
    let err = |resp: Response, status: u16, error: &str| {
        let (st, body) = parts(resp);
        assert_eq!(st, status, "{body}");
        assert_eq!(body["error"], error, "{body}");
        body
    };
    err(
        token_request(&s, &c, &[("scope", &scope("users.write"))]),
        400,
        "invalid_scope",
    );
    let bad = Client {
        id: c.id.clone(),
        secret: "wrong".into(),
    };
    let resp = token_request(&s, &bad, &[]);
    assert_eq!(www(&resp), "Basic realm=\"scimd\"");
    err(resp, 401, "invalid_client");
    let unknown = Client {
        id: "no-such-client".into(),
        secret: "x".into(),
    };
    err(token_request(&s, &unknown, &[]), 401, "invalid_client");
    err(
        s.client
            .post(s.url("/oauth/token"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .expect("token"),
        401,
        "invalid_client",
    );
    err(
        s.client
            .post(s.url("/oauth/token"))
            .basic_auth(&c.id, Some(&c.secret))
            .form(&[
                ("grant_type", "password"),
                ("username", "u"),
                ("password", "p"),
            ])
            .send()
            .expect("token"),
        400,
        "unsupported_grant_type",
    );
    err(
        s.client
            .post(s.url("/oauth/token"))
            .basic_auth(&c.id, Some(&c.secret))
            .form(&[("scope", "x")])
            .send()
            .expect("token"),
        400,
        "invalid_request",
    );
    err(
        s.client
            .post(s.url("/oauth/token"))
            .basic_auth(&c.id, Some(&c.secret))
            .json(&json!({"grant_type": "client_credentials"}))
            .send()
            .expect("token"),
        400,
        "invalid_request",
    );
}

/// A token request of `c` from the loopback address `from`.
fn token_request_from(s: &Server, from: [u8; 4], c: &Client) -> Response {
    reqwest::blocking::Client::builder()
        .local_address(std::net::IpAddr::from(from))
        .build()
        .expect("client")
        .post(s.url("/oauth/token"))
        .basic_auth(&c.id, Some(&c.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .expect("token request")
}

#[test]
fn bad_secrets_slow_down_their_address_and_never_lock_the_client_out() {
    let s = Server::start_protected(&[]);
    let c = create_client(&s, "users.read");
    let bad = Client {
        id: c.id.clone(),
        secret: "guess".into(),
    };
    // Someone who knows the client id (it is not a secret) tries 30 secrets
    // from 127.0.0.2: the first five are answered 401, then the address waits.
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let r = token_request_from(&s, [127, 0, 0, 2], &bad);
        let retry = r.headers().get("retry-after").cloned();
        let (st, body) = parts(r);
        if st == 429 {
            assert!(retry.is_some(), "429 without Retry-After: {body}");
        } else {
            assert_eq!((st, body["error"].as_str()), (401, Some("invalid_client")));
        }
        statuses.push(st);
    }
    assert_eq!(statuses[..6], [401; 6], "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    // The real caller, elsewhere, is not held up at all.
    for _ in 0..3 {
        let (st, body) = parts(token_request_from(&s, [127, 0, 0, 1], &c));
        assert_eq!(st, 200, "{body}");
    }
    let shown = scimd(&s, &["clients", "show", &c.id, "--json"]);
    assert!(!shown.contains("\"locked\""), "{shown}");
}

#[test]
fn expired_token_is_rejected() {
    let s = Server::start_protected(&["--token-lifetime", "1"]);
    let c = create_client(&s, "users.read");
    let (st, body) = parts(token_request(&s, &c, &[]));
    assert_eq!((st, body["expires_in"].as_u64()), (200, Some(1)));
    let t = body["access_token"].as_str().expect("token").to_string();
    std::thread::sleep(Duration::from_millis(2100));
    let (st, h) = get_users(&s, &t);
    assert_eq!(st, 401);
    assert!(
        h.contains("error=\"invalid_token\"") && h.contains("expired"),
        "{h}"
    );
}

/// Re-sign claims with a new key under the given kid.
fn forge(claims: &Value, kid: &str) -> String {
    let key = scim_auth::keys::generate_key(chrono::Utc::now()).expect("key");
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_string());
    encode(&header, claims, &EncodingKey::from_ed_der(&key.private_key)).expect("sign")
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid")
}

#[test]
fn forged_tokens_are_rejected() {
    let s = Server::start_protected(&[]);
    let c = create_client(&s, "users.read");
    let t = token(&s, &c, None);
    assert_eq!(get_users(&s, &t).0, 200);
    // Tampered signature.
    let mut parts_ = t.rsplitn(2, '.');
    let sig = parts_.next().expect("sig");
    let head = parts_.next().expect("head");
    let flipped: String = sig
        .chars()
        .enumerate()
        .map(|(i, ch)| {
            if i == 5 {
                if ch == 'A' {
                    'B'
                } else {
                    'A'
                }
            } else {
                ch
            }
        })
        .collect();
    let (st, h) = get_users(&s, &format!("{head}.{flipped}"));
    assert_eq!(st, 401);
    assert!(h.contains("invalid_token"), "{h}");
    // Right kid, wrong key (wrong signature).
    let claims = claims_of(&t);
    assert_eq!(get_users(&s, &forge(&claims, &kid_of(&t))).0, 401);
    // Unknown kid.
    let (st, h) = get_users(&s, &forge(&claims, "no-such-kid"));
    assert_eq!(st, 401);
    assert!(h.contains("unknown key"), "{h}");
    // Tampered claims (more scopes) under the real signature.
    let mut more = claims.clone();
    more["scope"] = json!(scope("users.write"));
    let body = URL_SAFE_NO_PAD.encode(more.to_string());
    let pieces: Vec<&str> = t.split('.').collect();
    let (st, _) = get_users(&s, &format!("{}.{body}.{}", pieces[0], pieces[2]));
    assert_eq!(st, 401);
    // alg=none.
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let (st, _) = get_users(&s, &format!("{none_header}.{}.", pieces[1]));
    assert_eq!(st, 401);
}

#[test]
fn disabled_and_deleted_clients_lose_their_live_tokens() {
    let s = Server::start_protected(&[]);
    let c = create_client(&s, "users.read");
    let t = token(&s, &c, None);
    assert_eq!(get_users(&s, &t).0, 200);
    scimd(&s, &["clients", "disable", &c.id]);
    std::thread::sleep(Duration::from_millis(2300));
    let (st, h) = get_users(&s, &t);
    assert_eq!(st, 401);
    assert!(h.contains("invalid_token"), "{h}");
    assert_eq!(token_request(&s, &c, &[]).status().as_u16(), 401);
    scimd(&s, &["clients", "enable", &c.id]);
    std::thread::sleep(Duration::from_millis(2300));
    assert_eq!(get_users(&s, &t).0, 200);
    let list = scimd(&s, &["clients", "list", "--json"]);
    assert!(list.contains(&c.id));
    scimd(&s, &["clients", "delete", &c.id]);
    std::thread::sleep(Duration::from_millis(2300));
    assert_eq!(get_users(&s, &t).0, 401);
    assert_eq!(token_request(&s, &c, &[]).status().as_u16(), 401);
}

#[test]
fn processes_on_one_database_share_clients_and_keys_across_rotation() {
    let a = Server::start_protected(&["--issuer", "http://scimd.test"]);
    let c = create_client(&a, "users.read");
    let old = token(&a, &c, None);
    scimd(&a, &["keys", "rotate"]);
    let b = Server::spawn_in(&a.data_dir, &["--issuer", "http://scimd.test"]);
    let fresh = token(&b, &c, None);
    assert_ne!(
        kid_of(&old),
        kid_of(&fresh),
        "the second process signs with the new key"
    );
    // A learns B's new key on first sight; both accept the token of the old key.
    for (server, tok) in [(&a, &fresh), (&b, &old), (&a, &old), (&b, &fresh)] {
        assert_eq!(get_users(server, tok).0, 200);
    }
    let (_, jwks) = parts(b.get("/oauth/jwks").send().expect("jwks"));
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2));
    let keys = scimd(&a, &["keys", "list", "--json"]);
    assert!(keys.contains("retired"));
    b.kill();
}

#[test]
fn test_and_bypass_modes() {
    let s = Server::start_protected(&["--protection", "test"]);
    let c = create_client(&s, "");
    let t = token(&s, &c, None);
    assert_eq!(get_users(&s, &t).0, 200);
    let resp = with(
        s.send_json("POST", "/scim/v2/Users", &user("test-mode")),
        &t,
    )
    .send()
    .expect("post");
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(
        s.get("/scim/v2/Users")
            .send()
            .expect("get")
            .status()
            .as_u16(),
        401
    );
    assert_eq!(get_users(&s, "junk").0, 401);
    let (_, spc) = parts(s.get("/scim/v2/ServiceProviderConfig").send().expect("spc"));
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");

    let open = Server::start();
    assert_eq!(
        open.get("/scim/v2/Users")
            .send()
            .expect("get")
            .status()
            .as_u16(),
        200
    );
    assert_eq!(get_users(&open, "junk").0, 200);
    let (_, spc) = parts(
        open.get("/scim/v2/ServiceProviderConfig")
            .send()
            .expect("spc"),
    );
    assert_eq!(spc["authenticationSchemes"], json!([]));
}

/// Pull `key="value"` out of a WWW-Authenticate header.
fn param(header: &str, key: &str) -> Option<String> {
    let start = header.find(&format!("{key}=\""))? + key.len() + 2;
    let len = header[start..].find('"')?;
    Some(header[start..start + len].to_string())
}

fn uma_exchange(s: &Server, c: &Client, ticket: &str) -> (u16, Value) {
    parts(
        s.client
            .post(s.url("/oxauth/restv1/token"))
            .basic_auth(&c.id, Some(&c.secret))
            .form(&[("grant_type", UMA_GRANT), ("ticket", ticket)])
            .send()
            .expect("uma token"),
    )
}

#[test]
fn uma_ticket_rpt_access() {
    let s = Server::start_protected(&["--protection", "uma"]);
    let c = create_client(&s, "users.read");
    let resp = s.get("/scim/v2/Users").send().expect("get");
    let h = www(&resp);
    assert_eq!(resp.status().as_u16(), 401);
    assert!(h.starts_with("UMA realm=\"scimd\", as_uri=\""), "{h}");
    assert_eq!(param(&h, "as_uri").as_deref(), Some(s.url("").as_str()));
    let ticket = param(&h, "ticket").expect("ticket");
    let (st, body) = uma_exchange(&s, &c, &ticket);
    assert_eq!(st, 200, "{body}");
    let rpt = body["access_token"].as_str().expect("rpt").to_string();
    assert_eq!(
        claims_of(&rpt)["permissions"][0]["resource_scopes"],
        json!([scope("users.read")])
    );
    assert_eq!(get_users(&s, &rpt).0, 200);
    // The RPT does not cover a write: a new ticket, for users.write.
    let resp = with(s.send_json("POST", "/scim/v2/Users", &user("uma")), &rpt)
        .send()
        .expect("post");
    assert_eq!(resp.status().as_u16(), 401);
    let write_ticket = param(&www(&resp), "ticket").expect("ticket");
    // This client may not get users.write.
    let (st, body) = uma_exchange(&s, &c, &write_ticket);
    assert_eq!((st, body["error"].as_str()), (403, Some("request_denied")));
    let writer = create_client(&s, "users.read users.write");
    let (st, body) = uma_exchange(&s, &writer, &write_ticket);
    assert_eq!(st, 200, "{body}");
    // A ticket buys one RPT.
    let (st, again) = uma_exchange(&s, &writer, &write_ticket);
    assert_eq!(
        (st, again["error"].as_str()),
        (400, Some("invalid_grant")),
        "{again}"
    );
    let rpt2 = body["access_token"].as_str().expect("rpt");
    let resp = with(s.send_json("POST", "/scim/v2/Users", &user("uma")), rpt2)
        .send()
        .expect("post");
    assert_eq!(resp.status().as_u16(), 201);
    // A plain access token is not an RPT; a bad ticket is invalid_grant.
    let plain = token(&s, &c, None);
    let resp = with(s.get("/scim/v2/Users"), &plain).send().expect("get");
    assert_eq!(resp.status().as_u16(), 401);
    assert!(www(&resp).starts_with("UMA "));
    let (st, body) = uma_exchange(&s, &c, "not-a-ticket");
    assert_eq!((st, body["error"].as_str()), (400, Some("invalid_grant")));
    // A ticket is not an access token.
    assert_eq!(get_users(&s, &ticket).0, 401);
    let (st, m) = parts(
        s.get("/.well-known/uma2-configuration")
            .send()
            .expect("uma2"),
    );
    assert_eq!(st, 200);
    assert!(m["grant_types_supported"]
        .as_array()
        .is_some_and(|a| a.contains(&json!(UMA_GRANT))));
}

/// A minimal HTTP/1.1 server for test issuers: one connection at a time,
/// `Connection: close`. The handler gets method, path, headers and body.
type Handler = dyn Fn(&str, &str, &HashMap<String, String>, &str) -> (u16, String) + Send + Sync;

fn tiny_server(handler: Arc<Handler>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Ok(clone) = stream.try_clone() else {
                continue;
            };
            let mut reader = BufReader::new(clone);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut it = line.split_whitespace();
            let method = it.next().unwrap_or_default().to_string();
            let path = it.next().unwrap_or_default().to_string();
            let mut headers = HashMap::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let (status, out) = handler(&method, &path, &headers, &String::from_utf8_lossy(&body));
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{out}",
                out.len()
            );
        }
    });
    port
}

#[test]
fn external_jwks_issuer() {
    let k1 = scim_auth::keys::generate_key(chrono::Utc::now()).expect("key");
    let k2 = scim_auth::keys::generate_key(chrono::Utc::now()).expect("key");
    let jwk = |k: &scim_store::clients::SigningKeyRecord| -> Value {
        serde_json::from_str(&k.public_jwk).expect("jwk")
    };
    let published = Arc::new(Mutex::new(json!({"keys": [jwk(&k1)]})));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (p2, f2) = (published.clone(), fetches.clone());
    let port = tiny_server(Arc::new(move |_, path, _, _| {
        if path == "/jwks" {
            f2.fetch_add(1, Ordering::SeqCst);
            (200, p2.lock().map(|v| v.to_string()).unwrap_or_default())
        } else {
            (404, "{}".into())
        }
    }));
    let issuer = "https://idp.example";
    let jwks_url = format!("http://127.0.0.1:{port}/jwks");
    let s = Server::start_protected(&[
        "--external-issuer",
        issuer,
        "--external-jwks-url",
        &jwks_url,
        "--audience",
        "scim-api",
    ]);
    let sign = |k: &scim_store::clients::SigningKeyRecord, claims: Value| {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(k.kid.clone());
        encode(&h, &claims, &EncodingKey::from_ed_der(&k.private_key)).expect("sign")
    };
    let good = json!({"iss": issuer, "aud": ["scim-api", "other"], "sub": "svc", "azp": "ext-client",
        "exp": now() + 300, "scope": scope("users.read")});
    assert_eq!(get_users(&s, &sign(&k1, good.clone())).0, 200);
    assert_eq!(get_users(&s, &sign(&k1, good.clone())).0, 200);
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "the JWKS is cached");
    let resp = with(
        s.send_json("POST", "/scim/v2/Users", &user("ext")),
        &sign(&k1, good.clone()),
    )
    .send()
    .expect("post");
    assert_eq!(resp.status().as_u16(), 403);
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    assert_eq!(get_users(&s, &sign(&k1, wrong_aud)).0, 401);
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 120);
    assert_eq!(get_users(&s, &sign(&k1, expired)).0, 401);
    let mut other_iss = good.clone();
    other_iss["iss"] = json!("https://evil.example");
    assert_eq!(get_users(&s, &sign(&k1, other_iss)).0, 401);
    // The issuer rotates: an unknown kid makes scimd fetch the JWKS again.
    std::thread::sleep(Duration::from_millis(1100));
    if let Ok(mut p) = published.lock() {
        *p = json!({"keys": [jwk(&k1), jwk(&k2)]});
    }
    assert_eq!(get_users(&s, &sign(&k2, good.clone())).0, 200);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    // A key the issuer never published stays unknown.
    let k3 = scim_auth::keys::generate_key(chrono::Utc::now()).expect("key");
    assert_eq!(get_users(&s, &sign(&k3, good)).0, 401);
    // Built-in tokens keep working next to the external issuer.
    let c = create_client(&s, "users.read");
    let own = token(&s, &c, None);
    assert_eq!(get_users(&s, &own).0, 200);
}

#[test]
fn introspection_of_opaque_tokens() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen_auth = Arc::new(Mutex::new(Vec::<String>::new()));
    let (c2, a2) = (calls.clone(), seen_auth.clone());
    let port = tiny_server(Arc::new(move |method, path, headers, body| {
        if method != "POST" || path != "/introspect" {
            return (404, "{}".into());
        }
        c2.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut a) = a2.lock() {
            a.push(headers.get("authorization").cloned().unwrap_or_default());
        }
        let active = json!({"active": true, "client_id": "ext", "scope": scope("users.read"),
            "exp": now() + 300, "iss": "https://idp.example"});
        let reply = if body.contains("token=good-token") {
            active
        } else if body.contains("token=foreign-token") {
            let mut a = active;
            a["iss"] = json!("https://elsewhere.example");
            a
        } else {
            json!({"active": false})
        };
        (200, reply.to_string())
    }));
    let s = Server::start_protected(&[
        "--external-issuer",
        "https://idp.example",
        "--introspection-url",
        &format!("http://127.0.0.1:{port}/introspect"),
        "--introspection-client-id",
        "scimd-rs",
        "--introspection-client-secret",
        "rs-secret",
    ]);
    assert_eq!(get_users(&s, "good-token").0, 200);
    assert_eq!(get_users(&s, "good-token").0, 200);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "introspection results are cached"
    );
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("scimd-rs:rs-secret")
    );
    assert_eq!(
        seen_auth.lock().map(|a| a[0].clone()).unwrap_or_default(),
        expected
    );
    let resp = with(
        s.send_json("POST", "/scim/v2/Users", &user("intro")),
        "good-token",
    )
    .send()
    .expect("post");
    assert_eq!(resp.status().as_u16(), 403);
    let (st, h) = get_users(&s, "revoked-token");
    assert_eq!(st, 401);
    assert!(h.contains("not active"), "{h}");
    assert_eq!(get_users(&s, "foreign-token").0, 401);
}
