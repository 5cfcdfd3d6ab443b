//! Pure SCIM 2.0 protocol logic (RFC 7643 / RFC 7644): no I/O, no async.

pub mod clock;
pub mod document;
pub mod error;
pub mod filter;
pub mod gluu;
pub mod member_delta;
pub mod messages;
pub mod patch;
pub mod project;
pub mod schema;

pub use error::{ScimError, ScimResult, ScimType};
