//! Storage for scimd: narrow traits, the filter-to-SQL compiler shared by every
//! backend, and the backends themselves (`sqlite/`, the embedded default, and
//! `postgres/`, each behind the cargo feature of the same name), opened through
//! one factory.

mod audit;
pub mod clients;
pub mod ddl;
pub mod dialect;
pub mod index;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
mod statements;
pub mod sync;

mod model;
mod open;
mod traits;
pub use model::*;
pub use open::{
    default_url, migrate, open, open_clients, Backend, Location, MigrationReport, OpenOptions,
    Stores,
};
pub use traits::*;
