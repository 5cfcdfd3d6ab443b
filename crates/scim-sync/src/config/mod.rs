//! Configuration: connector files and `sync.json` mappings, parsed and validated
//! into types the rest of the crate trusts.

pub mod connector;
mod fields;
pub mod mappings;

pub use connector::{Auth, AuthConfig, Connector, Quirks, UpdateMethod};
pub use mappings::{
    Correlation, Endpoint, Mapping, MaxDeletes, ObjectKind, Property, Schedule, SyncConfig,
    Transform,
};
