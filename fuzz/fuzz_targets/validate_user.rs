//! `scim_proto::schema::validate::validate_create` for User (POST /Users) on
//! arbitrary JSON.
//!
//! Invariants: no panic; an error is a 4xx; a valid body yields a canonical
//! document that validates again (as a create and as a stored document)
//! unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_proto::schema::validate::{validate_create, validate_document};
use scim_proto::schema::{ResourceTypeDef, SchemaRegistry};
use serde_json::Value;
use std::sync::LazyLock;

static REGISTRY: LazyLock<SchemaRegistry> = LazyLock::new(SchemaRegistry::standard);

fn user_rt() -> &'static ResourceTypeDef {
    match REGISTRY.resource_type("User") {
        Some(rt) => rt,
        None => panic!("no User resource type"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match validate_create(&REGISTRY, user_rt(), &input) {
        Ok(doc) => {
            match validate_create(&REGISTRY, user_rt(), &doc) {
                Ok(again) => assert_eq!(again, doc, "{input}: create of the result changed it"),
                Err(e) => panic!("{input} gave {doc}, which does not validate again: {e}"),
            }
            let mut stored = doc.clone();
            if let Err(e) = validate_document(&REGISTRY, user_rt(), &mut stored) {
                panic!("{input} gave {doc}, which validate_document rejects: {e}");
            }
            assert_eq!(stored, doc, "{input}: validate_document changed the result");
        }
        Err(e) => assert!(
            (400..500).contains(&e.status),
            "{input}: status {} ({e})",
            e.status
        ),
    }
});
