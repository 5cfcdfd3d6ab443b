//! A resource document: always a JSON object. `serde_json::Value`'s index
//! assignment panics on a value that is not an object; writing into a `Document`
//! cannot.

use crate::{ScimError, ScimResult};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Document(Map<String, Value>);

impl Document {
    /// The document of a JSON value; anything but an object is refused (a stored or
    /// validated resource that is not one is a server fault: 500).
    pub fn from_value(v: Value) -> ScimResult<Document> {
        match v {
            Value::Object(m) => Ok(Document(m)),
            other => Err(ScimError::internal_because(
                "a resource document is not a JSON object",
                format!("got {}", kind(&other)),
            )),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    pub fn set(&mut self, name: &str, v: Value) {
        self.0.insert(name.to_string(), v);
    }

    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.0.remove(name)
    }

    /// Set one member of `meta`, making `meta` an object first if it is missing or
    /// is not one.
    pub fn set_meta(&mut self, name: &str, v: Value) {
        let meta = self
            .0
            .entry("meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        if let Value::Object(m) = meta {
            m.insert(name.to_string(), v);
        }
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_never_panic() {
        let mut d = Document::from_value(json!({"meta": "oops", "a": 1})).expect("object");
        d.set_meta("version", json!("W/\"1\""));
        d.set("id", json!("x"));
        assert_eq!(d.remove("a"), Some(json!(1)));
        assert_eq!(d.str("id"), Some("x"));
        assert_eq!(
            d.into_value(),
            json!({"meta": {"version": "W/\"1\""}, "id": "x"})
        );
        for bad in [json!([1]), json!("s"), json!(null)] {
            let e = Document::from_value(bad).expect_err("not an object");
            assert_eq!(e.status, 500);
            assert!(e.cause.is_some());
        }
    }
}
