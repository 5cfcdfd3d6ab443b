//! The pure core of scimd's reconciliation engine (no I/O).
pub mod config;
pub mod error;
pub mod links;
pub mod mapping;
pub mod ops;
pub mod path;
pub mod plan;
pub mod secret;
pub mod situation;
