//! Search over HTTP: the filter grammar end to end, sorting, root /.search.

use crate::harness::{parts, Server};
use serde_json::{json, Value};

fn seed(s: &Server) {
    let users = [
        (
            "alice",
            "Alice Adams",
            "alice@example.com",
            "work",
            "1001",
            true,
        ),
        (
            "bob",
            "Bob Brown",
            "bob@corp.example.org",
            "home",
            "1002",
            false,
        ),
        (
            "carol",
            "Carol Chen",
            "carol@example.com",
            "work",
            "2001",
            true,
        ),
        (
            "Émile",
            "Émile Zola",
            "emile@example.fr",
            "work",
            "3001",
            true,
        ),
    ];
    for (name, display, email, kind, emp, active) in users {
        let (st, body) = parts(s.post("/scim/v2/Users", &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "userName": name, "displayName": display, "active": active,
            "emails": [{"value": email, "type": kind, "primary": true}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": emp}
        })));
        assert_eq!(st, 201, "{body}");
    }
    let (st, _) = parts(s.post(
        "/scim/v2/Groups",
        &json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Alice fans"}),
    ));
    assert_eq!(st, 201);
}

fn names(s: &Server, filter: &str, extra: &[(&str, &str)]) -> Vec<String> {
    let mut q = vec![("filter", filter)];
    q.extend_from_slice(extra);
    let (st, v) = parts(s.get("/scim/v2/Users").query(&q).send().expect("search"));
    assert_eq!(st, 200, "{filter}: {v}");
    v["Resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r["userName"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn filter_grammar_end_to_end() {
    let s = Server::start();
    seed(&s);
    let cases: &[(&str, &[&str])] = &[
        ("userName sw \"a\"", &["alice"]),
        ("emails.value co \"@example.com\"", &["alice", "carol"]),
        (
            "emails[type eq \"work\" and value co \"example.com\"]",
            &["alice", "carol"],
        ),
        ("active eq false", &["bob"]),
        ("not (active eq true)", &["bob"]),
        ("userName eq \"ÉMILE\"", &["Émile"]),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber sw \"100\"",
            &["alice", "bob"],
        ),
        (
            "displayName ew \"n\" or userName eq \"bob\"",
            &["bob", "carol"],
        ),
        (
            "(userName eq \"alice\" or userName eq \"bob\") and active eq true",
            &["alice"],
        ),
        (
            "meta.created gt \"2000-01-01T00:00:00Z\" and emails pr",
            &["alice", "bob", "carol", "Émile"],
        ),
        ("nickName pr", &[]),
    ];
    for (filter, want) in cases {
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(sorted(names(&s, filter, &[])), sorted(want), "{filter}");
    }
}

#[test]
fn sorting() {
    let s = Server::start();
    seed(&s);
    let all = "userName pr";
    assert_eq!(
        names(&s, all, &[("sortBy", "userName")]),
        ["alice", "bob", "carol", "Émile"]
    );
    assert_eq!(
        names(
            &s,
            all,
            &[("sortBy", "userName"), ("sortOrder", "descending")]
        ),
        ["Émile", "carol", "bob", "alice"]
    );
    assert_eq!(
        names(
            &s,
            all,
            &[
                (
                    "sortBy",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"
                ),
                ("sortOrder", "descending")
            ]
        ),
        ["Émile", "carol", "bob", "alice"]
    );
    assert_eq!(
        names(&s, all, &[("sortBy", "emails")]),
        ["alice", "bob", "carol", "Émile"]
    );
}

#[test]
fn root_search_spans_resource_types() {
    let s = Server::start();
    seed(&s);
    let req = |filter: Option<&str>, start: u64, count: u64| -> Value {
        let mut body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "startIndex": start, "count": count});
        if let Some(f) = filter {
            body["filter"] = json!(f);
        }
        let (st, v) = parts(s.post("/scim/v2/.search", &body));
        assert_eq!(st, 200, "{v}");
        v
    };
    let all = req(None, 1, 100);
    assert_eq!(all["totalResults"], 5);
    let types: Vec<&str> = all["Resources"]
        .as_array()
        .expect("r")
        .iter()
        .filter_map(|r| r["meta"]["resourceType"].as_str())
        .collect();
    assert_eq!(types.iter().filter(|t| **t == "User").count(), 4);
    assert_eq!(types.iter().filter(|t| **t == "Group").count(), 1);
    // Paging across the type boundary.
    let page = req(None, 4, 2);
    assert_eq!(page["itemsPerPage"], 2);
    assert_eq!(page["Resources"][1]["meta"]["resourceType"], "Group");
    // displayName exists on both types.
    let both = req(Some("displayName sw \"Al\""), 1, 10);
    assert_eq!(both["totalResults"], 2);
    // userName only on Users: Groups simply do not match.
    let users = req(Some("userName eq \"bob\""), 1, 10);
    assert_eq!(users["totalResults"], 1);
    let (st, _) = parts(s.post("/scim/v2/.search", &json!({"filter": "shoeSize eq 1"})));
    assert_eq!(st, 400);
}

fn page(s: &Server, q: &[(&str, &str)]) -> Value {
    let (st, v) = parts(s.get("/scim/v2/Users").query(q).send().expect("page"));
    assert_eq!(st, 200, "{v}");
    v
}

fn user_names(v: &Value) -> Vec<String> {
    v["Resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r["userName"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn cursor_paging_survives_concurrent_changes() {
    let s = Server::start();
    let mut ids = std::collections::HashMap::new();
    for i in 0..25 {
        let (_, u) = parts(s.post("/scim/v2/Users", &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("c{i:02}")})));
        ids.insert(
            format!("c{i:02}"),
            u["id"].as_str().expect("id").to_string(),
        );
    }
    let (_, spc) = parts(s.get("/scim/v2/ServiceProviderConfig").send().expect("spc"));
    assert_eq!(spc["pagination"]["cursor"], true);

    for sort in [
        vec![],
        vec![("sortBy", "userName"), ("sortOrder", "descending")],
    ] {
        let mut seen: Vec<String> = Vec::new();
        let mut cursor = String::new();
        let mut pages = 0;
        loop {
            let mut q = vec![("count", "10"), ("cursor", cursor.as_str())];
            q.extend(sort.iter().cloned());
            let v = page(&s, &q);
            assert!(v.get("startIndex").is_none());
            if pages == 0 {
                assert!(v.get("previousCursor").is_none());
                // Changes during the walk: delete one not yet seen, add one.
                let victim = if sort.is_empty() { "c24" } else { "c00" };
                s.delete(&format!("/scim/v2/Users/{}", ids[victim]))
                    .send()
                    .expect("delete");
                parts(s.post(
                    "/scim/v2/Users",
                    &json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("new{}", sort.len())}),
                ));
            }
            pages += 1;
            seen.extend(user_names(&v));
            match v["nextCursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => break,
            }
        }
        let unique: std::collections::HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "no repeats: {seen:?}");
        // Everyone present for the whole walk was seen.
        for i in 1..24 {
            assert!(
                seen.contains(&format!("c{i:02}")),
                "c{i:02} missing from {seen:?}"
            );
        }
        if !sort.is_empty() {
            let mut desc = seen.clone();
            desc.sort_by(|a, b| b.cmp(a));
            assert_eq!(seen, desc, "descending order kept across pages");
        }
        // Restore the deleted user for the next round.
        let victim = if sort.is_empty() { "c24" } else { "c00" };
        let (_, u) = parts(s.post(
            "/scim/v2/Users",
            &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": victim}),
        ));
        ids.insert(
            victim.to_string(),
            u["id"].as_str().expect("id").to_string(),
        );
    }

    // previousCursor walks back to the same page.
    let q = [("count", "5"), ("cursor", ""), ("sortBy", "userName")];
    let first = page(&s, &q);
    let second = page(
        &s,
        &[
            ("count", "5"),
            ("cursor", first["nextCursor"].as_str().expect("next")),
            ("sortBy", "userName"),
        ],
    );
    let back = page(
        &s,
        &[
            ("count", "5"),
            ("cursor", second["previousCursor"].as_str().expect("prev")),
            ("sortBy", "userName"),
        ],
    );
    assert_eq!(user_names(&back), user_names(&first));
    assert!(back.get("nextCursor").is_some());

    // Misuse.
    let (st, e) = parts(
        s.get("/scim/v2/Users")
            .query(&[("cursor", "zz")])
            .send()
            .expect("bad"),
    );
    assert_eq!((st, e["scimType"].as_str()), (400, Some("invalidCursor")));
    let other = first["nextCursor"].as_str().expect("next");
    let (st, e) = parts(
        s.get("/scim/v2/Users")
            .query(&[("cursor", other), ("sortBy", "displayName")])
            .send()
            .expect("bad"),
    );
    assert_eq!(
        (st, e["scimType"].as_str()),
        (400, Some("invalidCursor")),
        "cursor of another search"
    );
    let (st, _) = parts(
        s.get("/scim/v2/Users")
            .query(&[("cursor", ""), ("startIndex", "2")])
            .send()
            .expect("bad"),
    );
    assert_eq!(st, 400);
}

/// `userName eq` is answered from the uniqueness index: it must agree with the
/// general search on case folding, counts, paging and projection.
#[test]
fn user_name_eq_lookup_matches_the_general_search() {
    let s = Server::start();
    seed(&s);
    let found = page(&s, &[("filter", r#"userName eq "ÉMILE""#)]);
    assert_eq!(found["totalResults"], 1, "{found}");
    assert_eq!(user_names(&found), ["Émile"]);
    let urn = page(
        &s,
        &[(
            "filter",
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "Alice""#,
        )],
    );
    assert_eq!(user_names(&urn), ["alice"], "{urn}");
    let counted = page(&s, &[("filter", r#"userName eq "bob""#), ("count", "0")]);
    assert_eq!(counted["totalResults"], 1, "{counted}");
    assert_eq!(counted["itemsPerPage"], 0, "{counted}");
    let later = page(
        &s,
        &[("filter", r#"userName eq "bob""#), ("startIndex", "2")],
    );
    assert_eq!(later["totalResults"], 1, "{later}");
    assert_eq!(later["itemsPerPage"], 0, "{later}");
    let missing = page(&s, &[("filter", r#"userName eq "nobody""#)]);
    assert_eq!(missing["totalResults"], 0, "{missing}");
    let projected = page(
        &s,
        &[
            ("filter", r#"userName eq "carol""#),
            ("attributes", "displayName"),
        ],
    );
    let carol = &projected["Resources"][0];
    assert_eq!(carol["displayName"], "Carol Chen", "{projected}");
    assert!(carol.get("emails").is_none(), "{projected}");
    // Not the same as `userName eq`: these take the general path and still work.
    assert_eq!(
        user_names(&page(
            &s,
            &[("filter", r#"userName ne "x" and userName eq "bob""#)]
        )),
        ["bob"]
    );
    let (st, groups) = parts(
        s.get("/scim/v2/Groups?filter=userName%20eq%20%22bob%22")
            .send()
            .expect("groups"),
    );
    assert_eq!(st, 400, "{groups}");
}
