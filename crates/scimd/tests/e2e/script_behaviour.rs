//! Interception scripts running in a real server: the example scripts of
//! examples/scripts/ over HTTP (department restriction on searches, GETs, writes,
//! root searches and Bulk; attached data; a hidden attribute; a notification after
//! a delete), and a hot reload under load that fails no request.

use crate::harness::{parts, scimd, Server};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

fn example(name: &str) -> String {
    format!(
        "{}/../../examples/scripts/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A new client with these scopes and a token of its own: (client id, token).
fn client(s: &Server, scope: &str) -> (String, String) {
    let v: Value = serde_json::from_str(
        scimd(
            s,
            &[
                "clients", "create", "--name", "app", "--scope", scope, "--json",
            ],
        )
        .trim(),
    )
    .expect("client JSON");
    let id = v["client_id"].as_str().expect("id").to_string();
    let resp = s
        .client
        .post(s.url("/oauth/token"))
        .basic_auth(&id, v["client_secret"].as_str())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .expect("token");
    let (st, body) = parts(resp);
    assert_eq!(st, 200, "{body}");
    (
        id,
        body["access_token"].as_str().expect("token").to_string(),
    )
}

fn user(name: &str, dept: &str) -> Value {
    json!({"schemas": [USER, ENTERPRISE], "userName": name,
           "emails": [{"value": format!("{name}@example.com")}],
           ENTERPRISE: {"department": dept}})
}

fn send(s: &Server, token: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut req = s
        .client
        .request(method.parse().expect("method"), s.url(path))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/scim+json")
            .body(b.to_string());
    }
    parts(req.send().expect("request"))
}

/// Wait (at most 10 s) until `ok` holds: a running server picks up script
/// changes within a few seconds.
fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("not within 10 s: {what}");
}

fn names(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list["Resources"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["userName"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn department_restriction_on_every_path() {
    let s = Server::start_protected(&[]);
    let scopes = "users.read users.write bulk all-resources.search";
    let (hr_id, hr) = client(&s, scopes);
    let (sales_id, sales) = client(&s, scopes);
    let (st, bob) = send(
        &s,
        &sales,
        "POST",
        "/scim/v2/Users",
        Some(&user("bob", "Sales")),
    );
    assert_eq!(st, 201, "{bob}");
    let bob_id = bob["id"].as_str().expect("id").to_string();
    let (st, _) = send(
        &s,
        &hr,
        "POST",
        "/scim/v2/Users",
        Some(&user("alice", "HR")),
    );
    assert_eq!(st, 201);

    let map = format!("departments={hr_id}=HR; {sales_id}=Sales");
    scimd(
        &s,
        &[
            "scripts",
            "add",
            "--name",
            "departments",
            "--file",
            &example("department_restriction.lua"),
            "--property",
            &map,
        ],
    );
    eventually("the HR client sees only HR", || {
        names(&send(&s, &hr, "GET", "/scim/v2/Users", None).1) == vec!["alice"]
    });
    assert_eq!(
        names(&send(&s, &sales, "GET", "/scim/v2/Users", None).1),
        vec!["bob"]
    );
    // The client's own filter comes after the script's.
    let (_, found) = send(
        &s,
        &hr,
        "GET",
        "/scim/v2/Users?filter=userName%20eq%20%22bob%22%20or%20userName%20eq%20%22alice%22",
        None,
    );
    assert_eq!(names(&found), vec!["alice"], "{found}");
    let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]});
    for path in ["/scim/v2/Users/.search", "/scim/v2/.search"] {
        let (st, found) = send(&s, &hr, "POST", path, Some(&search));
        assert_eq!(st, 200, "{path}: {found}");
        assert_eq!(names(&found), vec!["alice"], "{path}: {found}");
    }
    // One resource of another department: 403, for reads and writes.
    let bob_path = format!("/scim/v2/Users/{bob_id}");
    assert_eq!(send(&s, &hr, "GET", &bob_path, None).0, 403);
    assert_eq!(send(&s, &hr, "DELETE", &bob_path, None).0, 403);
    assert_eq!(
        send(&s, &sales, "GET", &bob_path, None).0,
        200,
        "still there"
    );
    let (st, body) = send(
        &s,
        &hr,
        "POST",
        "/scim/v2/Users",
        Some(&user("carl", "Sales")),
    );
    assert_eq!(st, 403, "{body}");
    // Bulk: each operation on its own.
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
    "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "a", "data": user("dora", "HR")},
        {"method": "POST", "path": "/Users", "bulkId": "b", "data": user("eve", "Sales")}
    ]});
    let (st, resp) = send(&s, &hr, "POST", "/scim/v2/Bulk", Some(&bulk));
    assert_eq!(st, 200, "{resp}");
    let statuses: Vec<&str> = resp["Operations"]
        .as_array()
        .expect("ops")
        .iter()
        .filter_map(|o| o["status"].as_str())
        .collect();
    assert_eq!(statuses, vec!["201", "403"], "{resp}");
    assert_eq!(
        names(&send(&s, &sales, "GET", "/scim/v2/Users", None).1),
        vec!["bob"],
        "neither carl nor eve was stored"
    );
}

#[test]
fn attached_data_and_a_hidden_attribute() {
    let s = Server::start_protected(&[]);
    let scopes = "users.read users.write";
    let (_, writer) = client(&s, scopes);
    let (hidden_id, hidden) = client(&s, scopes);
    scimd(
        &s,
        &[
            "scripts",
            "add",
            "--name",
            "attach",
            "--file",
            &example("attach_on_create.lua"),
            "--property",
            "organization=Acme",
            "--order",
            "1",
        ],
    );
    let clients = format!("clients={hidden_id}");
    scimd(
        &s,
        &[
            "scripts",
            "add",
            "--name",
            "hide",
            "--file",
            &example("hide_attribute.lua"),
            "--property",
            "attribute=emails",
            "--property",
            &clients,
            "--order",
            "2",
        ],
    );
    let mut created = Value::Null;
    eventually("the attach script runs", || {
        let name = format!("u{}", rand_suffix());
        let (st, body) = send(
            &s,
            &writer,
            "POST",
            "/scim/v2/Users",
            Some(&user(&name, "HR")),
        );
        assert_eq!(st, 201, "{body}");
        created = body;
        created[ENTERPRISE]["organization"] == "Acme"
    });
    let id = created["id"].as_str().expect("id").to_string();
    let path = format!("/scim/v2/Users/{id}");
    let (_, seen) = send(&s, &writer, "GET", &path, None);
    assert!(seen.get("emails").is_some(), "{seen}");
    eventually("emails hidden from the listed client", || {
        let (st, got) = send(&s, &hidden, "GET", &path, None);
        st == 200 && got.get("emails").is_none() && got["userName"] == created["userName"]
    });
    let (_, list) = send(&s, &hidden, "GET", "/scim/v2/Users", None);
    let all = list["Resources"].as_array().expect("resources");
    assert!(all.iter().all(|u| u.get("emails").is_none()), "{list}");
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

#[test]
fn a_delete_notifies_after_the_commit() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let url = format!(
        "notify_url=http://{}/events",
        listener.local_addr().expect("addr")
    );
    let s = Server::start_with(&["--script-notify-allow", "127.0.0.1"]);
    scimd(
        &s,
        &[
            "scripts",
            "add",
            "--name",
            "notify",
            "--file",
            &example("notify_on_delete.lua"),
            "--property",
            &url,
        ],
    );
    let (st, u) = parts(s.post("/scim/v2/Users", &user("gone", "HR")));
    assert_eq!(st, 201, "{u}");
    let id = u["id"].as_str().expect("id").to_string();
    // The server picks the script up within a few seconds; until then deletes of
    // fresh users notify nothing, so retry with new users.
    let mut target = id;
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        assert!(Instant::now() < deadline, "no notification within 10 s");
        let resp = s
            .delete(&format!("/scim/v2/Users/{target}"))
            .send()
            .expect("delete");
        assert_eq!(resp.status().as_u16(), 204);
        if let Some(body) = receive(&listener, Duration::from_secs(1)) {
            break body;
        }
        let (_, u) = parts(s.post(
            "/scim/v2/Users",
            &user(&format!("g{}", rand_suffix()), "HR"),
        ));
        target = u["id"].as_str().expect("id").to_string();
    };
    let event: Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(event["event"], "userDeleted");
    assert_eq!(event["id"], json!(target));
}

/// One HTTP request's body, if one arrives within `wait`; answered 204.
fn receive(listener: &TcpListener, wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((mut conn, _)) => {
                conn.set_nonblocking(false).ok()?;
                conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = conn.read(&mut buf).ok()?;
                    if n == 0 {
                        break;
                    }
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data);
                    if let Some(at) = text.find("\r\n\r\n") {
                        let len = text[..at]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if data.len() >= at + 4 + len {
                            let _ = conn.write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
                            return Some(text[at + 4..at + 4 + len].to_string());
                        }
                    }
                }
                return None;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    None
}

#[test]
fn a_hot_reload_under_load_fails_no_request() {
    let s = Server::start();
    let trivial = example("trivial.lua");
    scimd(&s, &["scripts", "add", "--name", "t", "--file", &trivial]);
    let (st, u) = parts(s.post("/scim/v2/Users", &user("steady", "HR")));
    assert_eq!(st, 201, "{u}");
    let path = format!("/scim/v2/Users/{}", u["id"].as_str().expect("id"));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let failures = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let ok = s
                        .get(&path)
                        .send()
                        .map(|r| r.status().as_u16() == 200)
                        .unwrap_or(false);
                    if !ok {
                        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        for round in 0..3 {
            let p = format!("round={round}");
            scimd(
                &s,
                &[
                    "scripts",
                    "update",
                    "t",
                    "--file",
                    &trivial,
                    "--property",
                    &p,
                ],
            );
            let seen = done.load(std::sync::atomic::Ordering::Relaxed);
            // Let the server pick the change up (it polls every second) with
            // requests in flight.
            eventually("requests go on", || {
                done.load(std::sync::atomic::Ordering::Relaxed) > seen + 50
            });
            std::thread::sleep(Duration::from_millis(1200));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(done.into_inner() > 150);
    assert_eq!(failures.into_inner(), 0);
}

#[test]
fn a_runtime_error_answers_500_and_shows_in_scripts_show() {
    let s = Server::start();
    let (st, u) = parts(s.post("/scim/v2/Users", &user("victim", "HR")));
    assert_eq!(st, 201, "{u}");
    let path = format!("/scim/v2/Users/{}", u["id"].as_str().expect("id"));
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("broken.lua");
    std::fs::write(
        &file,
        "function getApiVersion(config) return 3 end\n\nfunction getUser(user, config)\n  error(\"boom\")\nend\n",
    )
    .expect("write");
    let file = file.to_string_lossy().into_owned();
    scimd(&s, &["scripts", "add", "--name", "broken", "--file", &file]);
    let mut body = Value::Null;
    eventually("the failing script runs", || {
        let (st, b) = parts(s.get(&path).send().expect("get"));
        body = b;
        st == 500
    });
    let detail = body["detail"].as_str().expect("detail");
    assert!(
        detail.contains("interception script 'broken' failed"),
        "{body}"
    );
    assert!(
        !detail.contains("boom"),
        "the script's message stays in its log: {body}"
    );
    eventually("scripts show has the error", || {
        let out = scimd(&s, &["scripts", "show", "broken"]);
        out.contains("last error: getUser, line 4") && out.contains("boom")
    });
}
