//! Groups: members stored relationally, User.groups computed from them.

use crate::harness::{assert_scim_error, parts, Server};
use serde_json::{json, Value};

fn make_user(s: &Server, name: &str) -> String {
    let (st, u) = parts(s.post(
        "/scim/v2/Users",
        &json!({
        "schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name, "displayName": format!("{name} display")}),
    ));
    assert_eq!(st, 201, "{u}");
    u["id"].as_str().expect("id").to_string()
}

fn member_ids(g: &Value) -> Vec<String> {
    let mut ids: Vec<String> = g["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["value"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

#[test]
fn members_groups_and_deletion() {
    let s = Server::start();
    let a = make_user(&s, "alice");
    let b = make_user(&s, "bob");
    let (st, g) = parts(s.post(
        "/scim/v2/Groups",
        &json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Admins",
        "members": [{"value": a}, {"value": b}]}),
    ));
    assert_eq!(st, 201, "{g}");
    let gid = g["id"].as_str().expect("id").to_string();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(member_ids(&g), want);
    let alice_member = g["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["value"] == a.as_str())
        .expect("alice")
        .clone();
    assert_eq!(alice_member["display"], "alice display");
    assert_eq!(alice_member["type"], "User");

    // User.groups is computed and read-only.
    let (_, alice) = parts(s.get(&format!("/scim/v2/Users/{a}")).send().expect("get"));
    assert_eq!(alice["groups"][0]["value"], gid.as_str());
    assert_eq!(alice["groups"][0]["display"], "Admins");

    // Filter groups by member.
    let (_, by_member) = parts(
        s.get("/scim/v2/Groups")
            .query(&[("filter", format!("members.value eq \"{b}\""))])
            .send()
            .expect("filter"),
    );
    assert_eq!(by_member["totalResults"], 1, "{by_member}");

    // PATCH remove one member by value filter, add another.
    let c = make_user(&s, "carol");
    let (st, g2) = parts(s.patch(
        &format!("/scim/v2/Groups/{gid}"),
        &json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "remove", "path": format!("members[value eq \"{a}\"]")},
            {"op": "add", "path": "members", "value": [{"value": c}]}]}),
    ));
    assert_eq!(st, 200, "{g2}");
    let mut want = vec![b.clone(), c.clone()];
    want.sort();
    assert_eq!(member_ids(&g2), want);

    // Unknown members are refused, unless Group-Overhead-Bypass is sent.
    let bad = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": "ghost"}]}]});
    assert_scim_error(
        s.patch(&format!("/scim/v2/Groups/{gid}"), &bad),
        400,
        Some("invalidValue"),
    );
    let resp = s
        .send_json("PATCH", &format!("/scim/v2/Groups/{gid}"), &bad)
        .header("Group-Overhead-Bypass", "true")
        .send()
        .expect("patch");
    let (st, g3) = parts(resp);
    assert_eq!(st, 200, "{g3}");
    assert!(
        g3["members"]
            .as_array()
            .expect("members")
            .iter()
            .all(|m| m.get("display").is_none()),
        "display never returned under Group-Overhead-Bypass: {g3}"
    );

    // excludedAttributes=members
    let (_, slim) = parts(
        s.get(&format!("/scim/v2/Groups/{gid}?excludedAttributes=members"))
            .send()
            .expect("get"),
    );
    assert!(slim.get("members").is_none());
    assert_eq!(slim["displayName"], "Admins");

    // Deleting a user removes it from its groups.
    assert_eq!(
        s.delete(&format!("/scim/v2/Users/{b}"))
            .send()
            .expect("delete")
            .status()
            .as_u16(),
        204
    );
    let (_, g4) = parts(
        s.get(&format!("/scim/v2/Groups/{gid}"))
            .send()
            .expect("get"),
    );
    assert!(!member_ids(&g4).contains(&b));
    assert!(member_ids(&g4).contains(&c));

    // Group displayName is required.
    assert_scim_error(
        s.post(
            "/scim/v2/Groups",
            &json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"]}),
        ),
        400,
        Some("invalidValue"),
    );
}
