//! The pure core of scimd's reconciliation engine (no I/O).
pub mod config;
pub mod error;
pub mod path;
pub mod secret;
pub mod situation;
