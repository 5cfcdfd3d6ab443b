//! The scale-out backend: PostgreSQL (and, by design, the engines that speak its
//! protocol: CockroachDB, YugabyteDB), shared by any number of stateless scimd
//! processes.
//!
//! Correctness across processes rests only on what all those engines provide:
//! - every write is one transaction, retried as a whole (bounded, jittered
//!   backoff) when the engine reports a serialization failure or a deadlock
//!   (SQLSTATE 40001 / 40P01);
//! - uniqueness comes from the unique index on `(rtype, unique_key)` (SQLSTATE
//!   23505 → [`StoreError::Uniqueness`]);
//! - ETags come from the explicit `version` column: updates and deletes are
//!   `… WHERE id = $1 AND version = $2`, so a concurrent writer turns into
//!   `VersionMismatch`, never a lost update (under READ COMMITTED the row lock
//!   makes the second writer re-check the version after the first commits);
//! - member rows of a group are written only while the group's row is locked by
//!   the same transaction's `UPDATE`, so their `pos` (the member order) needs no
//!   sequence;
//! - no advisory locks, no deferred constraints, random (v4) ids.
//!
//! SQL for filters and sorting comes from the one compiler (`crate::sql`) in the
//! [`crate::dialect::Postgres`] spelling, the fixed statements shared with SQLite
//! from `crate::statements`; this folder holds only the statements of its own.
//!
//! - `session`: the connection pool, prepared-statement cache and the retry loop;
//! - `migrate`: the schema steps, tracked in `schema_migrations`;
//! - `batch`: the rows one resource write consists of, as array-bound statements;
//! - `store`: the storage traits on top of those;
//! - `clients`: the authorization server's tables in the same database;
//! - `scratch` (feature `test-support`): throwaway schemas for tests.
//!
//! The client is the synchronous `postgres` crate: the service calls the store
//! from tokio's blocking pool, so a blocking client is the simple correct choice.
//! Connections come from an r2d2 pool with a configurable limit.

mod batch;
mod clients;
mod migrate;
#[cfg(feature = "test-support")]
mod scratch;
mod session;
mod store;
mod sync;

pub use migrate::{migrate, migrate_url};
#[cfg(feature = "test-support")]
pub use scratch::{test_url, url_with_schema, ScratchSchema, DEFAULT_TEST_URL, TEST_URL_VAR};

use crate::StoreError;
use postgres::error::SqlState;
use scim_proto::schema::SharedRegistry;
use session::Manager;
use std::sync::Arc;
use std::time::Duration;

/// Pool and retry settings.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Most connections this process opens. Size it so that the sum over all scimd
    /// processes stays below the server's `max_connections` (see docs/distributed.md).
    pub max_connections: u32,
    /// Connections kept open while idle.
    pub min_idle: u32,
    /// How long a request waits for a free connection (or a new one) before failing.
    pub acquire_timeout: Duration,
    /// Attempts of one transaction when the engine asks for a retry (40001 / 40P01).
    pub max_attempts: u32,
    /// How long a search that may scan runs before it answers 400 tooMany.
    pub search_budget: Duration,
    /// Longest a write transaction of this process may take: past it, it rolls
    /// back instead of committing. The change feed relies on it: a transaction
    /// running longer than this (plus a margin) cannot be a scimd writer, so it
    /// no longer holds the feed back.
    pub max_write_duration: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            max_connections: 16,
            min_idle: 2,
            acquire_timeout: Duration::from_secs(10),
            max_attempts: 12,
            search_budget: crate::DEFAULT_SEARCH_BUDGET,
            max_write_duration: crate::DEFAULT_MAX_WRITE_DURATION,
        }
    }
}

pub struct PostgresStore {
    registry: Arc<SharedRegistry>,
    pool: r2d2::Pool<Manager>,
    max_attempts: u32,
    search_budget: Duration,
    /// Write transactions committed by this process (`compact_type_counts`).
    writes: std::sync::atomic::AtomicU64,
    /// Resources written by this process (when to refresh the statistics).
    rows_written: std::sync::atomic::AtomicU64,
    /// See `PostgresOptions::max_write_duration`.
    max_write_duration: Duration,
    /// When this process first saw each transaction that was running at the time
    /// of a feed read (see `FeedStore::changes`).
    running: std::sync::Mutex<std::collections::HashMap<u64, std::time::Instant>>,
}

/// The message of a database error, with the server's text when there is one.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({}): {}", db.severity(), db.code().code(), db.message()),
        None => e.to_string(),
    }
}

fn db_error(e: postgres::Error) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        return StoreError::Uniqueness;
    }
    if is_unavailable(&e) {
        return StoreError::Unavailable(describe(&e));
    }
    StoreError::Backend(describe(&e))
}

/// The server went away or is not taking work: a restart, a shutdown, a lost
/// connection. Worth trying again soon.
fn is_unavailable(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // Class 08 (connection exception), 57P01-03 (shutdown, crash, cannot
        // connect now), 53300 (too many connections).
        Some(c) => {
            c.code().starts_with("08") || matches!(c.code(), "57P01" | "57P02" | "57P03" | "53300")
        }
        // No server error: unavailable when the socket itself failed.
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("stored document is not valid JSON: {e}"))
}
