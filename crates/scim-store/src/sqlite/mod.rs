//! The embedded default backend: one SQLite file in WAL mode, one writer
//! connection (SQLite serialises writers anyway) and a small pool of readers.
//! `synchronous=FULL` so a write acknowledged to a client survives a crash.
//!
//! - `session`: connections and the threads that own them (writer with group
//!   commit, readers, checkpointer);
//! - `migrate`: the schema steps, tracked by `PRAGMA user_version`;
//! - `batch`: the rows one resource write consists of;
//! - `store`: the storage traits on top of those;
//! - `clients`: the authorization server's tables on the same file;
//! - `backup`: online backups and restores, and the lock a server holds.

pub mod backup;
mod batch;
mod clients;
mod migrate;
mod session;
mod store;
mod sync;
mod trigrams;

pub use clients::SqliteClientStore;
pub use migrate::{migrate, migrate_file};
pub use trigrams::flush as flush_trigrams;

use crate::StoreError;
use rusqlite::Connection;
use scim_proto::schema::SharedRegistry;
use session::{Job, ReadJob};
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};

pub struct SqliteStore {
    registry: Arc<SharedRegistry>,
    /// Write jobs for the writer thread, which owns the one writing connection.
    jobs: Mutex<SyncSender<Job>>,
    /// Reads for the reader threads, which own one connection each.
    lookups: SyncSender<ReadJob>,
    scans: SyncSender<ReadJob>,
    point_readers: Vec<Mutex<Connection>>,
    /// The database file (exports open a connection of their own).
    path: std::path::PathBuf,
    next_reader: AtomicUsize,
    /// How long a search may run on a reader (`with_search_budget`).
    search_budget: std::time::Duration,
    /// How common each trigram is, for substring searches.
    trigrams: Arc<trigrams::Frequencies>,
    /// Dropping it stops the checkpointer thread.
    _stop_checkpoints: SyncSender<()>,
}

fn backend(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.code == rusqlite::ErrorCode::ConstraintViolation {
            return StoreError::Uniqueness;
        }
    }
    StoreError::Backend(e.to_string())
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> StoreError {
    StoreError::Backend("connection lock poisoned".into())
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("stored document is not valid JSON: {e}"))
}
