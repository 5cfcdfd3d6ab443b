//! Concurrent clients: uniqueness holds, no member add or update is lost.

use crate::harness::{parts, Server};
use serde_json::{json, Value};
use std::sync::Arc;

fn patch_op(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

#[test]
fn parallel_creates_of_one_user_name_give_one_201() {
    let s = Arc::new(Server::start());
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                let name = if i % 2 == 0 { "Racer" } else { "racer" };
                parts(s.post(
                    "/scim/v2/Users",
                    &json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}),
                ))
                .0
            })
        })
        .collect();
    let statuses: Vec<u16> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
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
fn parallel_member_adds_lose_none() {
    let s = Arc::new(Server::start());
    let users: Vec<String> = (0..40)
        .map(|i| {
            let (_, u) = parts(s.post("/scim/v2/Users", &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("m{i}")})));
            u["id"].as_str().expect("id").to_string()
        })
        .collect();
    let (_, g) = parts(s.post(
        "/scim/v2/Groups",
        &json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "crowd"}),
    ));
    let gid = g["id"].as_str().expect("id").to_string();
    let handles: Vec<_> = users
        .chunks(5)
        .map(|chunk| {
            let (s, gid, chunk) = (s.clone(), gid.clone(), chunk.to_vec());
            std::thread::spawn(move || {
                for u in chunk {
                    // Alternate the fast member path and the general PATCH engine.
                    let op = if u.len() % 2 == 0 {
                        json!([{"op": "add", "path": "members", "value": [{"value": u}]}])
                    } else {
                        json!([{"op": "add", "path": "members", "value": [{"value": u}]},
                               {"op": "replace", "path": "displayName", "value": "crowd"}])
                    };
                    let (st, body) = parts(s.patch(
                        &format!("/scim/v2/Groups/{gid}?excludedAttributes=members"),
                        &patch_op(op),
                    ));
                    assert_eq!(st, 200, "{body}");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    let (_, g) = parts(
        s.get(&format!("/scim/v2/Groups/{gid}"))
            .send()
            .expect("get"),
    );
    assert_eq!(g["members"].as_array().map(Vec::len), Some(40), "{g}");
}

#[test]
fn if_match_read_modify_write_loses_no_update() {
    let s = Arc::new(Server::start());
    let (_, u) = parts(s.post("/scim/v2/Users", &json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "counter", "nickName": "0"})));
    let path = format!("/scim/v2/Users/{}", u["id"].as_str().expect("id"));
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (s, path) = (s.clone(), path.clone());
            std::thread::spawn(move || {
                for _ in 0..5 {
                    loop {
                        let resp = s.get(&path).send().expect("get");
                        let etag = resp.headers()["etag"].to_str().expect("etag").to_string();
                        let (_, cur) = parts(resp);
                        let n: u64 = cur["nickName"].as_str().expect("nick").parse().expect("n");
                        let resp = s
                            .send_json("PATCH", &path, &patch_op(json!([
                                {"op": "replace", "path": "nickName", "value": (n + 1).to_string()}])))
                            .header("If-Match", etag)
                            .send()
                            .expect("patch");
                        match resp.status().as_u16() {
                            200 => break,
                            412 => continue,
                            other => panic!("unexpected status {other}"),
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    let (_, done) = parts(s.get(&path).send().expect("get"));
    assert_eq!(done["nickName"], "30");
}

#[test]
fn nested_groups_give_indirect_membership() {
    let s = Server::start();
    let (_, u) = parts(s.post(
        "/scim/v2/Users",
        &json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "nested"}),
    ));
    let uid = u["id"].as_str().expect("id");
    let (_, inner) = parts(s.post(
        "/scim/v2/Groups",
        &json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "inner",
        "members": [{"value": uid}]}),
    ));
    let inner_id = inner["id"].as_str().expect("id");
    let (st, outer) = parts(s.post(
        "/scim/v2/Groups",
        &json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "outer",
        "members": [{"value": inner_id}]}),
    ));
    assert_eq!(st, 201, "{outer}");
    assert_eq!(outer["members"][0]["type"], "Group");
    let (_, user) = parts(s.get(&format!("/scim/v2/Users/{uid}")).send().expect("get"));
    let groups = user["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 2, "{user}");
    assert_eq!(groups[0]["display"], "inner");
    assert_eq!(groups[0]["type"], "direct");
    assert_eq!(groups[1]["display"], "outer");
    assert_eq!(groups[1]["type"], "indirect");
    // A group cannot contain itself.
    let (st, _) = parts(s.patch(
        &format!("/scim/v2/Groups/{inner_id}"),
        &patch_op(json!([
        {"op": "add", "path": "members", "value": [{"value": inner_id}]}])),
    ));
    assert_eq!(st, 400);
}
