//! The seed's raw-HTTP walk-through, verbatim against the Gluu prefix, plus paging.

use crate::harness::{parts, Server};
use serde_json::{json, Value};

const GLUU: &str = "/identity/restv1/scim/v2";

fn seed_user() -> Value {
    json!({
        "schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName":"ajsmith",
        "name":{ "familyName":"Smith", "givenName":"Joe" },
        "displayName":"Average Joe"
    })
}

#[test]
fn seed_walkthrough_on_the_gluu_prefix() {
    let s = Server::start();
    // Create.
    let resp = s.post(&format!("{GLUU}/Users"), &seed_user());
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .expect("Location header");
    let etag = resp.headers().get("etag").cloned().expect("ETag header");
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/scim+json")
    );
    let (status, user) = parts(resp);
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().expect("id").to_string();
    assert_eq!(user["userName"], "ajsmith");
    assert_eq!(user["name"]["givenName"], "Joe");
    assert_eq!(user["meta"]["resourceType"], "User");
    assert!(user["meta"]["created"].is_string());
    assert!(user["meta"]["lastModified"].is_string());
    assert_eq!(user["meta"]["version"], etag.to_str().expect("etag"));
    assert_eq!(location, s.url(&format!("{GLUU}/Users/{id}")));
    assert_eq!(user["meta"]["location"], location);

    // Retrieve.
    let (status, got) = parts(s.get(&format!("{GLUU}/Users/{id}")).send().expect("get"));
    assert_eq!(status, 200);
    assert_eq!(got["displayName"], "Average Joe");

    // Filter by userName (case-insensitive attribute).
    let (status, list) = parts(
        s.get(&format!("{GLUU}/Users"))
            .query(&[("filter", "userName eq \"AJSMITH\""), ("count", "10")])
            .send()
            .expect("filter"),
    );
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["Resources"][0]["id"], id.as_str());

    // PUT as in the seed.
    let put = json!({
        "schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": id,
        "userName":"ajsmith",
        "name":{ "familyName":"Smith", "givenName":"Joe" },
        "displayName":"Joe Smith",
        "emails": [{ "value": "jsmith@example.com", "type": "work", "primary": true }]
    });
    let (status, replaced) = parts(s.put(&format!("{GLUU}/Users/{id}"), &put));
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["displayName"], "Joe Smith");
    assert_eq!(replaced["emails"][0]["value"], "jsmith@example.com");
    assert_eq!(replaced["meta"]["created"], user["meta"]["created"]);
    assert_ne!(replaced["meta"]["version"], user["meta"]["version"]);

    // PATCH: the seed's operations.
    let patch = json!({
      "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
      "Operations": [
        {"op": "replace", "value": {"name": {"givenName": "Joey"}}},
        {"op": "replace", "path": "emails[type eq \"work\" or primary eq false].value",
         "value": "jsmith@foodmafia.com"},
        {"op": "add", "value": {"name": {"middleName": "Jhon"}}},
        {"op": "add", "value": {
            "emails": [{"primary": true, "value": "my@own.mail"}],
            "phoneNumbers": [{"type": "home", "value": "5 123 8901"}, {"value": "5 123 8902"}]}},
        {"op": "remove", "path": "name.middleName"},
        {"op": "remove", "path": "phoneNumbers[value ew \"01\"].type"}
      ]
    });
    let (status, patched) = parts(s.patch(&format!("{GLUU}/Users/{id}"), &patch));
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        patched["name"],
        json!({"familyName": "Smith", "givenName": "Joey"})
    );
    let emails = patched["emails"].as_array().expect("emails");
    assert_eq!(emails.len(), 2);
    assert!(emails
        .iter()
        .any(|e| e["value"] == "jsmith@foodmafia.com" && e["type"] == "work"));
    assert!(emails.iter().any(|e| e["value"] == "my@own.mail"));
    let primaries = emails.iter().filter(|e| e["primary"] == true).count();
    assert_eq!(primaries, 1, "exactly one primary email: {patched}");
    assert_eq!(
        patched["phoneNumbers"],
        json!([{"value": "5 123 8901"}, {"value": "5 123 8902"}])
    );
    // The PATCH was stored, not just echoed.
    let (_, again) = parts(s.get(&format!("{GLUU}/Users/{id}")).send().expect("get"));
    assert_eq!(again["name"]["givenName"], "Joey");

    // Delete.
    let resp = s
        .delete(&format!("{GLUU}/Users/{id}"))
        .send()
        .expect("delete");
    assert_eq!(resp.status().as_u16(), 204);
    let resp = s.get(&format!("{GLUU}/Users/{id}")).send().expect("get");
    assert_eq!(resp.status().as_u16(), 404);
    let resp = s
        .delete(&format!("{GLUU}/Users/{id}"))
        .send()
        .expect("delete");
    assert_eq!(resp.status().as_u16(), 404);
}

#[test]
fn all_prefixes_serve_the_same_data() {
    let s = Server::start();
    let (_, user) = parts(s.post("/scim/v2/Users", &seed_user()));
    let id = user["id"].as_str().expect("id");
    for prefix in [
        "/scim/v2",
        "/identity/restv1/scim/v2",
        "/scim/restv1/scim/v2",
    ] {
        let (status, got) = parts(s.get(&format!("{prefix}/Users/{id}")).send().expect("get"));
        assert_eq!(status, 200);
        assert_eq!(got["userName"], "ajsmith");
        assert_eq!(
            got["meta"]["location"],
            s.url(&format!("{prefix}/Users/{id}"))
        );
    }
}

#[test]
fn list_paging_and_empty_results() {
    let s = Server::start();
    let (status, empty) = parts(s.get("/scim/v2/Users").send().expect("list"));
    assert_eq!(status, 200);
    assert_eq!(empty["totalResults"], 0);
    assert_eq!(empty["Resources"], json!([]));
    assert_eq!(
        empty["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    for i in 0..7 {
        let (st, _) = parts(s.post(
            "/scim/v2/Users",
            &json!({
                "schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": format!("user{i}")
            }),
        ));
        assert_eq!(st, 201);
    }
    let (_, page) = parts(
        s.get("/scim/v2/Users")
            .query(&[("startIndex", "3"), ("count", "2"), ("sortBy", "userName")])
            .send()
            .expect("page"),
    );
    assert_eq!(page["totalResults"], 7);
    assert_eq!(page["itemsPerPage"], 2);
    assert_eq!(page["startIndex"], 3);
    assert_eq!(page["Resources"][0]["userName"], "user2");
    assert_eq!(page["Resources"][1]["userName"], "user3");
    let (_, count_only) = parts(
        s.get("/scim/v2/Users")
            .query(&[("count", "0")])
            .send()
            .expect("count"),
    );
    assert_eq!(count_only["totalResults"], 7);
    assert_eq!(count_only["Resources"], json!([]));
    // startIndex below 1 is treated as 1.
    let (_, first) = parts(
        s.get("/scim/v2/Users")
            .query(&[("startIndex", "-4"), ("count", "1"), ("sortBy", "userName")])
            .send()
            .expect("first"),
    );
    assert_eq!(first["startIndex"], 1);
    assert_eq!(first["Resources"][0]["userName"], "user0");
    // POST /.search is the same search.
    let (status, found) = parts(s.post(
        "/scim/v2/Users/.search",
        &json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": "userName eq \"user5\"",
            "attributes": ["userName"]
        }),
    ));
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["userName"], "user5");
    assert!(found["Resources"][0].get("meta").is_none());
}

#[test]
fn password_is_write_only_and_projection_works_on_writes() {
    let s = Server::start();
    let mut body = seed_user();
    body["password"] = json!("s3cret!");
    body["emails"] = json!([{"value": "joe@example.com", "type": "work"}]);
    let resp = s
        .send_json("POST", "/scim/v2/Users?attributes=userName", &body)
        .send()
        .expect("post");
    let (status, user) = parts(resp);
    assert_eq!(status, 201);
    assert!(user.get("password").is_none());
    assert!(
        user.get("emails").is_none(),
        "attributes=userName honoured: {user}"
    );
    assert_eq!(user["userName"], "ajsmith");
    assert!(user["id"].is_string(), "id is always returned");
    let id = user["id"].as_str().expect("id");
    let (_, full) = parts(s.get(&format!("/scim/v2/Users/{id}")).send().expect("get"));
    assert!(full.get("password").is_none());
    assert!(full.get("emails").is_some());
    let (_, excluded) = parts(
        s.get(&format!(
            "/scim/v2/Users/{id}?excludedAttributes=emails,name"
        ))
        .send()
        .expect("get"),
    );
    assert!(excluded.get("emails").is_none() && excluded.get("name").is_none());
    assert_eq!(excluded["displayName"], "Average Joe");
    // The hash is at rest, never the clear text.
    let db = std::fs::read(s.data_dir.join("scimd.db")).unwrap_or_default();
    let wal = std::fs::read(s.data_dir.join("scimd.db-wal")).unwrap_or_default();
    let needle = b"s3cret!";
    let contains = |h: &[u8]| h.windows(needle.len()).any(|w| w == needle);
    assert!(
        !contains(&db) && !contains(&wal),
        "clear-text password on disk"
    );
}

#[test]
fn etags_if_match_and_if_none_match() {
    let s = Server::start();
    let resp = s.post("/scim/v2/Users", &seed_user());
    let etag = resp.headers()["etag"].to_str().expect("etag").to_string();
    let (_, user) = parts(resp);
    let id = user["id"].as_str().expect("id");
    let path = format!("/scim/v2/Users/{id}");
    let resp = s
        .get(&path)
        .header("If-None-Match", &etag)
        .send()
        .expect("get");
    assert_eq!(resp.status().as_u16(), 304);
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "X"}]});
    let resp = s
        .send_json("PATCH", &path, &patch)
        .header("If-Match", "W/\"999\"")
        .send()
        .expect("patch");
    crate::harness::assert_scim_error(resp, 412, None);
    let resp = s
        .send_json("PATCH", &path, &patch)
        .header("If-Match", &etag)
        .send()
        .expect("patch");
    assert_eq!(resp.status().as_u16(), 200);
    let resp = s
        .delete(&path)
        .header("If-Match", &etag)
        .send()
        .expect("delete");
    crate::harness::assert_scim_error(resp, 412, None);
    let resp = s
        .get(&path)
        .header("If-None-Match", &etag)
        .send()
        .expect("get");
    assert_eq!(
        resp.status().as_u16(),
        200,
        "changed resource is sent again"
    );
}
