//! /ServiceProviderConfig, /Schemas and /ResourceTypes, generated from the schema
//! registry and the running configuration: nothing is advertised that does not work.

use crate::config::ServerConfig;
use scim_auth::Mode;
use scim_proto::messages::LIST_RESPONSE as LIST_RESPONSE_SCHEMA;
use scim_proto::schema::render::{resource_type_json, schema_json};
use scim_proto::schema::SchemaRegistry;
use serde_json::{json, Value};

pub const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";

/// Gluu's `scim-configuration`: one object listing the endpoint URLs under
/// `base` (the SCIM base of the prefix it was asked under) and the token
/// endpoint at `root` (scheme and host).
pub fn scim_configuration(registry: &SchemaRegistry, root: &str, base: &str) -> Value {
    let mut c = serde_json::Map::new();
    c.insert("version".into(), json!("2.0"));
    c.insert(
        "token_endpoint".into(),
        json!(format!("{root}/oauth/token")),
    );
    for rt in registry.resource_types() {
        let key = match rt.name.as_str() {
            "User" => "user_endpoint",
            "Group" => "group_endpoint",
            "FidoDevice" => "fido_devices_endpoint",
            "Fido2Device" => "fido2_devices_endpoint",
            _ => continue,
        };
        c.insert(key.into(), json!(format!("{base}{}", rt.endpoint)));
    }
    for (key, path) in [
        ("bulk_endpoint", "/Bulk"),
        ("service_provider_endpoint", "/ServiceProviderConfig"),
        ("resource_types_endpoint", "/ResourceTypes"),
        ("schemas_endpoint", "/Schemas"),
    ] {
        c.insert(key.into(), json!(format!("{base}{path}")));
    }
    json!([c])
}

pub fn service_provider_config(cfg: &ServerConfig, base_url: &str) -> Value {
    let schemes = match cfg.protection {
        Mode::Bypass => json!([]),
        _ => json!([{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with an OAuth 2.0 bearer token (RFC 6750)",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": true
        }]),
    };
    json!({
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://github.com/scimd/scimd",
        "patch": {"supported": true},
        "bulk": {
            "supported": true,
            "maxOperations": cfg.bulk_max_operations,
            "maxPayloadSize": cfg.bulk_max_payload_bytes
        },
        "filter": {"supported": true, "maxResults": cfg.max_results},
        "changePassword": {"supported": true},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": cfg.max_results,
            "maxPageSize": cfg.max_results
        },
        "authenticationSchemes": schemes,
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base_url}/ServiceProviderConfig")
        }
    })
}

fn list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": resources.len(),
        "itemsPerPage": resources.len(),
        "startIndex": 1,
        "Resources": resources,
    })
}

pub fn schemas(registry: &SchemaRegistry, base_url: &str) -> Value {
    list(
        registry
            .schemas()
            .iter()
            .map(|s| schema_json(s, base_url))
            .collect(),
    )
}

pub fn schema(registry: &SchemaRegistry, base_url: &str, urn: &str) -> Option<Value> {
    registry.schema(urn).map(|s| schema_json(s, base_url))
}

pub fn resource_types(registry: &SchemaRegistry, base_url: &str) -> Value {
    list(
        registry
            .resource_types()
            .iter()
            .map(|r| resource_type_json(r, base_url))
            .collect(),
    )
}

pub fn resource_type(registry: &SchemaRegistry, base_url: &str, name: &str) -> Option<Value> {
    registry
        .resource_type(name)
        .map(|r| resource_type_json(r, base_url))
}
