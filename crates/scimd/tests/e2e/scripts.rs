//! Interception script management: the admin API and `scimd scripts …` over a
//! real server, validation errors, export/import, and hot reload of a change made
//! by the CLI. No script behaviour is tested here (the engine is another crate):
//! only storage, validation plumbing and reload plumbing (`active` in the list
//! says whether the running server has an enabled script loaded).

use crate::harness::{assert_scim_error, parts, Server};
use reqwest::blocking::Response;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const NOTIFY: &str = "function init(config) return true end\n";

fn scimd_in(dir: &Path, database: &[String], args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scimd"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .args(database)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run scimd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `scimd ARGS` on the server's database: (success, stdout, stderr).
fn cli(s: &Server, args: &[&str]) -> (bool, String, String) {
    scimd_in(&s.data_dir, &s.database_args(), args)
}

fn cli_ok(s: &Server, args: &[&str]) -> String {
    let (ok, out, err) = cli(s, args);
    assert!(ok, "scimd {args:?}: {err}");
    out
}

fn list(s: &Server) -> Value {
    let (st, body) = parts(s.get("/admin/scripts").send().expect("list"));
    assert_eq!(st, 200, "{body}");
    body
}

fn names(list: &Value) -> Vec<String> {
    list["scripts"]
        .as_array()
        .expect("scripts")
        .iter()
        .map(|s| s["name"].as_str().expect("name").to_string())
        .collect()
}

/// Wait (bounded) until the running server's `active` is `want`; how long it took.
fn until_active(s: &Server, want: bool, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if list(s)["active"] == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "the running server did not pick the change up within {within:?} (active != {want})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn admin_api_manages_scripts() {
    let s = Server::start();
    assert_eq!(list(&s), json!({"scripts": [], "active": false}));

    let (st, created) = parts(s.post(
        "/admin/scripts",
        &json!({"name": "notify", "order": 20, "source": NOTIFY,
                "properties": {"url": "https://hooks.example/x"}}),
    ));
    assert_eq!(st, 201, "{created}");
    assert_eq!(created["name"], "notify");
    assert_eq!(created["order"], 20);
    assert_eq!(created["enabled"], true, "enabled by default");
    assert_eq!(created["source"], NOTIFY);
    assert_eq!(
        created["properties"],
        json!({"url": "https://hooks.example/x"})
    );
    assert_eq!(created["lastError"], Value::Null);
    let (st, _) = parts(s.post(
        "/admin/scripts",
        &json!({"name": "attach", "source": "-- attach", "enabled": false}),
    ));
    assert_eq!(st, 201);

    // Listed in order (default order 0 first), without sources.
    let l = list(&s);
    assert_eq!(names(&l), ["attach", "notify"]);
    assert_eq!(l["active"], true, "an enabled script runs at once");
    let first = &l["scripts"][0];
    assert!(first.get("source").is_none(), "{first}");
    for k in [
        "order",
        "enabled",
        "properties",
        "updated",
        "lastError",
        "lastErrorAt",
    ] {
        assert!(first.get(k).is_some(), "{k} in {first}");
    }

    // Single GET, case-insensitive.
    let (st, one) = parts(s.get("/admin/scripts/NOTIFY").send().expect("get"));
    assert_eq!(st, 200);
    assert_eq!(one["source"], NOTIFY);

    // PUT: fields absent keep their value.
    let (st, put) = parts(s.put(
        "/admin/scripts/notify",
        &json!({"order": -5, "properties": {"url": "https://other/"}}),
    ));
    assert_eq!(st, 200, "{put}");
    assert_eq!(put["order"], -5);
    assert_eq!(put["source"], NOTIFY);
    assert_eq!(put["enabled"], true);
    assert_eq!(put["properties"], json!({"url": "https://other/"}));
    assert_eq!(names(&list(&s)), ["notify", "attach"]);

    // Disable and enable through PUT.
    let (_, off) = parts(s.put("/admin/scripts/notify", &json!({"enabled": false})));
    assert_eq!(off["enabled"], false);
    assert_eq!(list(&s)["active"], false);
    let (_, on) = parts(s.put("/admin/scripts/attach", &json!({"enabled": true})));
    assert_eq!(on["enabled"], true);
    assert_eq!(list(&s)["active"], true);

    // Bad input: clear SCIM errors, nothing changed.
    let before = list(&s);
    let dup = assert_scim_error(
        s.post("/admin/scripts", &json!({"name": "Notify", "source": "--"})),
        409,
        Some("uniqueness"),
    );
    assert!(
        dup["detail"].as_str().is_some_and(|d| d.contains("Notify")),
        "{dup}"
    );
    let not_json = s
        .client
        .post(s.url("/admin/scripts"))
        .header("Content-Type", "application/scim+json")
        .body("{not json")
        .send()
        .expect("post");
    assert_scim_error(not_json, 400, Some("invalidSyntax"));
    for (body, kind) in [
        (json!({"name": "x"}), "invalidValue"),
        (json!({"source": "--"}), "invalidValue"),
        (json!({"name": "bad name", "source": "--"}), "invalidValue"),
        (
            json!({"name": "x", "source": "--", "order": "1"}),
            "invalidValue",
        ),
        (
            json!({"name": "x", "source": "--", "properties": {"a": 1}}),
            "invalidValue",
        ),
        (
            json!({"name": "x", "source": "--", "level": 1}),
            "invalidSyntax",
        ),
        (json!(["x"]), "invalidSyntax"),
    ] {
        let body = assert_scim_error(s.post("/admin/scripts", &body), 400, Some(kind));
        assert!(body["detail"].as_str().is_some(), "{body}");
    }
    assert_scim_error(
        s.put("/admin/scripts/notify", &json!({"name": "renamed"})),
        400,
        Some("invalidValue"),
    );
    assert_scim_error(
        s.put("/admin/scripts/notify", &json!({"enabled": "yes"})),
        400,
        Some("invalidValue"),
    );
    assert_scim_error(
        s.put("/admin/scripts/nope", &json!({"order": 1})),
        404,
        None,
    );
    assert_scim_error(s.get("/admin/scripts/nope").send().expect("get"), 404, None);
    assert_scim_error(
        s.delete("/admin/scripts/nope").send().expect("delete"),
        404,
        None,
    );
    assert_scim_error(
        s.send_json("PATCH", "/admin/scripts/notify", &json!({}))
            .send()
            .expect("patch"),
        405,
        None,
    );
    assert_eq!(list(&s), before, "refused requests changed nothing");

    // DELETE: 204, then gone.
    let resp = s.delete("/admin/scripts/Attach").send().expect("delete");
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(names(&list(&s)), ["notify"]);
    assert_eq!(list(&s)["active"], false, "only a disabled script is left");
}

#[test]
fn cli_manages_scripts_and_a_running_server_picks_changes_up() {
    let s = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let v1 = dir.path().join("notify.luau");
    let v2 = dir.path().join("notify2.luau");
    std::fs::write(&v1, NOTIFY).expect("write");
    std::fs::write(&v2, "-- version 2\n").expect("write");
    let file = v1.to_str().expect("path");
    assert_eq!(list(&s)["active"], false);

    let out = cli_ok(
        &s,
        &[
            "scripts",
            "add",
            "--name",
            "notify",
            "--file",
            file,
            "--order",
            "7",
            "--property",
            "url=https://hooks.example/?a=b",
            "--property",
            "retries=3",
        ],
    );
    assert!(out.contains("notify"), "{out}");
    // The running server loads it within 3 s (it polls every second).
    let took = until_active(&s, true, Duration::from_secs(3));
    eprintln!("add picked up after {took:?}");
    let (_, one) = parts(s.get("/admin/scripts/notify").send().expect("get"));
    assert_eq!(one["order"], 7);
    assert_eq!(
        one["properties"],
        json!({"url": "https://hooks.example/?a=b", "retries": "3"})
    );

    cli_ok(
        &s,
        &[
            "scripts",
            "add",
            "--name",
            "later",
            "--file",
            file,
            "--disabled",
        ],
    );
    let out = cli_ok(&s, &["scripts", "list"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("later\t0\tdisabled"), "{out}");
    assert!(lines[1].starts_with("notify\t7\tenabled"), "{out}");
    let json_list: Value =
        serde_json::from_str(&cli_ok(&s, &["scripts", "list", "--json"])).expect("json");
    assert_eq!(json_list.as_array().map(Vec::len), Some(2));

    let out = cli_ok(&s, &["scripts", "show", "notify"]);
    assert!(out.contains(NOTIFY.trim_end()), "source: {out}");
    assert!(
        out.contains("url=https://hooks.example/?a=b"),
        "properties: {out}"
    );
    assert!(out.contains("last error: none"), "{out}");

    // update: new source and properties, order kept.
    cli_ok(
        &s,
        &[
            "scripts",
            "update",
            "notify",
            "--file",
            v2.to_str().expect("path"),
            "--property",
            "url=https://new/",
        ],
    );
    let (_, one) = parts(s.get("/admin/scripts/notify").send().expect("get"));
    assert_eq!(one["source"], "-- version 2\n");
    assert_eq!(one["order"], 7);
    assert_eq!(one["properties"], json!({"url": "https://new/"}));
    cli_ok(&s, &["scripts", "update", "notify", "--order", "1"]);
    let (_, one) = parts(s.get("/admin/scripts/notify").send().expect("get"));
    assert_eq!(
        (one["order"].clone(), one["source"].clone()),
        (json!(1), json!("-- version 2\n"))
    );

    // disable / enable / remove, each picked up by the running server.
    cli_ok(&s, &["scripts", "disable", "notify"]);
    until_active(&s, false, Duration::from_secs(3));
    cli_ok(&s, &["scripts", "enable", "later"]);
    until_active(&s, true, Duration::from_secs(3));
    cli_ok(&s, &["scripts", "remove", "later"]);
    until_active(&s, false, Duration::from_secs(3));
    assert_eq!(names(&list(&s)), ["notify"]);

    // Bad input: a clear message and a failing exit status, nothing changed.
    let before = list(&s);
    for (args, says) in [
        (
            vec!["scripts", "add", "--name", "NOTIFY", "--file", file],
            "already exists",
        ),
        (
            vec![
                "scripts",
                "add",
                "--name",
                "x",
                "--file",
                "/nonexistent/f.luau",
            ],
            "cannot read",
        ),
        (
            vec!["scripts", "add", "--name", "bad name", "--file", file],
            "script name",
        ),
        (
            vec![
                "scripts",
                "add",
                "--name",
                "x",
                "--file",
                file,
                "--property",
                "novalue",
            ],
            "KEY=VALUE",
        ),
        (vec!["scripts", "show", "nope"], "no script 'nope'"),
        (
            vec!["scripts", "update", "nope", "--order", "1"],
            "no script 'nope'",
        ),
        (vec!["scripts", "enable", "nope"], "no script 'nope'"),
        (vec!["scripts", "remove", "nope"], "no script 'nope'"),
    ] {
        let (ok, out, err) = cli(&s, &args);
        assert!(!ok, "{args:?} should fail: {out}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(list(&s), before);
}

/// Scripts travel with `scimd export` / `scimd import`.
#[test]
fn scripts_survive_export_and_import() {
    let s = Server::start();
    let (st, _) = parts(s.post(
        "/admin/scripts",
        &json!({"name": "keep", "order": 3, "enabled": false, "source": "-- kept",
                "properties": {"a": "b"}}),
    ));
    assert_eq!(st, 201);
    let dir = tempfile::tempdir().expect("tempdir");
    let dump = dir.path().join("export.jsonl");
    cli_ok(&s, &["export", "--out", dump.to_str().expect("path")]);
    let target = tempfile::tempdir().expect("tempdir");
    for _ in 0..2 {
        // Twice: an import can be run again.
        let (ok, _, err) = scimd_in(
            target.path(),
            &[],
            &["import", "--in", dump.to_str().expect("path")],
        );
        assert!(ok, "{err}");
    }
    let (ok, out, err) = scimd_in(target.path(), &[], &["scripts", "show", "keep", "--json"]);
    assert!(ok, "{err}");
    let got: Value = serde_json::from_str(&out).expect("json");
    let (_, want) = parts(s.get("/admin/scripts/keep").send().expect("get"));
    assert_eq!(got, want);
}

fn token(s: &Server, scope: &str) -> String {
    let v: Value = serde_json::from_str(
        cli_ok(
            s,
            &[
                "clients", "create", "--name", "ops", "--scope", scope, "--json",
            ],
        )
        .trim(),
    )
    .expect("client JSON");
    let resp: Response = s
        .client
        .post(s.url("/oxauth/restv1/token"))
        .basic_auth(
            v["client_id"].as_str().expect("id"),
            v["client_secret"].as_str(),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .expect("token");
    let (st, body) = parts(resp);
    assert_eq!(st, 200, "{body}");
    body["access_token"].as_str().expect("token").to_string()
}

/// The admin API needs the `admin` scope.
#[test]
fn admin_scope_protects_scripts() {
    let s = Server::start_protected(&[]);
    let admin = token(&s, "admin");
    let reader = token(&s, "users.read");
    let body = json!({"name": "guarded", "source": "--"});
    let resp = s
        .send_json("POST", "/admin/scripts", &body)
        .send()
        .expect("post");
    assert_eq!(resp.status().as_u16(), 401);
    let resp = s
        .send_json("POST", "/admin/scripts", &body)
        .bearer_auth(&reader)
        .send()
        .expect("post");
    assert_eq!(resp.status().as_u16(), 403);
    let resp = s
        .send_json("POST", "/admin/scripts", &body)
        .bearer_auth(&admin)
        .send()
        .expect("post");
    assert_eq!(resp.status().as_u16(), 201);
    for path in ["/admin/scripts", "/admin/scripts/guarded"] {
        let resp = s.get(path).bearer_auth(&reader).send().expect("get");
        assert_eq!(resp.status().as_u16(), 403, "{path}");
        let resp = s.get(path).bearer_auth(&admin).send().expect("get");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    let resp = s
        .delete("/admin/scripts/guarded")
        .bearer_auth(&admin)
        .send()
        .expect("delete");
    assert_eq!(resp.status().as_u16(), 204);
}

/// Every scimd process on one PostgreSQL database runs the same set: a change
/// through one server's admin API reaches the other within 3 s.
#[test]
fn two_servers_on_one_postgres_share_scripts() {
    let Some(db) = crate::harness::postgres_schema() else {
        return;
    };
    let a = Server::start_with(&["--database", &db.url]);
    let b = Server::start_with(&["--database", &db.url]);
    assert_eq!(list(&b)["active"], false);
    let (st, _) = parts(a.post(
        "/admin/scripts",
        &json!({"name": "shared", "source": NOTIFY}),
    ));
    assert_eq!(st, 201);
    until_active(&b, true, Duration::from_secs(3));
    assert_eq!(names(&list(&b)), ["shared"]);
    let (st, _) = parts(a.put("/admin/scripts/shared", &json!({"enabled": false})));
    assert_eq!(st, 200);
    until_active(&b, false, Duration::from_secs(3));
    let (st, _) = parts(b.put("/admin/scripts/SHARED", &json!({"enabled": true})));
    assert_eq!(st, 200);
    until_active(&a, true, Duration::from_secs(3));
}
