//! Runtime settings of the SCIM service (the binary fills them from flags, the
//! environment and the config file).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protection {
    #[default]
    Oauth,
    Uma,
    Test,
    Bypass,
}

impl FromStr for Protection {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "oauth" => Ok(Protection::Oauth),
            "uma" => Ok(Protection::Uma),
            "test" => Ok(Protection::Test),
            "bypass" => Ok(Protection::Bypass),
            other => Err(format!(
                "unknown protection mode '{other}' (expected oauth, uma, test or bypass)"
            )),
        }
    }
}

impl Protection {
    /// The protection layer's (scim-auth) mode.
    pub fn auth_mode(self) -> scim_auth::Mode {
        match self {
            Protection::Oauth => scim_auth::Mode::Oauth,
            Protection::Uma => scim_auth::Mode::Uma,
            Protection::Test => scim_auth::Mode::Test,
            Protection::Bypass => scim_auth::Mode::Bypass,
        }
    }
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protection::Oauth => "oauth",
            Protection::Uma => "uma",
            Protection::Test => "test",
            Protection::Bypass => "bypass",
        })
    }
}

/// Limits and behaviour the service enforces and publishes in ServiceProviderConfig.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub protection: Protection,
    /// Largest request body accepted, in bytes (413 above it).
    pub max_payload_bytes: usize,
    /// Largest page (`count`) a search may ask for (400 tooMany above it); also the
    /// default page size, as in Gluu.
    pub max_results: u64,
    pub bulk_max_operations: usize,
    pub bulk_max_payload_bytes: usize,
    /// How long change-feed entries (and tombstones) are kept.
    pub change_retention: chrono::TimeDelta,
    /// Publish the FIDO device resource types.
    pub devices: bool,
    /// URN of the user extension holding custom attributes.
    pub custom_schema_urn: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            protection: Protection::Oauth,
            max_payload_bytes: 3_072_000,
            max_results: 200,
            bulk_max_operations: 30,
            bulk_max_payload_bytes: 3_072_000,
            change_retention: chrono::TimeDelta::days(7),
            devices: true,
            custom_schema_urn: scim_proto::schema::custom::GLUU_USER_EXTENSION.to_string(),
        }
    }
}
