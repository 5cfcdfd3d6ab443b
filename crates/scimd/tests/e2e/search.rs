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
