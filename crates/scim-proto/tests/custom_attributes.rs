//! Custom user attributes are validated exactly as Gluu does (gluu-compat.md).

// A test crate: a failed expectation should stop the test loudly.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use scim_proto::schema::custom::{CustomAttribute, CustomType, GLUU_USER_EXTENSION};
use scim_proto::schema::validate::validate_create;
use scim_proto::schema::{RegistryOptions, SchemaRegistry};
use scim_proto::ScimResult;
use serde_json::{json, Value};

fn registry() -> SchemaRegistry {
    let attr = |name: &str, kind, multi| CustomAttribute {
        name: name.into(),
        kind,
        multi_valued: multi,
        description: String::new(),
    };
    SchemaRegistry::build(&RegistryOptions {
        devices: true,
        custom: Some((
            GLUU_USER_EXTENSION.into(),
            vec![
                attr("nickNames", CustomType::String, true),
                attr("customAttr3", CustomType::Numeric, false),
                attr("isManager", CustomType::Boolean, false),
                attr("hired", CustomType::Date, false),
                attr("badge", CustomType::String, false),
            ],
        )),
    })
}

fn create(ext: Value) -> ScimResult<Value> {
    let reg = registry();
    let rt = reg.resource_type("User").expect("User").clone();
    validate_create(
        &reg,
        &rt,
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", GLUU_USER_EXTENSION],
                "userName": "u", GLUU_USER_EXTENSION: ext}),
    )
}

#[test]
fn valid_values_of_each_type() {
    let doc = create(
        json!({"nickNames": ["a", "b"], "customAttr3": 3000, "isManager": true,
        "hired": "2020-09-09T10:00:00Z", "badge": "X1"}),
    )
    .expect("valid");
    assert_eq!(doc[GLUU_USER_EXTENSION]["customAttr3"], 3000);
    assert_eq!(doc[GLUU_USER_EXTENSION]["nickNames"], json!(["a", "b"]));
    let schemas = doc["schemas"].as_array().expect("schemas");
    assert!(schemas.iter().any(|s| s == GLUU_USER_EXTENSION));
}

#[test]
fn invalid_values_are_rejected() {
    for (ext, why) in [
        (
            json!({"customAttr3": "3000"}),
            "numeric needs a JSON number",
        ),
        (
            json!({"hired": "2020-09-09"}),
            "date needs a full date-time",
        ),
        (json!({"hired": "tomorrow"}), "date needs a date-time"),
        (json!({"badge": 7}), "string needs a JSON string"),
        (json!({"nickNames": "a"}), "multi-valued needs an array"),
        (
            json!({"customAttr3": [1, 2]}),
            "single-valued takes no array",
        ),
        (json!({"isManager": 1}), "boolean needs a JSON boolean"),
        (json!({"shoeSize": 42}), "unknown names are rejected"),
    ] {
        let e = create(ext.clone()).expect_err(why);
        assert_eq!(e.status, 400, "{why}: {ext}");
    }
}

#[test]
fn schema_and_devices_are_published() {
    let reg = registry();
    let ext = reg.schema(GLUU_USER_EXTENSION).expect("extension schema");
    assert_eq!(ext.attributes.len(), 5);
    let user = reg.resource_type("User").expect("User");
    assert!(user
        .schema_extensions
        .iter()
        .any(|e| e.schema == GLUU_USER_EXTENSION));
    assert_eq!(
        reg.resource_type_by_endpoint("/FidoDevices")
            .map(|r| r.name.as_str()),
        Some("FidoDevice")
    );
    assert_eq!(
        reg.resource_type_by_endpoint("Fido2Devices")
            .map(|r| r.name.as_str()),
        Some("Fido2Device")
    );
    assert_eq!(SchemaRegistry::standard().resource_types().len(), 2);
}
