//! Secrets in connector files: a literal, `{"$env": "VAR"}` or `{"$file": "path"}`.
//! A [`Secret`] never shows its value through `Debug` or `Display`, so a connector
//! can be logged or returned by the admin API without leaking it.

use std::fmt;

/// A resolved secret value. Only [`Secret::expose`] gives the value, so every place
/// that sends it somewhere is greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a secret comes from, as written in the connector file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Literal(Secret),
    Env(String),
    File(String),
}

/// Access to the process environment and the file system, injected so that
/// resolving stays pure and testable; the runtime implements it over `std`.
pub trait SecretLookup {
    fn env(&self, name: &str) -> Option<String>;
    /// The file's contents, or a message saying why it could not be read.
    fn file(&self, path: &str) -> Result<String, String>;
}

impl SecretSource {
    /// Parse a secret field: a string is the literal value; an object has exactly
    /// one of `$env` / `$file`.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, String> {
        match value {
            serde_json::Value::String(s) => Ok(SecretSource::Literal(Secret::new(s.clone()))),
            serde_json::Value::Object(obj) if obj.len() == 1 => {
                match (obj.get("$env"), obj.get("$file")) {
                    (Some(serde_json::Value::String(var)), None) => {
                        Ok(SecretSource::Env(var.clone()))
                    }
                    (None, Some(serde_json::Value::String(path))) => {
                        Ok(SecretSource::File(path.clone()))
                    }
                    _ => Err(r#"expected {"$env": "VAR"} or {"$file": "path"}"#.to_string()),
                }
            }
            _ => Err(r#"expected a string, {"$env": "VAR"} or {"$file": "path"}"#.to_string()),
        }
    }

    /// The secret's value. A file's trailing newline is dropped: files written by
    /// `echo` or editors end with one, and no secret does.
    pub fn resolve(&self, lookup: &dyn SecretLookup) -> Result<Secret, String> {
        match self {
            SecretSource::Literal(s) => Ok(s.clone()),
            SecretSource::Env(var) => lookup
                .env(var)
                .filter(|v| !v.is_empty())
                .map(Secret::new)
                .ok_or_else(|| format!("environment variable {var} is not set")),
            SecretSource::File(path) => lookup
                .file(path)
                .map(|text| Secret::new(text.trim_end_matches(['\r', '\n'])))
                .map_err(|e| format!("cannot read secret file {path}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fake;

    impl SecretLookup for Fake {
        fn env(&self, name: &str) -> Option<String> {
            (name == "SCIM_SECRET").then(|| "from-env".to_string())
        }
        fn file(&self, path: &str) -> Result<String, String> {
            if path == "/run/secret" {
                Ok("from-file\n".to_string())
            } else {
                Err("no such file".to_string())
            }
        }
    }

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        let src = SecretSource::Literal(s);
        assert!(!format!("{src:?}").contains("hunter2"));
    }

    #[test]
    fn each_form_resolves_through_the_lookup() {
        let resolve = |v| SecretSource::from_json(&v).unwrap().resolve(&Fake);
        assert_eq!(resolve(json!("lit")).unwrap().expose(), "lit");
        assert_eq!(
            resolve(json!({"$env": "SCIM_SECRET"})).unwrap().expose(),
            "from-env"
        );
        assert_eq!(
            resolve(json!({"$file": "/run/secret"})).unwrap().expose(),
            "from-file"
        );
        assert!(resolve(json!({"$env": "UNSET"}))
            .unwrap_err()
            .contains("UNSET"));
        assert!(resolve(json!({"$file": "/nope"}))
            .unwrap_err()
            .contains("/nope"));
    }

    #[test]
    fn malformed_forms_are_refused() {
        for v in [
            json!(42),
            json!({"$env": 1}),
            json!({"$env": "A", "$file": "b"}),
            json!({"env": "A"}),
        ] {
            assert!(SecretSource::from_json(&v).is_err(), "{v}");
        }
    }
}
