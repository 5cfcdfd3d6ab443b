//! /Bulk over HTTP: ordering, bulkId references, failOnErrors, limits.

use crate::harness::{assert_scim_error, parts, Server};
use serde_json::{json, Value};

fn bulk(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops})
}

fn user_op(bulk_id: &str, name: &str) -> Value {
    json!({"method": "POST", "path": "/Users", "bulkId": bulk_id,
           "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}})
}

#[test]
fn bulk_ids_resolve_in_paths_and_data_even_forward() {
    let s = Server::start();
    // The group refers to a user created after it in the request.
    let req = bulk(json!([
        {"method": "POST", "path": "/Groups", "bulkId": "g1",
         "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                  "displayName": "Tour Guides", "members": [{"type": "User", "value": "bulkId:u1"}]}},
        user_op("u1", "alice"),
        {"method": "PATCH", "path": "/Users/bulkId:u1",
         "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                  "Operations": [{"op": "replace", "path": "displayName", "value": "Alice A."}]}}
    ]));
    let (st, resp) = parts(s.post("/scim/v2/Bulk", &req));
    assert_eq!(st, 200, "{resp}");
    assert_eq!(
        resp["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
    );
    let ops = resp["Operations"].as_array().expect("ops");
    assert_eq!(ops.len(), 3);
    assert!(
        ops.iter()
            .all(|o| o["status"] == "201" || o["status"] == "200"),
        "{resp}"
    );
    let group_loc = ops.iter().find(|o| o["bulkId"] == "g1").expect("g1")["location"]
        .as_str()
        .expect("location")
        .to_string();
    let user_loc = ops.iter().find(|o| o["bulkId"] == "u1").expect("u1")["location"]
        .as_str()
        .expect("location")
        .to_string();
    let user_id = user_loc.rsplit('/').next().expect("id");
    let (_, group) = parts(s.client.get(&group_loc).send().expect("get"));
    assert_eq!(group["members"][0]["value"], user_id, "{group}");
    let (_, user) = parts(s.client.get(&user_loc).send().expect("get"));
    assert_eq!(user["displayName"], "Alice A.");
}

#[test]
fn circular_and_unknown_references_fail_with_409() {
    let s = Server::start();
    let req = bulk(json!([
        {"method": "POST", "path": "/Groups", "bulkId": "a",
         "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                  "displayName": "A", "members": [{"type": "Group", "value": "bulkId:b"}]}},
        {"method": "POST", "path": "/Groups", "bulkId": "b",
         "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                  "displayName": "B", "members": [{"type": "Group", "value": "bulkId:a"}]}},
        {"method": "DELETE", "path": "/Users/bulkId:nowhere"}
    ]));
    let (st, resp) = parts(s.post("/scim/v2/Bulk", &req));
    assert_eq!(st, 200, "{resp}");
    let ops = resp["Operations"].as_array().expect("ops");
    assert_eq!(ops.len(), 3);
    for o in ops {
        assert_eq!(o["status"], "409", "{resp}");
        assert_eq!(o["response"]["status"], "409");
    }
    let (_, groups) = parts(s.get("/scim/v2/Groups?count=0").send().expect("groups"));
    assert_eq!(groups["totalResults"], 0);
}

#[test]
fn fail_on_errors_stops_processing() {
    let s = Server::start();
    let mut req = bulk(json!([
        user_op("1", "dup"),
        user_op("2", "dup"),
        user_op("3", "DUP"),
        user_op("4", "fine")
    ]));
    req["failOnErrors"] = json!(1);
    let (st, resp) = parts(s.post("/scim/v2/Bulk", &req));
    assert_eq!(st, 200, "{resp}");
    let ops = resp["Operations"].as_array().expect("ops");
    assert_eq!(
        ops.len(),
        2,
        "processing stops after the first error: {resp}"
    );
    assert_eq!(ops[0]["status"], "201");
    assert_eq!(ops[1]["status"], "409");
    assert_eq!(ops[1]["response"]["scimType"], "uniqueness");
    let (_, users) = parts(s.get("/scim/v2/Users?count=0").send().expect("users"));
    assert_eq!(users["totalResults"], 1);
}

/// Creations that refer to no bulkId are stored together; a validation failure in
/// the middle of such a run still counts in request order, and what comes after
/// the failOnErrors limit is neither answered nor stored.
#[test]
fn fail_on_errors_counts_in_order_inside_a_run_of_creations() {
    let s = Server::start();
    let mut bad = user_op("2", "x");
    bad["data"]["userName"] = json!(17);
    let mut req = bulk(json!([
        user_op("1", "first"),
        bad,
        user_op("3", "FIRST"),
        user_op("4", "never")
    ]));
    req["failOnErrors"] = json!(2);
    let (st, resp) = parts(s.post("/scim/v2/Bulk", &req));
    assert_eq!(st, 200, "{resp}");
    let statuses: Vec<&str> = resp["Operations"]
        .as_array()
        .expect("ops")
        .iter()
        .map(|o| o["status"].as_str().expect("status"))
        .collect();
    assert_eq!(statuses, ["201", "400", "409"], "{resp}");
    let (_, never) = parts(
        s.get("/scim/v2/Users?filter=userName%20eq%20%22never%22")
            .send()
            .expect("search"),
    );
    assert_eq!(never["totalResults"], 0, "{never}");
    let (_, all) = parts(s.get("/scim/v2/Users?count=0").send().expect("users"));
    assert_eq!(all["totalResults"], 1);
}

#[test]
fn limits_and_bad_requests() {
    let s = Server::start_with(&[
        "--bulk-max-operations",
        "2",
        "--bulk-max-payload-bytes",
        "2000",
    ]);
    let three = bulk(json!([
        user_op("1", "a"),
        user_op("2", "b"),
        user_op("3", "c")
    ]));
    assert_scim_error(s.post("/scim/v2/Bulk", &three), 413, None);
    let big = bulk(json!([{"method": "POST", "path": "/Users", "bulkId": "x",
        "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x".repeat(3000)}}]));
    assert_scim_error(s.post("/scim/v2/Bulk", &big), 413, None);
    assert_scim_error(
        s.post("/scim/v2/Bulk", &json!({"Operations": []})),
        400,
        Some("invalidSyntax"),
    );
    let no_bulk_id = bulk(json!([{"method": "POST", "path": "/Users",
        "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "n"}}]));
    assert_scim_error(
        s.post("/scim/v2/Bulk", &no_bulk_id),
        400,
        Some("invalidSyntax"),
    );
    let (st, resp) = parts(s.post("/scim/v2/Bulk", &bulk(json!([
        {"method": "PUT", "path": "/Users/missing", "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "m"}},
        {"method": "DELETE", "path": "/Nope/1"}]))));
    assert_eq!(st, 200);
    assert_eq!(resp["Operations"][0]["status"], "404");
    assert_eq!(resp["Operations"][1]["status"], "404");
    let (_, users) = parts(s.get("/scim/v2/Users?count=0").send().expect("users"));
    assert_eq!(users["totalResults"], 0);
}
