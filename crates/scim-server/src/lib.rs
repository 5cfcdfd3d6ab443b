//! The HTTP face of scimd: routes, content negotiation, SCIM errors over HTTP, and
//! the service layer that ties protocol validation to storage.

pub mod admin;
pub mod bulk;
pub mod clock;
pub mod config;
pub mod cursor;
pub mod discovery;
pub mod feed;
pub mod http;
pub mod locks;
mod members;
pub mod service;

pub use config::{Protection, ServerConfig};
pub use http::router;
pub use service::Service;
