//! Change feeds: Gluu's UpdatedUsers and the lossless cursor feed.

use crate::harness::{parts, Server};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

fn user(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name,
           "name": {"givenName": "Jhon", "familyName": name}, "displayName": name,
           "emails": [{"value": format!("{name}@home.com")},
                      {"value": format!("{name}@office.com"), "primary": true}],
           "phoneNumbers": [{"value": "+1987654321", "type": "mobile"}],
           "password": "never-shown"})
}

fn now_utc() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn updated(s: &Server, query: &str) -> (u16, Value) {
    parts(
        s.get(&format!("/identity/restv1/scim/UpdatedUsers?{query}"))
            .send()
            .expect("get"),
    )
}

#[test]
fn updated_users_as_in_the_seed() {
    let s = Server::start();
    let (_, before) = parts(s.post("/scim/v2/Users", &user("before")));
    std::thread::sleep(Duration::from_millis(30));
    let stamp = now_utc();
    std::thread::sleep(Duration::from_millis(30));
    let (_, jhonny) = parts(s.post("/scim/v2/Users", &user("jhonny")));
    let (st, body) = updated(&s, &format!("timeStamp={}", urlencode(&stamp)));
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["total"], 1);
    let r = &body["results"][0];
    assert_eq!(r["inum"], json!([jhonny["id"]]));
    assert_eq!(r["uid"], json!(["jhonny"]));
    assert_eq!(r["cn"], json!(["Jhon jhonny"]));
    assert_eq!(r["mail"], json!(["jhonny@office.com", "jhonny@home.com"]));
    assert_eq!(r["mobile"], json!(["+1987654321"]));
    assert_eq!(r["updatedAt"], json!([jhonny["meta"]["lastModified"]]));
    assert!(r.get("userPassword").is_none() && !body.to_string().contains("never-shown"));
    assert_eq!(
        body["latestUpdateAt"], jhonny["meta"]["lastModified"],
        "set on creation too"
    );

    // Modifying the earlier user brings it in.
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "changed"}]});
    let (_, changed) = parts(s.patch(
        &format!("/scim/v2/Users/{}", before["id"].as_str().expect("id")),
        &patch,
    ));
    let (_, body) = updated(&s, &format!("timeStamp={}", urlencode(&stamp)));
    assert_eq!(body["total"], 2);
    assert_eq!(body["results"][1]["displayName"], json!(["changed"]));
    assert_eq!(body["latestUpdateAt"], changed["meta"]["lastModified"]);

    // An offset in the timestamp is honoured: the same instant written in -05:00.
    let t = chrono::DateTime::parse_from_rfc3339(&stamp).expect("stamp");
    let shifted = t.with_timezone(&chrono::FixedOffset::west_opt(5 * 3600).expect("tz"));
    let (_, body) = updated(
        &s,
        &format!("timeStamp={}", urlencode(&shifted.to_rfc3339())),
    );
    assert_eq!(body["total"], 2);
}

#[test]
fn updated_users_paging_and_bad_input() {
    let s = Server::start();
    let stamp = now_utc();
    for i in 0..5 {
        parts(s.post("/scim/v2/Users", &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("p{i}")})));
    }
    let ts = urlencode(&stamp);
    let (_, page) = updated(&s, &format!("timeStamp={ts}&start=1&pageSize=2"));
    assert_eq!(page["total"], 5, "total is the full count");
    let uids: Vec<&Value> = page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| &r["uid"][0])
        .collect();
    assert_eq!(uids, [&json!("p1"), &json!("p2")]);
    let (_, page) = updated(&s, &format!("timeStamp={ts}&start=4&pagesize=10"));
    assert_eq!(
        page["results"].as_array().map(Vec::len),
        Some(1),
        "pagesize spelling"
    );
    let (_, empty) = updated(&s, &format!("timeStamp={ts}&start=50"));
    assert_eq!(empty["results"], json!([]));
    assert_eq!(empty["total"], 5);
    assert!(empty.get("latestUpdateAt").is_none());
    for (q, detail) in [
        ("timeStamp=tomorrow".to_string(), "Unparsable date"),
        ("timeStamp=2020-09-09".to_string(), "Unparsable date"),
        ("start=0".to_string(), "Unparsable date"),
        (format!("timeStamp={ts}&start=-1"), "No suitable value"),
        (format!("timeStamp={ts}&pageSize=0"), "No suitable value"),
        (format!("timeStamp={ts}&pageSize=abc"), "No suitable value"),
    ] {
        let (st, body) = updated(&s, &q);
        assert_eq!(st, 400, "{q}: {body}");
        assert_eq!(body["status"], "400");
        assert!(
            body["detail"]
                .as_str()
                .unwrap_or_default()
                .starts_with(detail),
            "{q}: {body}"
        );
    }
}

#[test]
fn openapi_document_matches_the_endpoint() {
    let s = Server::start();
    for path in [
        "/identity/scim/resource_changes.yaml",
        "/scim/resource_changes.yaml",
    ] {
        let resp = s.get(path).send().expect("get");
        assert_eq!(resp.status().as_u16(), 200);
        let doc: Value = serde_json::from_str(&resp.text().expect("text")).expect("JSON is YAML");
        let op = &doc["paths"]["/UpdatedUsers"]["get"];
        let params: Vec<&str> = op["parameters"]
            .as_array()
            .expect("params")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(params, ["timeStamp", "start", "pageSize"]);
        let props: Vec<&String> = doc["components"]["schemas"]["UpdatedUsers"]["properties"]
            .as_object()
            .expect("props")
            .keys()
            .collect();
        assert_eq!(props, ["total", "latestUpdateAt", "results"]);
        // Every documented response code is one the endpoint really gives.
        let codes: Vec<&String> = op["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .collect();
        assert!(codes.contains(&&"200".to_string()) && codes.contains(&&"400".to_string()));
    }
    // And the response really has exactly those top-level fields.
    parts(s.post("/scim/v2/Users", &user("doc")));
    let (_, body) = updated(&s, "timeStamp=2000-01-01T00:00:00Z");
    let mut keys: Vec<&String> = body.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["latestUpdateAt", "results", "total"]);
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

/// Walk the cursor feed to its end, applying each change to `state`.
fn drain(s: &Server, cursor: &mut String, state: &mut HashMap<String, Value>) -> usize {
    let mut seen = 0;
    loop {
        let (st, page) = parts(
            s.get(&format!("/scim/v2/Changes?count=7&cursor={cursor}"))
                .send()
                .expect("feed"),
        );
        assert_eq!(st, 200, "{page}");
        for c in page["changes"].as_array().expect("changes") {
            seen += 1;
            let id = c["id"].as_str().expect("id").to_string();
            match c["op"].as_str() {
                Some("deleted") => {
                    assert!(c.get("resource").is_none());
                    state.remove(&id);
                }
                _ => {
                    state.insert(id, c["resource"].clone());
                }
            }
        }
        *cursor = page["nextCursor"].as_str().expect("cursor").to_string();
        if page["hasMore"] != true {
            return seen;
        }
    }
}

#[test]
fn cursor_feed_is_lossless_under_concurrent_writes() {
    let s = Arc::new(Server::start());
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..40 {
                    let (_, u) = parts(s.post("/scim/v2/Users", &json!({
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": format!("w{w}-{i}")})));
                    let id = u["id"].as_str().expect("id").to_string();
                    if i % 3 == 0 {
                        let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "replace", "path": "nickName", "value": format!("n{i}")}]});
                        parts(s.patch(&format!("/scim/v2/Users/{id}"), &patch));
                    }
                    if i % 5 == 0 {
                        s.delete(&format!("/scim/v2/Users/{id}")).send().expect("delete");
                    }
                }
            })
        })
        .collect();
    let mut cursor = String::new();
    let mut state = HashMap::new();
    let mut seen = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        seen += drain(&s, &mut cursor, &mut state);
        std::thread::sleep(Duration::from_millis(5));
    }
    for w in writers {
        w.join().expect("writer");
    }
    seen += drain(&s, &mut cursor, &mut state);
    // 120 creates + 42 updates + 24 deletes, each exactly once.
    assert_eq!(seen, 120 + 42 + 24);
    let (_, all) = parts(s.get("/scim/v2/Users?count=200").send().expect("list"));
    let mut db: HashMap<String, Value> = HashMap::new();
    for r in all["Resources"].as_array().expect("resources") {
        db.insert(r["id"].as_str().expect("id").to_string(), r.clone());
    }
    assert_eq!(state.len(), db.len());
    for (id, doc) in &db {
        let fed = state.get(id).expect("in feed");
        assert_eq!(fed["userName"], doc["userName"]);
        assert_eq!(fed.get("nickName"), doc.get("nickName"));
        assert_eq!(
            fed["meta"]["version"], doc["meta"]["version"],
            "latest version"
        );
    }
    // Bad cursors are refused.
    let (st, _) = parts(s.get("/scim/v2/Changes?cursor=zz").send().expect("bad"));
    assert_eq!(st, 400);
    let (st, _) = parts(s.get("/scim/v2/Changes?count=5000").send().expect("bad"));
    assert_eq!(st, 400);
}

/// `cursor=latest` is the feed's end: nothing before it, everything after.
#[test]
fn the_latest_cursor_starts_at_the_end_of_the_feed() {
    let s = Server::start();
    let (st, empty) = parts(
        s.get("/scim/v2/Changes?cursor=latest")
            .send()
            .expect("feed"),
    );
    assert_eq!(st, 200, "{empty}");
    assert_eq!(empty["changes"], json!([]));
    for name in ["before1", "before2"] {
        let (st, _) = parts(s.post("/scim/v2/Users", &user(name)));
        assert_eq!(st, 201);
    }
    // PostgreSQL hands a change out once no older transaction runs: wait for it.
    let mut all = String::new();
    let mut state = HashMap::new();
    let mut seen = 0;
    for _ in 0..200 {
        seen += drain(&s, &mut all, &mut state);
        if seen >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, latest) = parts(
        s.get("/scim/v2/Changes?cursor=latest")
            .send()
            .expect("feed"),
    );
    assert_eq!(latest["changes"], json!([]));
    let mut cursor = latest["nextCursor"].as_str().expect("cursor").to_string();
    assert_eq!(cursor, all, "the end is where a full read ends");
    let (st, _) = parts(s.post("/scim/v2/Users", &user("after")));
    assert_eq!(st, 201);
    let mut after = HashMap::new();
    for _ in 0..200 {
        if drain(&s, &mut cursor, &mut after) > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let names: Vec<&str> = after
        .values()
        .filter_map(|u| u["userName"].as_str())
        .collect();
    assert_eq!(names, ["after"]);
}
