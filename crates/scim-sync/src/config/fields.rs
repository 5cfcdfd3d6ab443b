//! Typed access to the members of one JSON object of a configuration file, with
//! errors that name the file and the field (`prefix` + member name).

use crate::error::ConfigError;
use crate::secret::SecretSource;
use serde_json::{Map, Value};

pub(crate) struct Fields<'a> {
    file: &'a str,
    prefix: &'a str,
    obj: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub(crate) fn of(file: &'a str, prefix: &'a str, v: &'a Value) -> Result<Self, ConfigError> {
        let obj = v.as_object().ok_or_else(|| {
            let what = prefix.trim_end_matches('.');
            if what.is_empty() {
                ConfigError::new(file, "must be a JSON object")
            } else {
                ConfigError::field(file, what, "must be a JSON object")
            }
        })?;
        Ok(Fields { file, prefix, obj })
    }

    pub(crate) fn error(&self, name: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::field(self.file, &format!("{}{name}", self.prefix), message)
    }

    /// A member; `null` counts as absent (PingIDM files carry `"user": null`).
    pub(crate) fn get(&self, name: &str) -> Option<&'a Value> {
        self.obj.get(name).filter(|v| !v.is_null())
    }

    pub(crate) fn required_str(&self, name: &str) -> Result<String, ConfigError> {
        self.optional_str(name)?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| self.error(name, "is missing"))
    }

    pub(crate) fn optional_str(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.error(name, "must be a string")),
        }
    }

    pub(crate) fn bool_or(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.error(name, "must be true or false")),
        }
    }

    pub(crate) fn required_secret(&self, name: &str) -> Result<SecretSource, ConfigError> {
        let v = self
            .get(name)
            .ok_or_else(|| self.error(name, "is missing"))?;
        SecretSource::from_json(v).map_err(|m| self.error(name, m))
    }
}
