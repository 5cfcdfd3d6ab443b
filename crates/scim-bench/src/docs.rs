//! The documents the benchmark sends: realistic users, groups, PATCH bodies.

use serde_json::{json, Value};

pub(crate) const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(crate) const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub(crate) const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub(crate) const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub(crate) const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

const GIVEN: [&str; 16] = [
    "Ada", "Alan", "Barbara", "Claude", "Donald", "Edsger", "Frances", "Grace", "John", "Ken",
    "Leslie", "Margaret", "Niklaus", "Radia", "Tim", "Xavier",
];
const FAMILY: [&str; 16] = [
    "Lovelace",
    "Turing",
    "Liskov",
    "Shannon",
    "Knuth",
    "Dijkstra",
    "Allen",
    "Hopper",
    "Backus",
    "Thompson",
    "Lamport",
    "Hamilton",
    "Wirth",
    "Perlman",
    "Berners-Lee",
    "Leroy",
];

/// The benchmark user number `i`: userName `user{i}`, a work email
/// `user{i}@example.com` (primary) and, for odd `i`, a home email.
pub(crate) fn user(i: u64) -> Value {
    user_named(&format!("user{i}"), i)
}

/// How many departments the generated users spread over: `SCIMD_BENCH_DEPARTMENTS`
/// (default 50; 1 puts every user in "Dept 0", as scripts/bench-scripts.sh does).
fn departments() -> u64 {
    static N: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("SCIMD_BENCH_DEPARTMENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(50)
    })
}

/// A user with the given userName; `i` picks the other values.
pub(crate) fn user_named(user_name: &str, i: u64) -> Value {
    let given = GIVEN[(i % 16) as usize];
    let family = FAMILY[((i / 16) % 16) as usize];
    let mut emails = vec![json!({
        "value": format!("{user_name}@example.com"),
        "type": "work",
        "primary": true
    })];
    if i % 2 == 1 {
        emails.push(json!({
            "value": format!("{user_name}@home.example.com"),
            "type": "home",
            "primary": false
        }));
    }
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": user_name,
        "externalId": format!("ext-{user_name}"),
        "name": {
            "givenName": given,
            "familyName": family,
            "formatted": format!("{given} {family}")
        },
        "displayName": format!("{given} {family} ({user_name})"),
        "title": "Engineer",
        "preferredLanguage": "en-US",
        "active": true,
        "emails": emails,
        ENTERPRISE: {
            "employeeNumber": format!("{i}"),
            "department": format!("Dept {}", i % departments())
        }
    })
}

pub(crate) fn group(display_name: &str, members: &[String]) -> Value {
    let members: Vec<Value> = members.iter().map(|id| json!({ "value": id })).collect();
    json!({
        "schemas": [GROUP_SCHEMA],
        "displayName": display_name,
        "members": members
    })
}

pub(crate) fn patch_add_members(ids: &[String]) -> Value {
    let members: Vec<Value> = ids.iter().map(|id| json!({ "value": id })).collect();
    json!({
        "schemas": [PATCH_SCHEMA],
        "Operations": [{ "op": "add", "path": "members", "value": members }]
    })
}

pub(crate) fn patch_remove_member(id: &str) -> Value {
    json!({
        "schemas": [PATCH_SCHEMA],
        "Operations": [{ "op": "remove", "path": format!("members[value eq \"{id}\"]") }]
    })
}

pub(crate) fn patch_display_name(name: &str) -> Value {
    json!({
        "schemas": [PATCH_SCHEMA],
        "Operations": [{ "op": "replace", "path": "displayName", "value": name }]
    })
}

/// A BulkRequest of user creations.
pub(crate) fn bulk_users(users: impl Iterator<Item = (String, Value)>) -> Value {
    let ops: Vec<Value> = users
        .map(|(bulk_id, data)| {
            json!({ "method": "POST", "path": "/Users", "bulkId": bulk_id, "data": data })
        })
        .collect();
    json!({ "schemas": [BULK_REQUEST], "Operations": ops })
}

/// The id at the end of a `location` URL.
pub(crate) fn id_from_location(loc: &str) -> Option<String> {
    loc.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_shape() {
        let u = user(3);
        assert_eq!(u["userName"], "user3");
        assert_eq!(u["emails"].as_array().map(Vec::len), Some(2));
        assert_eq!(u["emails"][0]["value"], "user3@example.com");
        assert_eq!(u[ENTERPRISE]["employeeNumber"], "3");
        assert_eq!(user(4)["emails"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn location_id() {
        assert_eq!(
            id_from_location("http://h/scim/v2/Users/abc-1").as_deref(),
            Some("abc-1")
        );
    }
}
