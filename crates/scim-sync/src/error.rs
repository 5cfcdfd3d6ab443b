//! Configuration errors: each names the file, the mapping (when there is one) and
//! the field, so an operator can go straight to the line to fix.

use std::fmt;

/// Where in the configuration a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub mapping: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            mapping: None,
            field: None,
            message: message.into(),
        }
    }

    pub fn field(file: &str, field: &str, message: impl Into<String>) -> Self {
        ConfigError {
            field: Some(field.to_string()),
            ..ConfigError::new(file, message)
        }
    }

    pub fn in_mapping(mut self, mapping: &str) -> Self {
        self.mapping = Some(mapping.to_string());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(m) = &self.mapping {
            write!(f, ": mapping '{m}'")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": '{field}'")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_mapping_and_field() {
        let e = ConfigError::field("sync.json", "source", "unknown object set").in_mapping("m1");
        assert_eq!(
            e.to_string(),
            "sync.json: mapping 'm1': 'source': unknown object set"
        );
        assert_eq!(
            ConfigError::new("scim.json", "not JSON").to_string(),
            "scim.json: not JSON"
        );
    }
}
