//! `scim_proto::filter::parse_filter` on arbitrary input.
//!
//! Invariants: no panic; an error is 400 invalidFilter; a parsed filter prints
//! (Display) to a string that parses back to an equal AST; a filter that passes
//! `validate_filter` for User can be evaluated against a User document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_proto::filter::eval::validate_filter;
use scim_proto::filter::parser::MAX_FILTER_LEN;
use scim_proto::filter::{matches, parse_filter};
use scim_proto::schema::SchemaRegistry;
use scim_proto::ScimType;
use serde_json::{json, Value};
use std::sync::LazyLock;

static REGISTRY: LazyLock<SchemaRegistry> = LazyLock::new(SchemaRegistry::standard);

static USER: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "userName": "bjensen",
        "name": {"familyName": "O'Malley", "givenName": "Barbara"},
        "title": "Tour Guide",
        "userType": "Employee",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "ims": [{"value": "babs@foo.com", "type": "xmpp"}],
        "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z",
                 "lastModified": "2011-05-13T04:42:34Z", "version": "W/\"3694e05e9dff590\""},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
        }
    })
});

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let filter = match parse_filter(input) {
        Ok(f) => f,
        Err(e) => {
            assert_eq!(e.status, 400, "{input:?}: {e}");
            assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{input:?}: {e}");
            return;
        }
    };
    let printed = filter.to_string();
    // Printing may add spaces and escapes, so only a printout within the limit
    // has to parse again.
    if printed.len() <= MAX_FILTER_LEN {
        match parse_filter(&printed) {
            Ok(again) => assert_eq!(again, filter, "{input:?} printed as {printed:?}"),
            Err(e) => panic!("{input:?} printed as {printed:?}, which does not parse: {e}"),
        }
    }
    let Some(rt) = REGISTRY.resource_type("User") else {
        panic!("no User resource type");
    };
    if validate_filter(&filter, &REGISTRY, rt).is_ok() {
        let _ = matches(&filter, &USER, &REGISTRY, rt);
    }
});
