//! scimd on PostgreSQL (`--database postgres://…`, a fresh schema per test): the
//! key flows, two scimd processes on one database with conflicting writes, and a
//! SQLite deployment moved to PostgreSQL with `scimd export` / `scimd import`.
//! With `SCIMD_TEST_POSTGRES_URL` set (as `scripts/test.sh` does) PostgreSQL must
//! be reachable and these tests fail without it; unset, they use the default server
//! (`scripts/ensure-postgres.sh`) or are skipped with a notice when it is down.
//! `SCIMD_E2E_DATABASE=postgres` runs the rest of the e2e suite on PostgreSQL as well.

use crate::harness::{parts, postgres_schema, Server};
use scim_store::postgres::ScratchSchema;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GLUU: &str = "urn:ietf:params:scim:schemas:extension:gluu:2.0:User";

/// A server on a fresh schema; `None` when the test is skipped (no PostgreSQL).
fn on_postgres() -> Option<(ScratchSchema, Server)> {
    let schema = postgres_schema()?;
    let server = Server::start_with(&["--database", &schema.url]);
    Some((schema, server))
}

fn patch_op(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn user(s: &Server, name: &str) -> String {
    let (st, u) = parts(s.post(
        "/scim/v2/Users",
        &json!({"schemas": [USER], "userName": name, "displayName": format!("{name} display")}),
    ));
    assert_eq!(st, 201, "{u}");
    u["id"].as_str().expect("id").to_string()
}

fn get(s: &Server, path: &str) -> (u16, Value) {
    parts(s.get(path).send().expect("GET"))
}

fn names(s: &Server, filter: &str, sort: Option<&str>) -> Vec<String> {
    let mut q = vec![("filter", filter), ("count", "100")];
    if let Some(by) = sort {
        q.push(("sortBy", by));
    }
    let (st, list) = parts(s.get("/scim/v2/Users").query(&q).send().expect("search"));
    assert_eq!(st, 200, "{filter}: {list}");
    list["Resources"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["userName"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn crud_walk_on_postgres() {
    let Some((_db, s)) = on_postgres() else {
        return;
    };
    let resp = s.post(
        "/identity/restv1/scim/v2/Users",
        &json!({"schemas": [USER], "userName": "ajsmith",
                "name": {"familyName": "Smith", "givenName": "Joe"}, "displayName": "Average Joe",
                "password": "s3cret-Passw0rd"}),
    );
    let etag = resp.headers().get("etag").cloned().expect("ETag");
    let (st, u) = parts(resp);
    assert_eq!(st, 201, "{u}");
    assert!(u.get("password").is_none());
    let id = u["id"].as_str().expect("id").to_string();
    let path = format!("/scim/v2/Users/{id}");
    let (st, got) = get(&s, &path);
    assert_eq!((st, &got["displayName"]), (200, &json!("Average Joe")));
    assert_eq!(names(&s, r#"userName eq "AJSMITH""#, None), vec!["ajsmith"]);
    let (st, put) = parts(s.put(
        &path,
        &json!({"schemas": [USER], "id": id, "userName": "ajsmith", "displayName": "Joe Smith",
                "emails": [{"value": "jsmith@example.com", "type": "work", "primary": true}]}),
    ));
    assert_eq!(st, 200, "{put}");
    assert_eq!(put["meta"]["created"], u["meta"]["created"]);
    // The old ETag no longer matches.
    let resp = s
        .send_json(
            "PATCH",
            &path,
            &patch_op(json!([{"op": "replace", "path": "nickName", "value": "J"}])),
        )
        .header("If-Match", etag)
        .send()
        .expect("patch");
    assert_eq!(resp.status().as_u16(), 412);
    let (st, patched) = parts(s.patch(
        &path,
        &patch_op(
            json!([{"op": "add", "path": "emails[type eq \"work\"].display", "value": "W"},
                         {"op": "replace", "path": "nickName", "value": "J"}]),
        ),
    ));
    assert_eq!(st, 200, "{patched}");
    assert_eq!(patched["emails"][0]["display"], "W");
    assert_eq!(patched["meta"]["version"], "W/\"3\"");
    let resp = s.delete(&path).send().expect("delete");
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(get(&s, &path).0, 404);
    // Uniqueness is case-insensitive.
    user(&s, "Casey");
    let (st, _) = parts(s.post(
        "/scim/v2/Users",
        &json!({"schemas": [USER], "userName": "CASEY"}),
    ));
    assert_eq!(st, 409);
}

#[test]
fn search_on_postgres() {
    let Some((_db, s)) = on_postgres() else {
        return;
    };
    for (name, email, kind, emp, active) in [
        ("alice", "alice@example.com", "work", "1001", true),
        ("bob", "bob@corp.example.org", "home", "1002", false),
        ("carol", "carol@example.com", "work", "2001", true),
        ("Émile", "emile@example.fr", "work", "3001", true),
    ] {
        let (st, body) = parts(s.post(
            "/scim/v2/Users",
            &json!({"schemas": [USER, ENTERPRISE], "userName": name, "active": active,
                    "emails": [{"value": email, "type": kind, "primary": true}],
                    ENTERPRISE: {"employeeNumber": emp}}),
        ));
        assert_eq!(st, 201, "{body}");
    }
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(names(&s, r#"emails co "example.com""#, None)),
        vec!["alice", "carol"]
    );
    assert_eq!(
        names(&s, r#"emails[type eq "work" and value ew ".fr"]"#, None),
        vec!["Émile"]
    );
    assert_eq!(
        sorted(names(
            &s,
            &format!(r#"{ENTERPRISE}:employeeNumber sw "100" and not (active eq false)"#),
            None
        )),
        vec!["alice"]
    );
    assert_eq!(
        names(&s, r#"userName pr"#, Some("userName")),
        vec!["alice", "bob", "carol", "Émile"]
    );
    let (st, list) = parts(
        s.get("/scim/v2/Users")
            .query(&[
                ("sortBy", "userName"),
                ("sortOrder", "descending"),
                ("startIndex", "2"),
                ("count", "2"),
            ])
            .send()
            .expect("page"),
    );
    assert_eq!(st, 200);
    assert_eq!(list["totalResults"], 4);
    assert_eq!(list["Resources"][0]["userName"], "carol");
    assert_eq!(list["Resources"][1]["userName"], "bob");
    let (st, _) = parts(
        s.get("/scim/v2/Users")
            .query(&[("filter", "active gt true")])
            .send()
            .expect("bad"),
    );
    assert_eq!(st, 400);
}

#[test]
fn groups_and_bulk_on_postgres() {
    let Some((_db, s)) = on_postgres() else {
        return;
    };
    let (a, b) = (user(&s, "ga"), user(&s, "gb"));
    let (st, inner) = parts(s.post(
        "/scim/v2/Groups",
        &json!({"schemas": [GROUP], "displayName": "inner", "members": [{"value": a}, {"value": b}]}),
    ));
    assert_eq!(st, 201, "{inner}");
    let inner_id = inner["id"].as_str().expect("id").to_string();
    let (st, outer) = parts(s.post(
        "/scim/v2/Groups",
        &json!({"schemas": [GROUP], "displayName": "outer", "members": [{"value": inner_id}]}),
    ));
    assert_eq!(st, 201, "{outer}");
    assert_eq!(outer["members"][0]["type"], "Group");
    let (_, ua) = get(&s, &format!("/scim/v2/Users/{a}"));
    let groups: Vec<(String, String)> = ua["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            (
                g["display"].as_str().unwrap_or_default().into(),
                g["type"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        vec![
            ("inner".into(), "direct".into()),
            ("outer".into(), "indirect".into())
        ]
    );
    // Deleting a user removes it from the group.
    assert_eq!(
        s.delete(&format!("/scim/v2/Users/{b}"))
            .send()
            .expect("delete")
            .status()
            .as_u16(),
        204
    );
    let (_, g) = get(&s, &format!("/scim/v2/Groups/{inner_id}"));
    assert_eq!(g["members"].as_array().map(Vec::len), Some(1), "{g}");
    let (st, found) = parts(
        s.get("/scim/v2/Groups")
            .query(&[("filter", format!(r#"members.value eq "{a}""#))])
            .send()
            .expect("filter"),
    );
    assert_eq!(st, 200);
    assert_eq!(found["totalResults"], 1);

    // Bulk with a forward bulkId reference.
    let req = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "POST", "path": "/Groups", "bulkId": "g1",
         "data": {"schemas": [GROUP], "displayName": "Tour Guides", "members": [{"type": "User", "value": "bulkId:u1"}]}},
        {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {"schemas": [USER], "userName": "guide"}},
        {"method": "PATCH", "path": "/Users/bulkId:u1",
         "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                  "Operations": [{"op": "replace", "path": "displayName", "value": "G."}]}}
    ]});
    let (st, resp) = parts(s.post("/scim/v2/Bulk", &req));
    assert_eq!(st, 200, "{resp}");
    let ops = resp["Operations"].as_array().expect("ops");
    assert!(
        ops.iter()
            .all(|o| o["status"] == "201" || o["status"] == "200"),
        "{resp}"
    );
    let (_, guide) = parts(
        s.get("/scim/v2/Users")
            .query(&[("filter", r#"userName eq "guide""#)])
            .send()
            .expect("guide"),
    );
    assert_eq!(guide["Resources"][0]["displayName"], "G.");
    assert_eq!(guide["Resources"][0]["groups"][0]["display"], "Tour Guides");
}

/// Run `f(i, server)` on `n` threads, alternating between the servers.
fn on_threads<T: Send + 'static>(
    servers: &[Arc<Server>],
    n: usize,
    f: impl Fn(usize, &Server) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = Arc::new(f);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (s, f) = (servers[i % servers.len()].clone(), f.clone());
            std::thread::spawn(move || f(i, &s))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect()
}

fn parallel_creates_give_one_201(servers: &[Arc<Server>]) {
    let statuses = on_threads(servers, 16, |i, s| {
        let name = if i % 2 == 0 { "Racer" } else { "racer" };
        parts(s.post(
            "/scim/v2/Users",
            &json!({"schemas": [USER], "userName": name}),
        ))
        .0
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        15,
        "{statuses:?}"
    );
}

#[test]
fn parallel_creates_of_one_user_name_on_postgres() {
    let Some((_db, s)) = on_postgres() else {
        return;
    };
    parallel_creates_give_one_201(&[Arc::new(s)]);
}

/// Two scimd processes on one database behave as one service.
#[test]
fn two_servers_one_database() {
    let Some(db) = postgres_schema() else {
        return;
    };
    let a = Arc::new(Server::start_with(&["--database", &db.url]));
    let b = Arc::new(Server::start_with(&["--database", &db.url]));
    let both = [a.clone(), b.clone()];

    // Written through one, read and conditionally updated through the other.
    let id = user(&a, "shared");
    let resp = b.get(&format!("/scim/v2/Users/{id}")).send().expect("get");
    let etag = resp.headers()["etag"].to_str().expect("etag").to_string();
    assert_eq!(resp.status().as_u16(), 200);
    let resp = a
        .get(&format!("/scim/v2/Users/{id}"))
        .header("If-None-Match", &etag)
        .send()
        .expect("conditional get");
    assert_eq!(resp.status().as_u16(), 304);

    // The same userName through both at once: one 201, every other 409.
    parallel_creates_give_one_201(&both);

    // If-Match read-modify-write through both: no update lost.
    let (_, c) = parts(a.post(
        "/scim/v2/Users",
        &json!({"schemas": [USER], "userName": "counter", "nickName": "0"}),
    ));
    let path = format!("/scim/v2/Users/{}", c["id"].as_str().expect("id"));
    let p = path.clone();
    let conflicts: Vec<usize> = on_threads(&both, 6, move |_, s| {
        let mut conflicts = 0;
        for _ in 0..5 {
            loop {
                let resp = s.get(&p).send().expect("get");
                let etag = resp.headers()["etag"].to_str().expect("etag").to_string();
                let (_, cur) = parts(resp);
                let n: u64 = cur["nickName"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .expect("n");
                let resp = s
                    .send_json(
                        "PATCH",
                        &p,
                        &patch_op(json!([{"op": "replace", "path": "nickName", "value": (n + 1).to_string()}])),
                    )
                    .header("If-Match", etag)
                    .send()
                    .expect("patch");
                match resp.status().as_u16() {
                    200 => break,
                    412 => conflicts += 1,
                    other => panic!("unexpected status {other}: {:?}", resp.text()),
                }
            }
        }
        conflicts
    });
    let (_, done) = get(&a, &path);
    assert_eq!(done["nickName"], "30");
    assert_eq!(done["meta"]["version"], "W/\"31\"");
    println!(
        "If-Match conflicts across two servers: {}",
        conflicts.iter().sum::<usize>()
    );

    // Member adds to one group through both, fast path and general PATCH alike.
    let members: Vec<String> = (0..40).map(|i| user(&a, &format!("m{i}"))).collect();
    let (_, g) = parts(b.post(
        "/scim/v2/Groups",
        &json!({"schemas": [GROUP], "displayName": "crowd"}),
    ));
    let gid = g["id"].as_str().expect("id").to_string();
    let chunks: Vec<Vec<String>> = members.chunks(5).map(<[String]>::to_vec).collect();
    let chunks = Arc::new(chunks);
    let g2 = gid.clone();
    on_threads(&both, 8, move |i, s| {
        for (k, u) in chunks[i].iter().enumerate() {
            let op = if k % 2 == 0 {
                json!([{"op": "add", "path": "members", "value": [{"value": u}]}])
            } else {
                json!([{"op": "add", "path": "members", "value": [{"value": u}]},
                       {"op": "replace", "path": "displayName", "value": "crowd"}])
            };
            // Under heavy contention the service may give up with 409 "try again"
            // (it never applies a stale write); a client then retries.
            let mut tries = 0;
            loop {
                let (st, body) = parts(s.patch(
                    &format!("/scim/v2/Groups/{g2}?excludedAttributes=members"),
                    &patch_op(op.clone()),
                ));
                match st {
                    200 => break,
                    409 if tries < 50 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(5 * (i as u64 + 1)));
                    }
                    _ => panic!("{st}: {body}"),
                }
            }
        }
    });
    for s in &both {
        let (_, g) = get(s, &format!("/scim/v2/Groups/{gid}"));
        let mut got: Vec<String> = g["members"]
            .as_array()
            .expect("members")
            .iter()
            .filter_map(|m| m["value"].as_str().map(str::to_string))
            .collect();
        got.sort();
        let mut want = members.clone();
        want.sort();
        assert_eq!(got, want);
    }
}

fn scimd(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_scimd"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run scimd");
    assert!(
        out.status.success(),
        "scimd {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Every resource as the server shows it, by id, with the server's own address
/// (in `meta.location` and members' `$ref`) replaced by `BASE`.
fn snapshot(s: &Server) -> BTreeMap<String, Value> {
    let mut all = BTreeMap::new();
    for endpoint in ["Users", "Groups"] {
        let (st, list) = parts(
            s.get(&format!("/scim/v2/{endpoint}"))
                .query(&[("count", "200")])
                .send()
                .expect("list"),
        );
        assert_eq!(st, 200, "{list}");
        for r in list["Resources"].as_array().expect("resources") {
            let id = r["id"].as_str().expect("id");
            let (st, full) = get(s, &format!("/scim/v2/{endpoint}/{id}"));
            assert_eq!(st, 200);
            let text = full.to_string().replace(&s.url(""), "BASE");
            all.insert(id.to_string(), serde_json::from_str(&text).expect("json"));
        }
    }
    all
}

fn resource_lines(path: &std::path::Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .expect("read export")
        .lines()
        .filter(|l| l.contains(r#""kind":"resource""#))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// A SQLite deployment moves to PostgreSQL: every resource identical over HTTP,
/// and the export of the new database equals the old one (passwords, versions,
/// timestamps and member order included).
#[test]
fn export_from_sqlite_import_into_postgres() {
    let old_dir = tempfile::tempdir().expect("tempdir");
    let sqlite_url = format!("sqlite:{}", old_dir.path().join("scimd.db").display());
    let old = Server::start_in(old_dir.path(), &["--database", &sqlite_url]);
    // A custom attribute, used by some users: it must move too.
    let (st, body) = parts(old.post(
        "/admin/attributes",
        &json!({"name": "costCenter", "type": "string", "multiValued": false}),
    ));
    assert_eq!(st, 201, "{body}");
    let mut users = Vec::new();
    for i in 0..30 {
        let (st, u) = parts(old.post(
            "/scim/v2/Users",
            &json!({"schemas": [USER, ENTERPRISE, GLUU], "userName": format!("mover{i}"),
                    GLUU: {"costCenter": format!("cc{}", i % 3)},
                    "password": format!("Passw0rd-{i}"),
                    "name": {"givenName": "Mo", "familyName": format!("Ver {i}")},
                    "emails": [{"value": format!("m{i}@example.com"), "type": "work", "primary": true}],
                    ENTERPRISE: {"employeeNumber": format!("{i:04}")}}),
        ));
        assert_eq!(st, 201, "{u}");
        users.push(u["id"].as_str().expect("id").to_string());
    }
    // Some history: versions above 1, a member order that is not id order.
    for id in users.iter().take(5) {
        let (st, _) = parts(old.patch(
            &format!("/scim/v2/Users/{id}"),
            &patch_op(json!([{"op": "replace", "path": "nickName", "value": "moved"}])),
        ));
        assert_eq!(st, 200);
    }
    let members: Vec<Value> = users
        .iter()
        .rev()
        .take(12)
        .map(|id| json!({"value": id}))
        .collect();
    let (st, g) = parts(old.post(
        "/scim/v2/Groups",
        &json!({"schemas": [GROUP], "displayName": "movers", "members": members}),
    ));
    assert_eq!(st, 201, "{g}");
    let gid = g["id"].as_str().expect("id");
    let (st, _) = parts(old.post(
        "/scim/v2/Groups",
        &json!({"schemas": [GROUP], "displayName": "all movers", "members": [{"value": gid}, {"value": users[0]}]}),
    ));
    assert_eq!(st, 201);
    let before = snapshot(&old);
    assert_eq!(before.len(), 32);

    let tmp = tempfile::tempdir().expect("tempdir");
    let from_sqlite = tmp.path().join("sqlite.jsonl");
    let from_postgres = tmp.path().join("postgres.jsonl");
    let dir = old.data_dir.to_str().expect("utf-8 path");
    scimd(&[
        "export",
        "--data-dir",
        dir,
        "--out",
        from_sqlite.to_str().expect("path"),
    ]);

    let Some(db) = postgres_schema() else {
        return;
    };
    let report = scimd(&["migrate", "--database", &db.url]);
    assert!(report.contains("applied now: [1, 2"), "{report}");
    let report = scimd(&["migrate", "--database", &db.url]);
    assert!(report.contains("applied now: []"), "{report}");
    // Small batches, and twice: an interrupted import can simply be run again.
    for _ in 0..2 {
        let report = scimd(&[
            "import",
            "--database",
            &db.url,
            "--in",
            from_sqlite.to_str().expect("path"),
            "--batch",
            "7",
        ]);
        assert!(report.contains("imported 32 resources"), "{report}");
    }
    let new = Server::start_with(&["--database", &db.url]);
    let after = snapshot(&new);
    assert_eq!(after.len(), before.len());
    for (id, doc) in &before {
        assert_eq!(after.get(id), Some(doc), "resource {id}");
    }
    // Passwords moved as hashes: compare the stored records themselves.
    let mut args = vec![
        "export".to_string(),
        "--out".into(),
        from_postgres.display().to_string(),
    ];
    args.extend(new.database_args());
    scimd(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(resource_lines(&from_postgres), resource_lines(&from_sqlite));
    assert!(resource_lines(&from_sqlite)
        .iter()
        .any(|l| l.contains(r#""secret":"$argon2"#)));
    // The new deployment searches and writes as the old one did.
    assert_eq!(names(&new, r#"userName eq "MOVER7""#, None), vec!["mover7"]);
    let (st, list) = parts(
        new.get("/scim/v2/Users")
            .query(&[
                ("filter", format!(r#"{GLUU}:costCenter eq "cc1""#)),
                ("count", "0".into()),
            ])
            .send()
            .expect("custom filter"),
    );
    assert_eq!((st, &list["totalResults"]), (200, &json!(10)), "{list}");
    let (st, _) = parts(new.post(
        "/scim/v2/Users",
        &json!({"schemas": [USER], "userName": "Mover3"}),
    ));
    assert_eq!(st, 409);
    drop(old);
}
