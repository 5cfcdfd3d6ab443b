//! Custom user attributes registered by administrators (Gluu's user extension):
//! their four types and how they become attribute definitions.

use super::model::*;
use crate::error::{ScimError, ScimResult};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Default URN of the extension holding custom attributes (configurable).
pub const GLUU_USER_EXTENSION: &str = "urn:ietf:params:scim:schemas:extension:gluu:2.0:User";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CustomType {
    String,
    Numeric,
    Boolean,
    Date,
}

impl CustomType {
    pub fn as_str(self) -> &'static str {
        match self {
            CustomType::String => "string",
            CustomType::Numeric => "numeric",
            CustomType::Boolean => "boolean",
            CustomType::Date => "date",
        }
    }

    fn attr_type(self) -> AttrType {
        match self {
            CustomType::String => AttrType::String,
            CustomType::Numeric => AttrType::Decimal,
            CustomType::Boolean => AttrType::Boolean,
            CustomType::Date => AttrType::DateTime,
        }
    }
}

impl FromStr for CustomType {
    type Err = ScimError;
    fn from_str(s: &str) -> ScimResult<Self> {
        match s.to_ascii_lowercase().as_str() {
            "string" => Ok(CustomType::String),
            "numeric" | "number" => Ok(CustomType::Numeric),
            "boolean" => Ok(CustomType::Boolean),
            "date" | "datetime" => Ok(CustomType::Date),
            other => Err(ScimError::invalid_value(format!(
                "unknown attribute type '{other}' (expected string, numeric, boolean or date)"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomAttribute {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: CustomType,
    #[serde(default)]
    pub multi_valued: bool,
    #[serde(default)]
    pub description: String,
}

impl CustomAttribute {
    /// Attribute names follow RFC 7643 §2.1 `ATTRNAME`.
    pub fn check_name(name: &str) -> ScimResult<()> {
        let mut chars = name.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && name.len() <= 64;
        if ok {
            Ok(())
        } else {
            Err(ScimError::invalid_value(format!(
                "'{name}' is not a valid attribute name (a letter, then letters, digits, '_' or '-', at most 64)"
            )))
        }
    }

    pub fn def(&self) -> AttributeDef {
        let mut a = super::core::attr(&self.name, self.kind.attr_type());
        a.multi_valued = self.multi_valued;
        a.description = if self.description.is_empty() {
            format!("Custom attribute ({})", self.kind.as_str())
        } else {
            self.description.clone()
        };
        a
    }
}

/// The extension schema holding the custom attributes.
pub fn custom_schema(urn: &str, attributes: &[CustomAttribute]) -> Schema {
    Schema {
        id: urn.to_string(),
        name: "GluuUserExtension".to_string(),
        description: "Custom user attributes registered by the administrator".to_string(),
        attributes: attributes.iter().map(CustomAttribute::def).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_types() {
        assert!(CustomAttribute::check_name("customAttr3").is_ok());
        assert!(CustomAttribute::check_name("my-attr_2").is_ok());
        for bad in ["", "3abc", "a b", "a.b", "urn:x", &"a".repeat(65)] {
            assert!(CustomAttribute::check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            "Numeric".parse::<CustomType>().ok(),
            Some(CustomType::Numeric)
        );
        assert!("float".parse::<CustomType>().is_err());
        let a = CustomAttribute {
            name: "n".into(),
            kind: CustomType::Date,
            multi_valued: true,
            description: String::new(),
        };
        let d = a.def();
        assert_eq!(d.ty, AttrType::DateTime);
        assert!(d.multi_valued);
    }
}
