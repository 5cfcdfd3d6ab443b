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

/// GET of a group writes its member list member by member; under every
/// projection it must equal the same group rendered as a search result.
#[test]
fn get_group_equals_its_search_result_under_any_projection() {
    let s = Server::start();
    let a = make_user(&s, "proj-a");
    let (st, nameless) = parts(s.post(
        "/scim/v2/Users",
        &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "proj-b"}),
    ));
    assert_eq!(st, 201, "{nameless}");
    let (st, inner) = parts(s.post(
        "/scim/v2/Groups",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Inner"}),
    ));
    assert_eq!(st, 201, "{inner}");
    let (st, g) = parts(s.post(
        "/scim/v2/Groups",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Projected",
                "members": [{"value": a}, {"value": nameless["id"]}, {"value": inner["id"], "type": "Group"}]}),
    ));
    assert_eq!(st, 201, "{g}");
    let id = g["id"].as_str().expect("id");
    let projections = [
        vec![],
        vec![("attributes", "members")],
        vec![("attributes", "members.value")],
        vec![("attributes", "members.display")],
        vec![("attributes", "displayName,members.type")],
        vec![("attributes", "displayName")],
        vec![("excludedAttributes", "members")],
        vec![("excludedAttributes", "members.display")],
        vec![("excludedAttributes", "members.value,members.$ref")],
        vec![("excludedAttributes", "displayName")],
    ];
    for p in projections {
        let (st, got) = parts(
            s.get(&format!("/scim/v2/Groups/{id}"))
                .query(&p)
                .send()
                .expect("get"),
        );
        assert_eq!(st, 200, "{got}");
        let mut q = p.clone();
        let filter = format!("id eq \"{id}\"");
        q.push(("filter", filter.as_str()));
        let (st, found) = parts(s.get("/scim/v2/Groups").query(&q).send().expect("search"));
        assert_eq!(st, 200, "{found}");
        assert_eq!(got, found["Resources"][0], "projection {p:?}");
    }
    let (_, plain) = parts(s.get(&format!("/scim/v2/Groups/{id}")).send().expect("get"));
    assert_eq!(
        plain["members"].as_array().map(Vec::len),
        Some(3),
        "{plain}"
    );
    // With Group-Overhead-Bypass no member shows a display: asking for display only
    // leaves nothing of them, on both paths.
    let only_display = [
        ("attributes", "members.display"),
        ("Group-Overhead-Bypass", "true"),
    ];
    let (_, got) = parts(
        s.get(&format!("/scim/v2/Groups/{id}"))
            .query(&only_display)
            .send()
            .expect("get"),
    );
    let filter = format!("id eq \"{id}\"");
    let mut q = only_display.to_vec();
    q.push(("filter", filter.as_str()));
    let (_, found) = parts(s.get("/scim/v2/Groups").query(&q).send().expect("search"));
    assert_eq!(got, found["Resources"][0], "{got} vs {found}");
    let bypassed = parts(
        s.get(&format!("/scim/v2/Groups/{id}"))
            .header("Group-Overhead-Bypass", "true")
            .send()
            .expect("get"),
    )
    .1;
    assert!(
        bypassed["members"]
            .as_array()
            .expect("members")
            .iter()
            .all(|m| m.get("display").is_none()),
        "{bypassed}"
    );
}
