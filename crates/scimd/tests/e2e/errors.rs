//! Bad input gets a SCIM error with the right status and scimType, and changes nothing.

use crate::harness::{assert_scim_error, parts, Server};
use serde_json::{json, Value};

fn user(name: &str) -> Value {
    json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name})
}

fn total_users(s: &Server) -> u64 {
    let (_, v) = parts(s.get("/scim/v2/Users?count=0").send().expect("count"));
    v["totalResults"].as_u64().expect("total")
}

#[test]
fn rejected_creates_change_nothing() {
    let s = Server::start_with(&["--max-payload-bytes", "4096"]);
    let raw = |body: &str, ct: &str| {
        s.client
            .post(s.url("/scim/v2/Users"))
            .header("Content-Type", ct)
            .body(body.to_string())
            .send()
            .expect("post")
    };
    assert_scim_error(
        raw("{not json", "application/scim+json"),
        400,
        Some("invalidSyntax"),
    );
    assert_scim_error(raw("[1,2]", "application/json"), 400, Some("invalidSyntax"));
    assert_scim_error(raw(&user("a").to_string(), "text/plain"), 415, None);
    let big = json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "big", "displayName": "x".repeat(10_000)});
    assert_scim_error(raw(&big.to_string(), "application/scim+json"), 413, None);
    let body = assert_scim_error(
        s.post(
            "/scim/v2/Users",
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "a", "shoeSize": 42}),
        ),
        400,
        Some("invalidSyntax"),
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("shoeSize"),
        "{body}"
    );
    assert_scim_error(
        s.post(
            "/scim/v2/Users",
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "a", "active": "maybe"}),
        ),
        400,
        Some("invalidValue"),
    );
    assert_scim_error(
        s.post(
            "/scim/v2/Users",
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
            "displayName": "no userName"}),
        ),
        400,
        Some("invalidValue"),
    );
    assert_eq!(total_users(&s), 0);
}

#[test]
fn duplicate_user_names_conflict_case_insensitively() {
    let s = Server::start();
    assert_eq!(parts(s.post("/scim/v2/Users", &user("Bjensen"))).0, 201);
    let body = assert_scim_error(
        s.post("/scim/v2/Users", &user("bjensen")),
        409,
        Some("uniqueness"),
    );
    assert!(body["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("bjensen"));
    let (_, other) = parts(s.post("/scim/v2/Users", &user("other")));
    let id = other["id"].as_str().expect("id");
    // Renaming onto a taken name is refused and leaves the resource as it was.
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "userName", "value": "BJENSEN"}]});
    assert_scim_error(
        s.patch(&format!("/scim/v2/Users/{id}"), &patch),
        409,
        Some("uniqueness"),
    );
    let (_, still) = parts(s.get(&format!("/scim/v2/Users/{id}")).send().expect("get"));
    assert_eq!(still["userName"], "other");
    assert_eq!(still["meta"]["version"], other["meta"]["version"]);
    assert_eq!(total_users(&s), 2);
}

#[test]
fn bad_patches_and_puts_change_nothing() {
    let s = Server::start();
    let (_, u) = parts(s.post(
        "/scim/v2/Users",
        &json!({
        "schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "pat", "emails": [{"value": "p@x.org", "type": "work"}]}),
    ));
    let id = u["id"].as_str().expect("id");
    let path = format!("/scim/v2/Users/{id}");
    let op = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    assert_scim_error(
        s.patch(
            &path,
            &op(json!([{"op": "remove", "path": "emails[type eq \"home\"]"}])),
        ),
        400,
        Some("noTarget"),
    );
    assert_scim_error(
        s.patch(
            &path,
            &op(json!([{"op": "replace", "path": "nope", "value": 1}])),
        ),
        400,
        Some("invalidPath"),
    );
    assert_scim_error(
        s.patch(
            &path,
            &op(json!([{"op": "replace", "path": "id", "value": "x"}])),
        ),
        400,
        Some("mutability"),
    );
    assert_scim_error(
        s.patch(&path, &op(json!([{"op": "remove", "path": "userName"}]))),
        400,
        None.or(Some("invalidValue")),
    );
    assert_scim_error(
        s.patch(&path, &op(json!([{"op": "jump", "path": "userName"}]))),
        400,
        Some("invalidSyntax"),
    );
    // First op valid, second invalid: the whole PATCH is rejected.
    assert_scim_error(
        s.patch(
            &path,
            &op(json!([
            {"op": "replace", "path": "displayName", "value": "changed"},
            {"op": "replace", "path": "active", "value": "nope"}])),
        ),
        400,
        Some("invalidValue"),
    );
    let mut put = json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "someone-else", "userName": "pat"});
    assert_scim_error(s.put(&path, &put), 400, Some("invalidValue"));
    put["id"] = json!(id);
    put["userName"] = json!(7);
    assert_scim_error(s.put(&path, &put), 400, Some("invalidValue"));
    let (_, now) = parts(s.get(&path).send().expect("get"));
    assert_eq!(now, u, "nothing changed");
    assert_scim_error(
        s.patch(
            "/scim/v2/Users/missing",
            &op(json!([{"op": "add", "path": "displayName", "value": "x"}])),
        ),
        404,
        None,
    );
    // Entra-style op names and values are accepted.
    let (st, ok) = parts(s.patch(
        &path,
        &op(json!([{"op": "Replace", "path": "active", "value": "False"}])),
    ));
    assert_eq!(st, 200, "{ok}");
    assert_eq!(ok["active"], false);
}

#[test]
fn bad_search_parameters() {
    let s = Server::start_with(&["--max-results", "50"]);
    assert_scim_error(
        s.get("/scim/v2/Users?filter=userName%20eq")
            .send()
            .expect("get"),
        400,
        Some("invalidFilter"),
    );
    assert_scim_error(
        s.get("/scim/v2/Users?filter=shoeSize%20eq%201")
            .send()
            .expect("get"),
        400,
        Some("invalidFilter"),
    );
    assert_scim_error(
        s.get("/scim/v2/Users?count=51").send().expect("get"),
        400,
        Some("tooMany"),
    );
    assert_scim_error(
        s.get("/scim/v2/Users?count=ten").send().expect("get"),
        400,
        Some("invalidValue"),
    );
    assert_scim_error(
        s.get("/scim/v2/Users?sortBy=shoeSize").send().expect("get"),
        400,
        Some("invalidValue"),
    );
}
