//! The HTTP face of scimd: routes, content negotiation, SCIM errors over HTTP, and
//! the service layer that ties protocol validation to storage.

pub mod admin;
pub mod bulk;
pub mod config;
pub mod cursor;
pub mod discovery;
pub mod edge;
pub mod extract;
pub mod feed;
pub mod http;
pub mod locks;
pub mod metrics;
pub mod openapi;
pub mod scripts;
pub mod service;

pub use config::ServerConfig;
pub use http::router;
pub use service::Service;
