//! What a server says it supports (RFC 7644 §4): ServiceProviderConfig,
//! ResourceTypes and Schemas.

use serde_json::Value;

/// A server's capabilities, read once by [`Client::discover`](crate::Client::discover).
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    /// PATCH is supported.
    pub patch: bool,
    /// Bulk is supported, with these limits.
    pub bulk: Option<BulkLimits>,
    /// The most resources a search returns (`filter.maxResults`).
    pub filter_max_results: Option<u32>,
    /// Sorting is supported.
    pub sort: bool,
    /// ETags are supported.
    pub etag: bool,
    /// RFC 9865 cursor paging is advertised (`pagination.cursor`).
    pub cursor_paging: bool,
    /// The resource types served.
    pub resource_types: Vec<ResourceTypeInfo>,
    /// The schemas served, as JSON.
    pub schemas: Vec<Value>,
    /// The ServiceProviderConfig as served.
    pub raw_config: Value,
}

/// Bulk limits of the ServiceProviderConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkLimits {
    /// Operations per request.
    pub max_operations: u32,
    /// Bytes per request body.
    pub max_payload_size: u64,
}

/// One resource type (RFC 7643 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceTypeInfo {
    /// e.g. `User`.
    pub name: String,
    /// e.g. `/Users`.
    pub endpoint: String,
    /// Its core schema URN.
    pub schema: String,
    /// Its schema extensions' URNs.
    pub extensions: Vec<String>,
}

impl Capabilities {
    /// Read a ServiceProviderConfig (the other lists are filled in separately).
    pub fn from_config(spc: Value) -> Capabilities {
        let flag = |name: &str| spc[name]["supported"].as_bool().unwrap_or(false);
        let bulk = flag("bulk").then(|| BulkLimits {
            max_operations: spc["bulk"]["maxOperations"]
                .as_u64()
                .map_or(u32::MAX, |n| n.min(u32::MAX as u64) as u32)
                .max(1),
            max_payload_size: spc["bulk"]["maxPayloadSize"].as_u64().unwrap_or(u64::MAX),
        });
        Capabilities {
            patch: flag("patch"),
            bulk,
            filter_max_results: spc["filter"]["maxResults"]
                .as_u64()
                .filter(|n| *n > 0)
                .map(|n| n.min(u32::MAX as u64) as u32),
            sort: flag("sort"),
            etag: flag("etag"),
            cursor_paging: spc["pagination"]["cursor"].as_bool().unwrap_or(false),
            resource_types: Vec::new(),
            schemas: Vec::new(),
            raw_config: spc,
        }
    }

    /// The resource type served at this endpoint (`/Users`), if listed.
    pub fn resource_type(&self, endpoint: &str) -> Option<&ResourceTypeInfo> {
        self.resource_types
            .iter()
            .find(|r| r.endpoint.eq_ignore_ascii_case(endpoint))
    }
}

/// The entries of a ListResponse, or of a plain JSON array (some servers).
pub(crate) fn list_entries(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        Value::Object(mut o) => match o.remove("Resources") {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

pub(crate) fn resource_type_info(v: &Value) -> Option<ResourceTypeInfo> {
    Some(ResourceTypeInfo {
        name: v.get("name")?.as_str()?.to_string(),
        endpoint: v.get("endpoint")?.as_str()?.to_string(),
        schema: v
            .get("schema")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        extensions: v
            .get("schemaExtensions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.get("schema").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_flags_and_limits() {
        let c = Capabilities::from_config(json!({
            "patch": {"supported": true},
            "bulk": {"supported": true, "maxOperations": 1000, "maxPayloadSize": 1048576},
            "filter": {"supported": true, "maxResults": 200},
            "sort": {"supported": false}, "etag": {"supported": true},
            "pagination": {"cursor": true, "index": true}
        }));
        assert!(c.patch && c.etag && c.cursor_paging && !c.sort);
        assert_eq!(
            c.bulk,
            Some(BulkLimits {
                max_operations: 1000,
                max_payload_size: 1048576
            })
        );
        assert_eq!(c.filter_max_results, Some(200));
        let bare =
            Capabilities::from_config(json!({"bulk": {"supported": false, "maxOperations": 5}}));
        assert!(bare.bulk.is_none() && !bare.cursor_paging && !bare.patch);
    }

    #[test]
    fn resource_types_from_lists_or_arrays() {
        let rt = json!({"name": "User", "endpoint": "/Users",
            "schema": "urn:ietf:params:scim:schemas:core:2.0:User",
            "schemaExtensions": [{"schema": "urn:x", "required": false}]});
        let listed = list_entries(json!({"Resources": [rt.clone()]}));
        assert_eq!(listed.len(), 1);
        assert_eq!(list_entries(json!([rt.clone(), rt.clone()])).len(), 2);
        let info = resource_type_info(&rt).unwrap();
        assert_eq!(info.extensions, ["urn:x"]);
        assert!(resource_type_info(&json!({"name": "X"})).is_none());
    }
}
