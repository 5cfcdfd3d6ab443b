//! Running scimd in production, end to end: health probes, request ids,
//! metrics (on their own listener and to a token on the main one), rate
//! limits, SCIM error bodies for every rejection, TLS with HTTP/2 and
//! certificate rotation, and a SIGTERM that lets requests in flight finish.

use crate::harness::{parts, scimd, Server};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A response that must be a SCIM error with `status`, a detail and no scimType.
fn assert_scim_error(r: reqwest::blocking::Response, status: u16) -> Value {
    crate::harness::assert_scim_error(r, status, None)
}

#[test]
fn health_probes_answer_without_a_token() {
    let s = Server::start_protected(&[]);
    let (st, body) = parts(s.get("/health/live").send().expect("live"));
    assert_eq!((st, body["status"].as_str()), (200, Some("up")), "{body}");
    let (st, body) = parts(s.get("/health/ready").send().expect("ready"));
    assert_eq!(
        (st, body["status"].as_str()),
        (200, Some("ready")),
        "{body}"
    );
    // The API itself still wants a token.
    assert_eq!(s.get("/scim/v2/Users").send().expect("users").status(), 401);
}

#[test]
fn every_response_carries_a_request_id() {
    let s = Server::start();
    let r = s
        .get("/scim/v2/Users")
        .header("X-Request-Id", "job-42.step:7")
        .send()
        .expect("get");
    assert_eq!(r.headers()["x-request-id"], "job-42.step:7");
    // One that could forge a log line is replaced, as is a missing one.
    let r = s
        .get("/scim/v2/Users")
        .header("X-Request-Id", "x\" level=ERROR msg=forged")
        .send()
        .expect("get");
    let made = r.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    assert!(!made.contains(' ') && !made.is_empty(), "{made}");
    let other = s.get("/nothing-here").send().expect("get");
    assert_ne!(other.headers()["x-request-id"].to_str().expect("id"), made);
}

#[test]
fn router_rejections_are_scim_errors() {
    let s = Server::start_with(&["--max-url-bytes", "2048", "--max-header-bytes", "4096"]);
    let body = assert_scim_error(s.get("/scim/v2/Users/%FF%FE").send().expect("get"), 400);
    assert!(
        body["detail"].as_str().unwrap_or("").contains("UTF-8"),
        "{body}"
    );
    assert_scim_error(s.get("/scim/v2/NoSuchThing").send().expect("get"), 404);
    assert_scim_error(s.get("/no/such/path").send().expect("get"), 404);
    let long = format!(
        "/scim/v2/Users?filter=userName%20eq%20%22{}%22",
        "a".repeat(3000)
    );
    assert_scim_error(s.get(&long).send().expect("get"), 414);
    let big = "b".repeat(5000);
    assert_scim_error(
        s.get("/scim/v2/Users")
            .header("X-Big", big)
            .send()
            .expect("get"),
        431,
    );
    // A form body where JSON is expected: axum's own rejection, as SCIM.
    let r = s
        .client
        .post(s.url("/scim/v2/Users"))
        .header("content-type", "text/plain")
        .body("userName=x")
        .send()
        .expect("post");
    assert_scim_error(r, 415);
}

#[test]
fn the_gluu_extension_is_published_before_any_custom_attribute() {
    let s = Server::start();
    let urn = "urn:ietf:params:scim:schemas:extension:gluu:2.0:User";
    let (st, body) = parts(
        s.get(&format!("/scim/v2/Schemas/{urn}"))
            .send()
            .expect("get"),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["id"], urn);
    assert_eq!(body["attributes"], json!([]), "{body}");
    let (st, body) = parts(s.get("/scim/v2/ResourceTypes/User").send().expect("get"));
    assert_eq!(st, 200);
    let ext: Vec<&str> = body["schemaExtensions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["schema"].as_str())
        .collect();
    assert!(ext.contains(&urn), "{body}");
}

#[test]
fn scim_configuration_lists_the_endpoints_as_gluu_does() {
    let s = Server::start();
    for (path, base) in [
        ("/scim/scim-configuration", "/scim/v2"),
        (
            "/identity/restv1/scim-configuration",
            "/identity/restv1/scim/v2",
        ),
    ] {
        let (st, body) = parts(s.get(path).send().expect("get"));
        assert_eq!(st, 200, "{body}");
        let c = &body[0];
        assert_eq!(c["version"], "2.0", "{body}");
        assert_eq!(
            c["user_endpoint"],
            s.url(&format!("{base}/Users")),
            "{body}"
        );
        assert_eq!(
            c["group_endpoint"],
            s.url(&format!("{base}/Groups")),
            "{body}"
        );
        assert_eq!(c["bulk_endpoint"], s.url(&format!("{base}/Bulk")), "{body}");
        assert_eq!(c["token_endpoint"], s.url("/oauth/token"), "{body}");
        // Every URL it names answers.
        let spc = c["service_provider_endpoint"].as_str().expect("spc");
        assert_eq!(s.client.get(spc).send().expect("spc").status(), 200);
    }
}

/// An access token of a new client with `scopes` (short names, or "all").
fn token_with(s: &Server, scopes: &str) -> String {
    client_token(s, scopes).1
}

/// A new client with `scopes`: its id and an access token of it.
fn client_token(s: &Server, scopes: &str) -> (String, String) {
    let out = scimd(
        s,
        &[
            "clients", "create", "--name", "ops", "--scope", scopes, "--json",
        ],
    );
    let c: Value = serde_json::from_str(out.trim()).expect("client");
    let (st, body) = parts(
        s.client
            .post(s.url("/oauth/token"))
            .basic_auth(
                c["client_id"].as_str().expect("id"),
                c["client_secret"].as_str(),
            )
            .form(&[("grant_type", "client_credentials")])
            .send()
            .expect("token"),
    );
    assert_eq!(st, 200, "{body}");
    let id = c["client_id"].as_str().expect("id").to_string();
    (
        id,
        body["access_token"].as_str().expect("token").to_string(),
    )
}

#[test]
fn metrics_are_served_to_the_metrics_scope_and_on_their_own_listener() {
    let mport = free_port();
    let maddr = format!("127.0.0.1:{mport}");
    let s = Server::start_protected(&["--metrics-listen", &maddr]);
    let reader = token_with(&s, "users.read");
    let metrics = token_with(&s, "metrics");
    let r = s
        .get("/scim/v2/Users")
        .bearer_auth(&reader)
        .send()
        .expect("users");
    assert_eq!(r.status(), 200);
    // The main listener wants a token with the metrics scope.
    let r = s.get("/metrics").send().expect("metrics");
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert_scim_error(
        s.get("/metrics").bearer_auth(&reader).send().expect("m"),
        403,
    );
    let r = s
        .get("/metrics")
        .bearer_auth(&metrics)
        .send()
        .expect("metrics");
    assert_eq!(r.status(), 200);
    let text = r.text().expect("text");
    for needle in [
        "scimd_http_requests_total{route=\"/scim/v2/{endpoint}\",method=\"GET\",status=\"200\"}",
        "scimd_http_request_duration_seconds_bucket{route=\"/scim/v2/{endpoint}\",method=\"GET\"",
        "scimd_tokens_issued_total{grant=\"client_credentials\"}",
    ]
    .into_iter()
    .chain(store_metrics())
    {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    // The metrics listener needs none, and serves nothing else.
    let open = reqwest::blocking::get(format!("http://{maddr}/metrics")).expect("metrics");
    assert_eq!(open.status(), 200);
    assert!(open
        .text()
        .expect("text")
        .contains("scimd_http_requests_total"));
    let users = reqwest::blocking::get(format!("http://{maddr}/scim/v2/Users")).expect("users");
    assert_eq!(users.status(), 404);
}

/// What the store reports, by the backend the e2e suite runs on.
fn store_metrics() -> [&'static str; 3] {
    if std::env::var("SCIMD_E2E_DATABASE").is_ok_and(|v| v == "postgres") {
        [
            "scimd_store_wait_seconds_bucket{queue=\"postgres\"",
            "scimd_store_pool_connections{state=\"idle\"}",
            "scimd_store_pool_connections{state=\"busy\"}",
        ]
    } else {
        [
            "scimd_store_commit_batch_size_bucket",
            "scimd_store_wait_seconds_bucket{queue=\"writer\"",
            "scimd_store_queue_depth{queue=\"writer\"} 0",
        ]
    }
}

#[test]
fn a_source_address_over_its_rate_gets_429_with_retry_after() {
    let s = Server::start_with(&["--rate-limit-ip", "5"]);
    let mut limited = None;
    for _ in 0..40 {
        let r = s.get("/scim/v2/Users").send().expect("get");
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("no 429 after 40 requests at a limit of 5/s, burst 10");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("retry-after")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&retry), "{retry}");
    assert_scim_error(r, 429);
    // After a second the bucket has refilled enough to answer again.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(s.get("/scim/v2/Users").send().expect("get").status(), 200);
}

#[test]
fn a_client_over_its_rate_gets_429() {
    let s = Server::start_protected(&["--rate-limit-client", "5"]);
    let t = token_with(&s, "users.read");
    let statuses: Vec<u16> = (0..40)
        .map(|_| {
            s.get("/scim/v2/Users")
                .bearer_auth(&t)
                .send()
                .expect("get")
                .status()
                .as_u16()
        })
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(statuses[..10], [200; 10], "{statuses:?}");
}

/// A self-signed certificate for 127.0.0.1 and localhost, as PEM (cert, key).
fn self_signed() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("certificate");
    (c.cert.pem(), c.key_pair.serialize_pem())
}

fn client_trusting(cert_pem: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn write_pair(dir: &Path, (cert, key): &(String, String)) {
    // The key first: a poll between the two writes sees a mismatched pair and
    // keeps the old certificate until both are new.
    std::fs::write(dir.join("key.pem"), key).expect("key");
    std::fs::write(dir.join("cert.pem"), cert).expect("cert");
}

#[test]
fn tls_serves_http2_and_picks_up_a_rotated_certificate() {
    let tmp = tempfile::tempdir().expect("tmp");
    let first = self_signed();
    write_pair(tmp.path(), &first);
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimd"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .args(["--protection", "bypass", "--tls-cert"])
        .arg(tmp.path().join("cert.pem"))
        .arg("--tls-key")
        .arg(tmp.path().join("key.pem"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let url = format!("https://127.0.0.1:{port}/scim/v2/ServiceProviderConfig");
    let old = client_trusting(&first.0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let r = loop {
        match old.get(&url).send() {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("no TLS answer: {e}"),
        }
    };
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN should pick h2");
    let h1 = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(first.0.as_bytes()).expect("pem"))
        .http1_only()
        .build()
        .expect("client");
    let r = h1.get(&url).send().expect("http/1.1");
    assert_eq!(
        (r.status().as_u16(), r.version()),
        (200, reqwest::Version::HTTP_11)
    );
    // Plain HTTP on the TLS port gets no answer.
    assert!(
        reqwest::blocking::get(format!("http://127.0.0.1:{port}/health/live"))
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
    );

    let second = self_signed();
    write_pair(tmp.path(), &second);
    let new = client_trusting(&second.0);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // New connections each time: a fresh handshake sees the current certificate.
        let fresh = client_trusting(&second.0);
        if fresh.get(&url).send().is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was not picked up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(new.get(&url).send().expect("new cert").status(), 200);
    assert!(
        client_trusting(&first.0).get(&url).send().is_err(),
        "old certificate still served"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn sigterm_lets_a_request_in_flight_finish() {
    let mut s = Server::start();
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                      "userName": "in-flight"})
    .to_string();
    let mut conn = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    // Headers now, the body after the signal: the request is in flight when
    // SIGTERM arrives.
    write!(
        conn,
        "POST /scim/v2/Users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("headers");
    conn.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(300));
    let pid = s.pid();
    let sent = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    std::thread::sleep(Duration::from_millis(300));
    conn.write_all(body.as_bytes()).expect("body");
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains("in-flight"), "{answer}");
    let status = s.wait();
    assert!(status.success(), "{status:?}");
    // The write is there after a restart.
    let again = Server::start_in(&s.data_dir.clone(), &[]);
    let (st, list) = parts(
        again
            .get("/scim/v2/Users?filter=userName%20eq%20%22in-flight%22")
            .send()
            .expect("get"),
    );
    assert_eq!(
        (st, list["totalResults"].as_u64()),
        (200, Some(1)),
        "{list}"
    );
}

/// Every userName of the server's users, page by page.
fn all_user_names(s: &Server) -> std::collections::HashSet<String> {
    let mut names = std::collections::HashSet::new();
    let mut start = 1;
    loop {
        let (st, page) = parts(
            s.get(&format!(
                "/scim/v2/Users?attributes=userName&count=200&startIndex={start}"
            ))
            .send()
            .expect("list"),
        );
        assert_eq!(st, 200, "{page}");
        let items = page["Resources"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            return names;
        }
        start += items.len();
        names.extend(
            items
                .iter()
                .filter_map(|u| u["userName"].as_str().map(str::to_string)),
        );
    }
}

#[test]
fn a_backup_under_write_load_restores_every_acknowledged_write() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).expect("data dir");
    // SQLite whatever backend the rest of the suite runs on: this is its backup.
    let sqlite = format!("sqlite:{}", dir.join("scimd.db").display());
    let mut s = Server::start_in(&dir, &["--database", &sqlite]);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (stop, acked, url) = (stop.clone(), acked.clone(), s.url("/scim/v2/Users"));
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("load-{t}-{i}");
                    let r = crate::harness::post_user(&client, &url, &name);
                    if r.is_ok_and(|r| r.status() == 201) {
                        acked.lock().expect("acked").push(name);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let before_backup: Vec<String> = acked.lock().expect("acked").clone();
    assert!(!before_backup.is_empty(), "no write was acknowledged");
    let out = tmp.path().join("scimd.backup");
    let backed = Command::new(env!("CARGO_BIN_EXE_scimd"))
        .args(["backup", "--out"])
        .arg(&out)
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .expect("backup");
    assert!(
        backed.status.success(),
        "{}",
        String::from_utf8_lossy(&backed.stderr)
    );
    // Writes went on during the backup.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    let after_backup = acked.lock().expect("acked").len();
    assert!(
        after_backup > before_backup.len(),
        "writes stopped during the backup"
    );

    let restore = |expect_ok: bool| {
        let out = Command::new(env!("CARGO_BIN_EXE_scimd"))
            .args(["restore", "--in"])
            .arg(&out)
            .arg("--data-dir")
            .arg(&dir)
            .output()
            .expect("restore");
        assert_eq!(
            out.status.success(),
            expect_ok,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let refused = restore(false);
    assert!(refused.contains("stop the scimd server"), "{refused}");
    let pid = s.pid();
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill")
        .success());
    assert!(s.wait().success());
    restore(true);
    let again = Server::start_in(&dir, &["--database", &sqlite]);
    let names = all_user_names(&again);
    let missing: Vec<&String> = before_backup
        .iter()
        .filter(|n| !names.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged before the backup, missing after restore: {missing:?}"
    );
    let all: std::collections::HashSet<String> =
        acked.lock().expect("acked").iter().cloned().collect();
    // Nothing in the copy that was not written (a write in flight may be in it
    // unacknowledged: the one each writer had sent when it stopped).
    assert!(
        names.len() <= all.len() + 4,
        "{} restored, {} written",
        names.len(),
        all.len()
    );
}

#[test]
fn every_write_is_in_the_audit_trail_with_who_made_it() {
    let s = Server::start_protected(&[]);
    let (writer_id, writer) = client_token(&s, "users.write users.read");
    let admin = token_with(&s, "admin");
    let send = |method: &str, path: &str, body: Option<Value>, rid: &str| {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut r = s
            .client
            .request(m, s.url(path))
            .bearer_auth(&writer)
            .header("X-Request-Id", rid);
        if let Some(b) = body {
            r = r
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        parts(r.send().expect("send"))
    };
    let (st, u) = send(
        "POST",
        "/scim/v2/Users",
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "audited"}),
        ),
        "audit-create",
    );
    assert_eq!(st, 201, "{u}");
    let id = u["id"].as_str().expect("id").to_string();
    let (st, _) = send(
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "nickName", "value": "n"}]}),
        ),
        "audit-patch",
    );
    assert_eq!(st, 200);
    let (st, _) = send(
        "DELETE",
        &format!("/scim/v2/Users/{id}"),
        None,
        "audit-delete",
    );
    assert_eq!(st, 204);

    let audit = |query: &str| {
        parts(
            s.get(&format!("/admin/audit{query}"))
                .bearer_auth(&admin)
                .send()
                .expect("audit"),
        )
    };
    let (st, body) = audit(&format!("?resource={id}"));
    assert_eq!(st, 200, "{body}");
    let entries = body["entries"].as_array().expect("entries");
    let ops: Vec<&str> = entries.iter().filter_map(|e| e["op"].as_str()).collect();
    assert_eq!(ops, vec!["deleted", "updated", "created"], "{body}");
    let rids: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["requestId"].as_str())
        .collect();
    assert_eq!(
        rids,
        vec!["audit-delete", "audit-patch", "audit-create"],
        "{body}"
    );
    for e in entries {
        assert_eq!(e["principal"], writer_id.as_str(), "{e}");
        assert_eq!(e["sourceIp"], "127.0.0.1", "{e}");
        assert_eq!(e["resourceId"], id.as_str(), "{e}");
    }
    let (st, body) = audit(&format!("?client={writer_id}&count=2"));
    assert_eq!(
        (st, body["totalResults"].as_u64()),
        (200, Some(2)),
        "{body}"
    );
    let (st, body) = audit("?client=nobody");
    assert_eq!(
        (st, body["totalResults"].as_u64()),
        (200, Some(0)),
        "{body}"
    );
    let (st, body) = audit("?since=2999-01-01T00:00:00Z");
    assert_eq!(
        (st, body["totalResults"].as_u64()),
        (200, Some(0)),
        "{body}"
    );
    let (st, body) = audit("?since=yesterday");
    assert_eq!(
        (st, body["scimType"].as_str()),
        (400, Some("invalidValue")),
        "{body}"
    );
    let (st, _) = parts(
        s.get("/admin/audit")
            .bearer_auth(&writer)
            .send()
            .expect("audit"),
    );
    assert_eq!(st, 403, "the admin scope is needed");
    // The command shows the same.
    let out = scimd(&s, &["audit", "--resource", &id, "--json"]);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0]["requestId"], "audit-delete");
}

#[test]
fn behind_a_trusted_proxy_the_forwarded_address_is_the_client() {
    // 127.0.0.1 is the proxy: each forwarded client has its own rate and is the
    // source the audit trail records.
    let s = Server::start_protected(&["--trusted-proxies", "127.0.0.1", "--rate-limit-ip", "5"]);
    let (_, writer) = client_token(&s, "users.write");
    let admin = token_with(&s, "admin");
    let from = |ip: &str| {
        s.send_json(
            "POST",
            "/scim/v2/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("via-{ip}-{}", std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0))}),
        )
        .bearer_auth(&writer)
        .header("X-Forwarded-For", format!("{ip}, 127.0.0.1"))
        .send()
        .expect("post")
        .status()
        .as_u16()
    };
    let first: Vec<u16> = (0..30).map(|_| from("203.0.113.7")).collect();
    assert!(first.contains(&429), "{first:?}");
    // Another client behind the same proxy is not held up by the first.
    assert_eq!(from("203.0.113.8"), 201);
    let (st, body) = parts(
        s.get("/admin/audit?count=1")
            .bearer_auth(&admin)
            .send()
            .expect("audit"),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["entries"][0]["sourceIp"], "203.0.113.8", "{body}");
}

#[test]
fn a_forwarded_address_from_an_untrusted_peer_is_ignored() {
    let s = Server::start_protected(&["--rate-limit-ip", "5"]);
    let (_, writer) = client_token(&s, "users.write");
    let admin = token_with(&s, "admin");
    let (st, _) = parts(
        s.send_json(
            "POST",
            "/scim/v2/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "spoofer"}),
        )
        .bearer_auth(&writer)
        .header("X-Forwarded-For", "198.51.100.99")
        .send()
        .expect("post"),
    );
    assert_eq!(st, 201);
    let (_, body) = parts(
        s.get("/admin/audit?count=1")
            .bearer_auth(&admin)
            .send()
            .expect("audit"),
    );
    assert_eq!(body["entries"][0]["sourceIp"], "127.0.0.1", "{body}");
}
