//! The `scim-client` library against a live scimd (and the reference server):
//! real processes, real OAuth tokens and UMA tickets over loopback. A small
//! proxy in front of scimd counts token requests and 401s, answers 429 with
//! Retry-After, or makes tokens look longer-lived than they are.

use crate::harness::{reference_binary, scimd, start_reference, Server};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use futures_util::{StreamExt, TryStreamExt};
use scim_client::{
    BulkMethod, BulkOperation, Client, ClientCredentials, Error, GetOptions, Group, Member,
    MultiValued, Name, Patch, RetryPolicy, SearchRequest, SecretMethod, SortOrder, User,
    GLUU_USER_EXTENSION,
};
use serde_json::{json, Value};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ALL_SCOPES: &str = "users.read users.write groups.read groups.write bulk";

/// The harness's servers use blocking HTTP, which must not run inside a
/// runtime: start them outside, then run the async part here.
fn run<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn gluu_scopes(names: &str) -> Vec<String> {
    names
        .split_whitespace()
        .map(|n| format!("https://gluu.org/scim/{n}"))
        .collect()
}

/// `scimd clients create … --json`: the new client's id and secret.
fn oauth_client(s: &Server, scopes: &str) -> ClientCredentials {
    let out = scimd(
        s,
        &[
            "clients", "create", "--name", "lib", "--scope", scopes, "--json",
        ],
    );
    let v: Value = serde_json::from_str(out.trim()).expect("client JSON");
    ClientCredentials::new(
        v["client_id"].as_str().expect("id"),
        v["client_secret"].as_str().expect("secret"),
    )
}

fn user(name: &str) -> User {
    let mut u = User::new(name);
    u.name = Some(Name {
        given_name: Some("Barbara".into()),
        family_name: Some(name.into()),
        ..Name::default()
    });
    u.emails = vec![
        MultiValued::new(format!("{name}@home.example"), "home"),
        MultiValued::new(format!("{name}@work.example"), "work"),
    ];
    u
}

/// What the proxy does and what it saw.
#[derive(Default)]
struct Knobs {
    /// Answer this many SCIM requests with 429.
    throttle: AtomicUsize,
    /// The Retry-After of those 429s, in seconds.
    retry_after: AtomicU64,
    /// Answer with this status instead of 429 (and no Retry-After) when set.
    throttle_status: AtomicU64,
    /// Answer every SCIM request with 401 invalid_token.
    reject_all: AtomicBool,
    /// Rewrite token responses to claim an hour of life.
    lie_about_lifetime: AtomicBool,
    /// Hold SCIM requests this long before forwarding them.
    stall_ms: AtomicU64,
    /// Values of the `X-Scim-Test` header of SCIM requests, in order.
    test_headers: std::sync::Mutex<Vec<String>>,
    scim_requests: AtomicUsize,
    token_requests: AtomicUsize,
    unauthorized: AtomicUsize,
}

struct ProxyState {
    knobs: Arc<Knobs>,
    upstream: String,
    http: reqwest::Client,
}

struct Proxy {
    url: String,
    knobs: Arc<Knobs>,
}

impl Proxy {
    fn count(&self, which: fn(&Knobs) -> &AtomicUsize) -> usize {
        which(&self.knobs).load(Ordering::SeqCst)
    }
}

async fn start_proxy(upstream: &str) -> Proxy {
    let knobs = Arc::new(Knobs::default());
    let state = Arc::new(ProxyState {
        knobs: knobs.clone(),
        upstream: upstream.to_string(),
        http: reqwest::Client::new(),
    });
    let app = axum::Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Proxy {
        url: format!("http://127.0.0.1:{port}"),
        knobs,
    }
}

fn canned(status: u16, headers: &[(&str, String)]) -> Response {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v.as_str());
    }
    b.body(Body::from(
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
               "status": status.to_string(), "detail": "from the test proxy"})
        .to_string(),
    ))
    .expect("response")
}

async fn forward(State(p): State<Arc<ProxyState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|x| x.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("request body");
    let k = &p.knobs;
    let scim = path.starts_with("/scim/");
    if scim {
        k.scim_requests.fetch_add(1, Ordering::SeqCst);
        if let Some(v) = parts
            .headers
            .get("x-scim-test")
            .and_then(|v| v.to_str().ok())
        {
            k.test_headers.lock().expect("lock").push(v.to_string());
        }
        let stall = k.stall_ms.load(Ordering::SeqCst);
        if stall > 0 {
            tokio::time::sleep(Duration::from_millis(stall)).await;
        }
        let throttled = k
            .throttle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if throttled {
            let status = k.throttle_status.load(Ordering::SeqCst) as u16;
            if status != 0 {
                return canned(status, &[]);
            }
            let after = k.retry_after.load(Ordering::SeqCst).to_string();
            return canned(429, &[("Retry-After", after)]);
        }
        if k.reject_all.load(Ordering::SeqCst) {
            k.unauthorized.fetch_add(1, Ordering::SeqCst);
            let www = "Bearer error=\"invalid_token\", error_description=\"rejected by the proxy\"";
            return canned(401, &[("WWW-Authenticate", www.to_string())]);
        }
    }
    let token = path.starts_with("/oauth/token");
    if token {
        k.token_requests.fetch_add(1, Ordering::SeqCst);
    }
    let mut out = p
        .http
        .request(parts.method.clone(), format!("{}{path}", p.upstream));
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            out = out.header(name, value);
        }
    }
    let resp = out.body(body.to_vec()).send().await.expect("upstream");
    let status = resp.status();
    let headers = resp.headers().clone();
    let mut bytes = resp.bytes().await.expect("upstream body").to_vec();
    // PROXY_DEBUG=1 shows what went through, to debug a failing test.
    if std::env::var_os("PROXY_DEBUG").is_some() {
        eprintln!("proxy {} {path} -> {status}", parts.method);
    }
    if status.as_u16() == 401 {
        k.unauthorized.fetch_add(1, Ordering::SeqCst);
    }
    if token && status.is_success() && k.lie_about_lifetime.load(Ordering::SeqCst) {
        let mut v: Value = serde_json::from_slice(&bytes).expect("token JSON");
        v["expires_in"] = json!(3600);
        bytes = serde_json::to_vec(&v).expect("JSON");
    }
    let mut b = Response::builder().status(status);
    for (name, value) in &headers {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            b = b.header(name, value);
        }
    }
    b.body(Body::from(bytes)).expect("response")
}

/// Create `n` users `prefix-00`… through the library, in parallel tasks.
async fn load_users(c: &Client, prefix: &str, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let c = c.clone();
            let name = format!("{prefix}-{i:02}");
            tokio::spawn(async move { c.users().create(&User::new(name)).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("create");
    }
}

#[test]
fn crud_search_etags_and_errors_with_oauth() {
    let s = Server::start_protected(&[]);
    let scopes = format!("{ALL_SCOPES} all-resources.search");
    let creds = oauth_client(&s, &scopes).method(SecretMethod::Post);
    run(async {
        // The token endpoint is discovered from /.well-known/openid-configuration.
        let c = Client::builder(s.url("/scim/v2"))
            .client_credentials(creds)
            .build()
            .expect("client");
        let caps = c.discover().await.expect("discover");
        assert!(caps.cursor_paging && caps.patch && caps.etag);
        assert!(caps.bulk.is_some());
        assert!(caps.resource_type("/Users").is_some());
        assert!(caps.schemas.len() >= 2);

        // Create with a custom attribute, read it back.
        scimd(
            &s,
            &[
                "attributes",
                "add",
                "--name",
                "department",
                "--type",
                "string",
            ],
        );
        tokio::time::sleep(Duration::from_millis(3500)).await; // picked up within seconds
        let mut u = user("bjensen");
        u.set_extension(GLUU_USER_EXTENSION, json!({"department": "R&D"}));
        u.password = Some("t1meMa$heen".into());
        let created = c.users().create(&u).await.expect("create");
        let id = created.id.clone().expect("id");
        assert_eq!(created.user_name, "bjensen");
        assert!(created.password.is_none());
        assert_eq!(
            created.extension_attribute(GLUU_USER_EXTENSION, "department"),
            Some(&json!("R&D"))
        );
        let etag = created
            .meta
            .as_ref()
            .and_then(|m| m.version.clone())
            .expect("etag");

        // If-None-Match: 304 as None while unchanged.
        let o = GetOptions {
            if_none_match: Some(etag.clone()),
            ..GetOptions::default()
        };
        assert!(c.users().get_with(&id, &o).await.expect("get").is_none());
        let o = GetOptions {
            attributes: vec!["userName".into()],
            ..GetOptions::default()
        };
        let slim = c
            .users()
            .get_with(&id, &o)
            .await
            .expect("get")
            .expect("200");
        assert!(slim.emails.is_empty() && slim.user_name == "bjensen");

        // PATCH builder, with the ETag; then the old ETag no longer matches.
        let p = Patch::new()
            .replace("name.givenName", "Joey")
            .remove("emails[type eq \"work\"]");
        let patched = c
            .users()
            .patch(&id, &p, Some(&etag))
            .await
            .expect("patch")
            .expect("body");
        assert_eq!(
            patched.name.as_ref().and_then(|n| n.given_name.as_deref()),
            Some("Joey")
        );
        assert_eq!(patched.emails.len(), 1);
        assert_eq!(patched.emails[0].type_.as_deref(), Some("home"));
        let stale = c.users().replace(&id, &patched, Some(&etag)).await;
        assert_eq!(stale.expect_err("412").status(), Some(412));
        let mut fresh = c.users().get(&id).await.expect("get");
        fresh.display_name = Some("Babs".into());
        let v = fresh.meta.as_ref().and_then(|m| m.version.clone());
        let replaced = c
            .users()
            .replace(&id, &fresh, v.as_deref())
            .await
            .expect("put");
        assert_eq!(replaced.display_name.as_deref(), Some("Babs"));

        // Typed SCIM errors.
        let dup = c.users().create(&user("bjensen")).await.expect_err("409");
        assert_eq!(
            (dup.status(), dup.scim_type()),
            (Some(409), Some("uniqueness"))
        );
        assert!(dup.to_string().starts_with("409 uniqueness: "), "{dup}");
        let bad = c
            .users()
            .search_page(&SearchRequest::filter("userName eq"))
            .await
            .expect_err("400");
        assert_eq!(bad.scim_type(), Some("invalidFilter"));

        // Searches: a stream over every page (cursor paging), GET and POST.
        load_users(&c, "walk", 23).await;
        for use_post in [false, true] {
            let q = SearchRequest {
                filter: Some("userName sw \"walk-\"".into()),
                sort_by: Some("userName".into()),
                sort_order: Some(SortOrder::Descending),
                count: Some(5),
                use_post,
                ..SearchRequest::default()
            };
            let names: Vec<String> = c
                .users()
                .search(q)
                .map_ok(|u| u.user_name)
                .try_collect()
                .await
                .expect("search");
            let mut want: Vec<String> = (0..23).map(|i| format!("walk-{i:02}")).collect();
            want.reverse();
            assert_eq!(names, want, "post: {use_post}");
        }
        // Index paging, asked for explicitly.
        let q = SearchRequest {
            filter: Some("userName sw \"walk-\"".into()),
            start_index: Some(4),
            count: Some(6),
            ..SearchRequest::default()
        };
        let n = c.users().search(q).count().await;
        assert_eq!(n, 20);
        assert_eq!(
            c.users()
                .count(Some("userName sw \"walk-1\""))
                .await
                .expect("count"),
            10
        );

        // A root search spans resource types.
        let q = SearchRequest {
            filter: Some("userName eq \"bjensen\"".into()),
            use_post: true,
            ..SearchRequest::default()
        };
        let across = c.resources("/").search_page(&q).await.expect("root search");
        assert_eq!(across.total_results, 1);
        assert_eq!(across.resources[0]["id"], json!(id));

        // Raw JSON for any endpoint; delete; then 404.
        let raw = c.resources("/Users").get(&id).await.expect("raw");
        assert_eq!(raw["userName"], "bjensen");
        c.users().delete(&id, None).await.expect("delete");
        let gone = c.users().get(&id).await.expect_err("404");
        assert_eq!(gone.status(), Some(404));
        assert!(matches!(gone, Error::Scim { status: 404, .. }));
    });
}

#[test]
fn groups_headers_bulk_and_feeds() {
    let s = Server::start_protected(&["--bulk-max-operations", "3"]);
    let creds = oauth_client(&s, ALL_SCOPES);
    run(async {
        let since = chrono::Utc::now() - chrono::Duration::seconds(1);
        let c = Client::builder(s.url("/identity/restv1/scim/v2"))
            .client_credentials(creds.scopes(gluu_scopes(ALL_SCOPES)))
            .header("X-Provisioner", "e2e")
            .build()
            .expect("client");
        assert_eq!(
            c.discover()
                .await
                .expect("caps")
                .bulk
                .map(|b| b.max_operations),
            Some(3)
        );

        // Bulk: 7 operations over 3 requests; the group names users defined
        // after it, and a PATCH refers to the group by bulkId.
        let mut ops = vec![BulkOperation::post(
            "/Groups",
            "g",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "team",
                   "members": [{"value": "bulkId:u1"}, {"value": "bulkId:u4"}]}),
        )];
        for i in 1..=5 {
            ops.push(BulkOperation::post(
                "/Users",
                format!("u{i}"),
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("bulk{i}")}),
            ));
        }
        ops.push(BulkOperation::patch(
            "/Groups/bulkId:g",
            &Patch::new().replace("displayName", "team-renamed"),
        ));
        let results = c.bulk(ops, None).await.expect("bulk");
        assert_eq!(results.len(), 7);
        for r in &results {
            assert!(r.error().is_none(), "{r:?}");
        }
        assert_eq!(results[0].method, BulkMethod::Post);
        assert_eq!(results[0].bulk_id.as_deref(), Some("g"));
        let gid = results[0].id().expect("group id").to_string();
        let group = c.groups().get(&gid).await.expect("group");
        assert_eq!(group.display_name, "team-renamed");
        let mut members: Vec<String> = group
            .members
            .iter()
            .filter_map(|m| m.value.clone())
            .collect();
        members.sort();
        let mut want = vec![
            results[1].id().expect("u1").to_string(),
            results[4].id().expect("u4").to_string(),
        ];
        want.sort();
        assert_eq!(members, want);

        // failOnErrors counts across requests: two failures stop the rest.
        let dup = |n: u32| {
            BulkOperation::post(
                "/Users",
                format!("d{n}"),
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bulk1"}),
            )
        };
        let ops = vec![dup(1), dup(2), dup(3), dup(4), dup(5), dup(6), dup(7)];
        let results = c.bulk(ops, Some(2)).await.expect("bulk");
        assert!(results.len() < 7, "stopped early: {}", results.len());
        assert!(results
            .iter()
            .all(|r| r.error().and_then(|e| e.status()) == Some(409)));

        // Group created through the typed API, with the overhead header per call.
        let mut g = Group::new("admins");
        g.members = vec![Member::new(id_of(&c, "bulk2").await)];
        let lean = c
            .with_header("Group-Overhead-Bypass", "true")
            .expect("header");
        let admins = lean.groups().create(&g).await.expect("group");
        assert_eq!(admins.members.len(), 1);

        // Change feed: every create so far, then nothing new.
        let all: Vec<_> = c.changes(None).try_collect().await.expect("feed");
        let created = all.iter().filter(|ch| ch.op == "created").count();
        assert_eq!(created, 7, "{all:?}"); // 5 users, 2 groups
        assert!(all.iter().any(|ch| ch.op == "updated" && ch.id == gid));
        let page = c.changes_page(None, Some(2)).await.expect("page");
        assert_eq!(page.changes.len(), 2);
        assert!(page.more);
        let mut cursor = page.next_cursor.clone();
        let mut rest = 0;
        loop {
            let p = c
                .changes_page(cursor.as_deref(), Some(3))
                .await
                .expect("page");
            rest += p.changes.len();
            cursor = p.next_cursor.clone();
            if !p.more {
                break;
            }
        }
        assert_eq!(rest + 2, all.len());
        let tail: Vec<_> = c.changes(cursor).try_collect().await.expect("tail");
        assert!(tail.is_empty());

        // Gluu's UpdatedUsers.
        let upd = c.users_changed_after(since, 0, 3).await.expect("updated");
        assert_eq!(upd.total, 5);
        assert_eq!(upd.users.len(), 3);
        assert!(upd.latest_update_at.is_some());
    });
}

async fn id_of(c: &Client, user_name: &str) -> String {
    let q = SearchRequest::filter(format!("userName eq \"{user_name}\""));
    let page = c.users().search_page(&q).await.expect("search");
    page.resources[0].id.clone().expect("id")
}

#[test]
fn tokens_are_renewed_before_they_expire() {
    let s = Server::start_protected(&["--token-lifetime", "5"]);
    let creds = oauth_client(&s, ALL_SCOPES);
    run(async {
        let proxy = start_proxy(&s.url("")).await;
        let c = Client::builder(format!("{}/scim/v2", proxy.url))
            .client_credentials(creds.token_url(format!("{}/oauth/token", proxy.url)))
            .build()
            .expect("client");
        load_users(&c, "long", 40).await;
        // Concurrent tasks wait for one token request instead of each making one.
        let tokens = proxy.count(|k| &k.token_requests);
        assert!(
            tokens <= 2,
            "{tokens} token requests for 40 parallel creates"
        );
        // A long paged read: 8 pages, 0.8 s each (6.4 s; tokens live 5 s).
        let started = Instant::now();
        let q = SearchRequest {
            count: Some(5),
            ..SearchRequest::default()
        };
        let mut stream = Box::pin(c.users().search(q));
        let mut seen = 0;
        while let Some(u) = stream.next().await {
            u.expect("user");
            seen += 1;
            if seen % 5 == 0 {
                tokio::time::sleep(Duration::from_millis(800)).await;
            }
        }
        assert_eq!(seen, 40);
        assert!(started.elapsed() >= Duration::from_millis(6400));
        let fetched = proxy.count(|k| &k.token_requests) - tokens;
        assert!(
            fetched >= 1,
            "renewed during the read: {fetched} new tokens"
        );
        assert_eq!(
            proxy.count(|k| &k.unauthorized),
            0,
            "renewed before expiry, never refused"
        );
    });
}

#[test]
fn a_refused_token_is_renewed_once() {
    let s = Server::start_protected(&["--token-lifetime", "2"]);
    let creds = oauth_client(&s, ALL_SCOPES);
    run(async {
        let proxy = start_proxy(&s.url("")).await;
        let c = Client::builder(format!("{}/scim/v2", proxy.url))
            .client_credentials(creds.token_url(format!("{}/oauth/token", proxy.url)))
            .build()
            .expect("client");
        load_users(&c, "page", 9).await;
        // From now on the proxy claims tokens live an hour; scimd still rejects
        // them after two seconds, so only a 401 tells the client.
        proxy.knobs.lie_about_lifetime.store(true, Ordering::SeqCst);
        // Let the honest token go stale, so the read starts with a lying one.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let tokens_before = proxy.count(|k| &k.token_requests);
        let refused_before = proxy.count(|k| &k.unauthorized);
        let q = SearchRequest {
            count: Some(3),
            ..SearchRequest::default()
        };
        let mut stream = Box::pin(c.users().search(q));
        let mut seen = 0;
        while let Some(u) = stream.next().await {
            u.expect("the read survives expired tokens");
            seen += 1;
            if seen % 3 == 0 {
                tokio::time::sleep(Duration::from_millis(2200)).await;
            }
        }
        assert_eq!(seen, 9);
        let refused = proxy.count(|k| &k.unauthorized) - refused_before;
        let tokens = proxy.count(|k| &k.token_requests) - tokens_before;
        assert!(
            refused >= 2,
            "pages 2 and 3 met an expired token: {refused}"
        );
        assert_eq!(tokens, refused + 1, "one new token per refusal");

        // A server that refuses every token: one renewal, then an auth error.
        proxy.knobs.reject_all.store(true, Ordering::SeqCst);
        let before = proxy.count(|k| &k.scim_requests);
        let e = c.users().count(None).await.expect_err("401");
        assert!(
            matches!(
                e,
                Error::Auth {
                    status: Some(401),
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("from the test proxy"), "{e}");
        assert_eq!(proxy.count(|k| &k.scim_requests) - before, 2);

        // Bad credentials: an auth error naming the token endpoint's refusal, no secret.
        let wrong = ClientCredentials::new("no-such-client", "wrong-secret")
            .token_url(s.url("/oauth/token"));
        let c = Client::builder(s.url("/scim/v2"))
            .client_credentials(wrong)
            .build()
            .expect("client");
        let e = c.users().count(None).await.expect_err("refused");
        assert!(
            matches!(
                e,
                Error::Auth {
                    status: Some(400 | 401),
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("invalid_client"), "{e}");
        assert!(!e.to_string().contains("wrong-secret"));
    });
}

#[test]
fn retries_honour_retry_after_within_the_budget() {
    let s = Server::start();
    run(async {
        let proxy = start_proxy(&s.url("")).await;
        let c = Client::builder(format!("{}/scim/v2", proxy.url))
            .build()
            .expect("client");
        // Two 429s with Retry-After: 1, then the real answer.
        proxy.knobs.retry_after.store(1, Ordering::SeqCst);
        proxy.knobs.throttle.store(2, Ordering::SeqCst);
        let started = Instant::now();
        let created = c
            .users()
            .create(&User::new("patient"))
            .await
            .expect("created after 429s");
        let took = started.elapsed();
        assert!(took >= Duration::from_secs(2), "waited as told: {took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert_eq!(proxy.count(|k| &k.scim_requests), 3);
        assert!(created.id.is_some());

        // 4xx are never retried.
        let before = proxy.count(|k| &k.scim_requests);
        let e = c.users().get("no-such-id").await.expect_err("404");
        assert_eq!(e.status(), Some(404));
        assert_eq!(proxy.count(|k| &k.scim_requests) - before, 1);

        // A budget too small for the wait asked for: give up at once with the 429.
        let tight = Client::builder(format!("{}/scim/v2", proxy.url))
            .retry(RetryPolicy {
                budget: Duration::from_millis(1500),
                ..RetryPolicy::default()
            })
            .build()
            .expect("client");
        proxy.knobs.throttle.store(10, Ordering::SeqCst);
        let before = proxy.count(|k| &k.scim_requests);
        let started = Instant::now();
        let e = tight.users().count(None).await.expect_err("429");
        assert_eq!(e.status(), Some(429));
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert_eq!(
            proxy.count(|k| &k.scim_requests) - before,
            2,
            "first try and one retry"
        );
        proxy.knobs.throttle.store(0, Ordering::SeqCst);

        // 502/503/504 without Retry-After: jittered exponential backoff.
        let backoff = Client::builder(format!("{}/scim/v2", proxy.url))
            .retry(RetryPolicy {
                base_delay: Duration::from_millis(200),
                ..RetryPolicy::default()
            })
            .build()
            .expect("client");
        for status in [502, 503, 504] {
            proxy.knobs.throttle_status.store(status, Ordering::SeqCst);
            proxy.knobs.throttle.store(2, Ordering::SeqCst);
            let before = proxy.count(|k| &k.scim_requests);
            let started = Instant::now();
            backoff
                .users()
                .count(None)
                .await
                .expect("after two failures");
            // Waits of [100, 200] then [200, 400] ms.
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(300), "{status}: {took:?}");
            assert_eq!(proxy.count(|k| &k.scim_requests) - before, 3, "{status}");
        }
        proxy.knobs.throttle_status.store(0, Ordering::SeqCst);

        // Timeouts: a GET is tried again, a POST is not (it may have been applied).
        let quick = Client::builder(format!("{}/scim/v2", proxy.url))
            .timeout(Duration::from_millis(300))
            .retry(RetryPolicy {
                max_retries: 2,
                base_delay: Duration::from_millis(10),
                ..RetryPolicy::default()
            })
            .build()
            .expect("client");
        proxy.knobs.stall_ms.store(1000, Ordering::SeqCst);
        let before = proxy.count(|k| &k.scim_requests);
        let e = quick.users().count(None).await.expect_err("timeout");
        assert!(matches!(e, Error::Transport(_)), "{e}");
        assert_eq!(proxy.count(|k| &k.scim_requests) - before, 3);
        let before = proxy.count(|k| &k.scim_requests);
        let e = quick
            .users()
            .create(&User::new("slow"))
            .await
            .expect_err("timeout");
        assert!(matches!(e, Error::Transport(_)), "{e}");
        assert_eq!(proxy.count(|k| &k.scim_requests) - before, 1);
        proxy.knobs.stall_ms.store(0, Ordering::SeqCst);

        // Headers of the client, and of one derived handle, on every request.
        let tagged = Client::builder(format!("{}/scim/v2", proxy.url))
            .header("X-Scim-Test", "client")
            .build()
            .expect("client");
        tagged.users().count(None).await.expect("count");
        let one_call = tagged.with_header("X-Scim-Test", "call").expect("header");
        one_call.users().count(None).await.expect("count");
        tagged.users().count(None).await.expect("count");
        let seen = proxy.knobs.test_headers.lock().expect("lock").clone();
        assert_eq!(seen, ["client", "call", "client"]);

        // Connection refused: retried with backoff, then a transport error.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = dead.local_addr().expect("addr").port();
        drop(dead);
        let c = Client::builder(format!("http://127.0.0.1:{port}/scim/v2"))
            .retry(RetryPolicy {
                max_retries: 3,
                base_delay: Duration::from_millis(50),
                ..RetryPolicy::default()
            })
            .build()
            .expect("client");
        let started = Instant::now();
        let e = c.users().count(None).await.expect_err("refused");
        assert!(matches!(e, Error::Transport(_)), "{e}");
        assert!(e.to_string().contains("after 3 retries"), "{e}");
        // 25+50+100 ms at least (half of each step is fixed).
        assert!(started.elapsed() >= Duration::from_millis(175));
    });
}

#[test]
fn uma_tickets_are_exchanged_for_rpts() {
    let s = Server::start_protected(&["--protection", "uma"]);
    let creds = oauth_client(&s, "users.read users.write");
    run(async {
        let proxy = start_proxy(&s.url("")).await;
        // The token endpoint comes from the challenge's as_uri.
        let c = Client::builder(format!("{}/scim/v2", proxy.url))
            .uma(creds)
            .build()
            .expect("client");
        let a = c.users().create(&user("uma-a")).await.expect("create");
        c.users().create(&user("uma-b")).await.expect("create");
        let id = a.id.clone().expect("id");
        assert_eq!(c.users().get(&id).await.expect("get").user_name, "uma-a");
        let names: Vec<String> = c
            .users()
            .search(SearchRequest::filter("userName sw \"uma-\""))
            .map_ok(|u| u.user_name)
            .try_collect()
            .await
            .expect("search");
        assert_eq!(names.len(), 2);
        c.users()
            .patch(&id, &Patch::new().replace("displayName", "A"), None)
            .await
            .expect("patch");
        c.users().delete(&id, None).await.expect("delete");
        // One ticket per kind of access (read, write), each RPT reused after.
        assert_eq!(proxy.count(|k| &k.unauthorized), 2);

        // A client that may not write gets an auth error, not a loop.
        let reader = oauth_client(&s, "users.read");
        let c = Client::builder(format!("{}/scim/v2", proxy.url))
            .uma(reader)
            .build()
            .expect("client");
        let e = c.users().create(&user("uma-c")).await.expect_err("denied");
        assert!(
            matches!(
                e,
                Error::Auth {
                    status: Some(403),
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("request_denied"), "{e}");
    });
}

#[test]
fn works_against_the_reference_server() {
    let Some(bin) = reference_binary() else {
        return;
    };
    let server = start_reference(&bin, "ref-token");
    run(async {
        let base = format!("http://127.0.0.1:{}/v2", server.port);
        let anonymous = Client::builder(&base).build().expect("client");
        let e = anonymous
            .users()
            .count(None)
            .await
            .expect_err("needs the token");
        assert_eq!(e.status(), Some(401));
        let c = Client::builder(&base)
            .bearer_token("ref-token")
            .build()
            .expect("client");
        let caps = c.discover().await.expect("discover");
        assert!(!caps.cursor_paging, "the reference server pages by index");

        let created = c
            .users()
            .create(&user("ref-bjensen"))
            .await
            .expect("create");
        let id = created.id.clone().expect("id");
        let got = c.users().get(&id).await.expect("get");
        assert_eq!(got.user_name, "ref-bjensen");
        assert_eq!(got.emails.len(), 2);
        let patched = c
            .users()
            .patch(
                &id,
                &Patch::new()
                    .replace("name.givenName", "Joey")
                    .remove("emails[type eq \"work\"]"),
                None,
            )
            .await
            .expect("patch");
        let now = match patched {
            Some(u) => u,
            None => c.users().get(&id).await.expect("get"),
        };
        assert_eq!(now.name.and_then(|n| n.given_name).as_deref(), Some("Joey"));
        assert_eq!(now.emails.len(), 1);

        // Index paging over several pages.
        load_users(&c, "ref", 12).await;
        let q = SearchRequest {
            filter: Some("userName sw \"ref-\"".into()),
            count: Some(5),
            ..SearchRequest::default()
        };
        let names: Vec<String> = c
            .users()
            .search(q)
            .map_ok(|u| u.user_name)
            .try_collect()
            .await
            .expect("search");
        assert_eq!(names.len(), 13, "{names:?}");
        assert!(names.contains(&"ref-bjensen".to_string()));

        c.users().delete(&id, None).await.expect("delete");
        assert_eq!(
            c.users().get(&id).await.expect_err("gone").status(),
            Some(404)
        );
    });
}

#[test]
fn typed_fido_devices() {
    let s = Server::start();
    let (_, owner) = crate::harness::parts(s.post(
        "/scim/v2/Users",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "owner"}),
    ));
    let owner = owner["id"].as_str().expect("id").to_string();
    for (endpoint, body) in [
        (
            "FidoDevices",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:FidoDevice"],
                "userId": owner, "creationDate": "2024-01-02T03:04:05Z", "application": "https://idp.example.org",
                "counter": 7, "deviceKeyHandle": "kh-1", "deviceHashCode": "123",
                "deviceData": "{\"platform\":\"ios\"}", "status": "active", "displayName": "My phone"}),
        ),
        (
            "Fido2Devices",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Fido2Device"],
                "userId": owner, "creationDate": "2024-01-02T03:04:05Z", "counter": 1,
                "status": "registered", "displayName": "Key"}),
        ),
    ] {
        let resp = s.post(&format!("/admin/devices/{endpoint}"), &body);
        assert_eq!(resp.status().as_u16(), 201);
    }
    run(async {
        let c = Client::builder(s.url("/scim/v2")).build().expect("client");
        let q = SearchRequest::filter(format!("userId eq \"{owner}\""));
        let phones: Vec<_> = c
            .fido_devices()
            .search(q.clone())
            .try_collect()
            .await
            .expect("search");
        assert_eq!(phones.len(), 1);
        let phone = &phones[0];
        assert_eq!(phone.counter, Some(7));
        assert_eq!(phone.device_key_handle.as_deref(), Some("kh-1"));
        assert_eq!(
            phone.attribute("deviceData"),
            Some(&json!("{\"platform\":\"ios\"}"))
        );
        let id = phone.id.clone().expect("id");
        let mut renamed = c.fido_devices().get(&id).await.expect("get");
        renamed.nickname = Some("work phone".into());
        let put = c
            .fido_devices()
            .replace(&id, &renamed, None)
            .await
            .expect("put");
        assert_eq!(put.nickname.as_deref(), Some("work phone"));
        let e = c
            .fido_devices()
            .patch(&id, &Patch::new().replace("counter", 99), None)
            .await
            .expect_err("immutable");
        assert_eq!((e.status(), e.scim_type()), (Some(400), Some("mutability")));

        let keys: Vec<_> = c
            .fido2_devices()
            .search(q)
            .try_collect()
            .await
            .expect("search");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].status.as_deref(), Some("registered"));
        let key_id = keys[0].id.clone().expect("id");
        let patched = c
            .fido2_devices()
            .patch(
                &key_id,
                &Patch::new().replace("displayName", "Yubikey"),
                None,
            )
            .await
            .expect("patch")
            .expect("body");
        assert_eq!(patched.display_name.as_deref(), Some("Yubikey"));
        c.fido2_devices()
            .delete(&key_id, None)
            .await
            .expect("delete");
        assert_eq!(c.fido2_devices().count(None).await.expect("count"), 0);
    });
}
