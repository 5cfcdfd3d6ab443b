//! PATCH operations as plain data, and their request body in the provider's
//! dialect (standard SCIM or Entra's).

use crate::config::Quirks;
use scim_proto::messages::PATCH_OP;
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatchOp {
    pub op: OpKind,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl PatchOp {
    pub fn add(path: &str, value: Value) -> Self {
        PatchOp {
            op: OpKind::Add,
            path: path.to_string(),
            value: Some(value),
        }
    }

    pub fn replace(path: &str, value: Value) -> Self {
        PatchOp {
            op: OpKind::Replace,
            path: path.to_string(),
            value: Some(value),
        }
    }

    pub fn remove(path: &str) -> Self {
        PatchOp {
            op: OpKind::Remove,
            path: path.to_string(),
            value: None,
        }
    }
}

/// The PatchOp request body. Entra expects capitalised op names and booleans as
/// the strings "True"/"False"; everything else takes RFC 7644 as written.
pub fn patch_request(ops: &[PatchOp], quirks: Quirks) -> Value {
    let operations: Vec<Value> = ops.iter().map(|op| operation(op, quirks)).collect();
    json!({"schemas": [PATCH_OP], "Operations": operations})
}

fn operation(op: &PatchOp, quirks: Quirks) -> Value {
    let name = match (op.op, quirks) {
        (OpKind::Add, Quirks::Standard) => "add",
        (OpKind::Replace, Quirks::Standard) => "replace",
        (OpKind::Remove, Quirks::Standard) => "remove",
        (OpKind::Add, Quirks::Entra) => "Add",
        (OpKind::Replace, Quirks::Entra) => "Replace",
        (OpKind::Remove, Quirks::Entra) => "Remove",
    };
    let mut out = json!({"op": name, "path": op.path});
    if let (Some(v), Some(obj)) = (&op.value, out.as_object_mut()) {
        let v = match quirks {
            Quirks::Standard => v.clone(),
            Quirks::Entra => booleans_as_strings(v),
        };
        obj.insert("value".into(), v);
    }
    out
}

fn booleans_as_strings(v: &Value) -> Value {
    match v {
        Value::Bool(true) => Value::String("True".into()),
        Value::Bool(false) => Value::String("False".into()),
        Value::Array(items) => Value::Array(items.iter().map(booleans_as_strings).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), booleans_as_strings(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops() -> Vec<PatchOp> {
        vec![
            PatchOp::replace("active", json!(false)),
            PatchOp::add("emails", json!([{"type": "work", "primary": true}])),
            PatchOp::remove("title"),
        ]
    }

    #[test]
    fn standard_bodies_are_rfc_7644() {
        let body = patch_request(&ops(), Quirks::Standard);
        assert_eq!(
            body,
            json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "path": "active", "value": false},
                {"op": "add", "path": "emails", "value": [{"type": "work", "primary": true}]},
                {"op": "remove", "path": "title"}]})
        );
    }

    #[test]
    fn entra_bodies_capitalise_ops_and_stringify_booleans() {
        let body = patch_request(&ops(), Quirks::Entra);
        assert_eq!(
            body["Operations"],
            json!([{"op": "Replace", "path": "active", "value": "False"},
                   {"op": "Add", "path": "emails", "value": [{"type": "work", "primary": "True"}]},
                   {"op": "Remove", "path": "title"}])
        );
    }
}
