//! Runtime settings of the SCIM service (the binary fills them from flags, the
//! environment and the config file).

use scim_auth::Mode;

/// Limits and behaviour the service enforces and publishes in ServiceProviderConfig.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How the API is protected (scim-auth's modes).
    pub protection: Mode,
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
            protection: Mode::Oauth,
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
