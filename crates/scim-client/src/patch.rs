//! PATCH requests (RFC 7644 §3.5.2), built step by step.

use serde::Serialize;
use serde_json::{json, Map, Value};

const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A PatchOp request: `Patch::new().replace("name.givenName", "Joey").remove("emails[type eq \"work\"]")`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    ops: Vec<Value>,
    /// A value that could not be turned into JSON (reported when sent).
    error: Option<String>,
}

impl Patch {
    /// An empty patch.
    pub fn new() -> Self {
        Patch::default()
    }

    /// `add` at `path` (e.g. `emails`, `members`, `urn:…:User:department`).
    pub fn add(self, path: &str, v: impl Serialize) -> Self {
        self.op("add", Some(path), Some(v))
    }

    /// `add` without a path: `v` is an object of attributes to add.
    pub fn add_value(self, v: impl Serialize) -> Self {
        self.op("add", None, Some(v))
    }

    /// `replace` at `path`.
    pub fn replace(self, path: &str, v: impl Serialize) -> Self {
        self.op("replace", Some(path), Some(v))
    }

    /// `replace` without a path: `v` is an object of attributes to replace.
    pub fn replace_value(self, v: impl Serialize) -> Self {
        self.op("replace", None, Some(v))
    }

    /// `remove` at `path` (a value filter selects values: `members[value eq "…"]`).
    pub fn remove(self, path: &str) -> Self {
        self.op::<()>("remove", Some(path), None)
    }

    /// One operation given as JSON, sent exactly so (for servers that want
    /// their own spelling, e.g. Entra's capitalised `"Replace"`).
    pub fn operation(mut self, op: Value) -> Self {
        self.ops.push(op);
        self
    }

    /// No operation yet.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The request body.
    pub fn to_json(&self) -> Value {
        json!({"schemas": [PATCH_SCHEMA], "Operations": self.ops})
    }

    pub(crate) fn check(&self) -> crate::Result<()> {
        match &self.error {
            Some(e) => Err(crate::Error::Config(format!("PATCH value: {e}"))),
            None => Ok(()),
        }
    }

    fn op<V: Serialize>(mut self, op: &str, path: Option<&str>, v: Option<V>) -> Self {
        let mut o = Map::new();
        o.insert("op".into(), op.into());
        if let Some(p) = path {
            o.insert("path".into(), p.into());
        }
        if let Some(v) = v {
            match serde_json::to_value(v) {
                Ok(v) => {
                    o.insert("value".into(), v);
                }
                Err(e) => {
                    self.error.get_or_insert(e.to_string());
                }
            }
        }
        self.ops.push(Value::Object(o));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn builds_the_rfc_body() {
        let p = Patch::new()
            .replace("name.givenName", "Joey")
            .remove("emails[type eq \"work\"]")
            .add("members", json!([{"value": "2819c223"}]))
            .add_value(json!({"nickName": "Babs"}))
            .replace_value(json!({"active": false}));
        assert_eq!(
            p.to_json(),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "replace", "path": "name.givenName", "value": "Joey"},
                {"op": "remove", "path": "emails[type eq \"work\"]"},
                {"op": "add", "path": "members", "value": [{"value": "2819c223"}]},
                {"op": "add", "value": {"nickName": "Babs"}},
                {"op": "replace", "value": {"active": false}}
            ]})
        );
        assert!(!p.is_empty() && p.check().is_ok());
        assert!(Patch::new().is_empty());
        assert_eq!(Patch::new().to_json()["Operations"], json!([]));
    }

    #[test]
    fn values_that_are_not_json_are_reported() {
        let mut bad = HashMap::new();
        bad.insert((1, 2), "tuple keys are not JSON");
        let p = Patch::new().replace("x", bad);
        assert!(matches!(p.check(), Err(crate::Error::Config(_))));
    }
}
