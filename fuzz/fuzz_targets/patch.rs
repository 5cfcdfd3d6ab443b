//! `scim_proto::patch::apply_patch` on a stored User with arbitrary PatchOp bodies.
//!
//! The input is JSON: a PatchOp object, or a bare array of operations that is
//! wrapped in one. Invariants: no panic; an error is a 4xx (client input never
//! causes a 500); a successful result is a document that `validate_document`
//! accepts unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_proto::messages::PATCH_OP;
use scim_proto::patch::apply_patch;
use scim_proto::schema::validate::validate_document;
use scim_proto::schema::{ResourceTypeDef, SchemaRegistry};
use serde_json::{json, Value};
use std::sync::LazyLock;

static REGISTRY: LazyLock<SchemaRegistry> = LazyLock::new(SchemaRegistry::standard);

fn user_rt() -> &'static ResourceTypeDef {
    match REGISTRY.resource_type("User") {
        Some(rt) => rt,
        None => panic!("no User resource type"),
    }
}

/// A stored (canonical) User: RFC 7643 §8.2 trimmed, plus the enterprise extension.
static USER: LazyLock<Value> = LazyLock::new(|| {
    let mut doc = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "bjensen",
        "userName": "bjensen",
        "name": {"familyName": "Jensen", "givenName": "Barbara", "middleName": "Jane"},
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "addresses": [
            {"type": "work", "streetAddress": "100 Universal City Plaza",
             "locality": "Hollywood", "region": "CA", "postalCode": "91608", "country": "USA"},
            {"type": "home", "streetAddress": "456 Hollywood Blvd", "locality": "Hollywood"}
        ],
        "phoneNumbers": [{"value": "555-555-5555", "type": "work"}],
        "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAw"}],
        "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z",
                 "lastModified": "2011-05-13T04:42:34Z", "version": "W/\"3694e05e9dff590\""},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
        }
    });
    if let Err(e) = validate_document(&REGISTRY, user_rt(), &mut doc) {
        panic!("the base User does not validate: {e}");
    }
    doc
});

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let request = match request {
        Value::Array(ops) => json!({"schemas": [PATCH_OP], "Operations": ops}),
        other => other,
    };
    match apply_patch(&REGISTRY, user_rt(), &USER, &request) {
        Ok(doc) => {
            let mut again = doc.clone();
            if let Err(e) = validate_document(&REGISTRY, user_rt(), &mut again) {
                panic!("PATCH {request} gave {doc}, which does not validate: {e}");
            }
            assert_eq!(
                again, doc,
                "PATCH {request}: validate_document changed the result"
            );
        }
        Err(e) => assert!(
            (400..500).contains(&e.status),
            "PATCH {request}: status {} ({e})",
            e.status
        ),
    }
});
