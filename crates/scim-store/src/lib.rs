//! Storage for scimd: narrow traits, the filter-to-SQL compiler shared by every
//! backend, and the embedded SQLite backend.

pub mod clients;
pub mod ddl;
pub mod dialect;
pub mod index;
pub mod postgres;
pub mod sql;
pub mod sqlite;

mod model;
pub use model::*;
