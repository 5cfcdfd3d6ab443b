//! The connection pool, each connection's prepared statements, and the loop that
//! runs a transaction again when the engine asks for a retry (40001 / 40P01).

use super::migrate::migrate;
use super::{db_error, describe, PostgresOptions, PostgresStore};
use crate::sql::SqlParam;
use crate::{StoreError, StoreResult};
use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use postgres::{Client, Config, IsolationLevel, NoTls, Row, Statement, Transaction};
use scim_proto::schema::SharedRegistry;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Writes of one process between two folds of the type count deltas: a bulk
/// transaction inserts a delta per statement, so totals sum a few thousand
/// rows at most.
const COMPACT_EVERY: u64 = 64;

/// Whether writing rows `before..after` (resources written by this process)
/// passes a point where it refreshes the planner's statistics of the searched
/// tables: early (a fresh database grows from nothing, and plans made from the
/// migration's statistics of empty tables scan the value index instead of using
/// the trigram index: 625 ms instead of 16 ms for one `co` at 100,000 users),
/// then every `ANALYZE_EVERY` rows. Autovacuum would get there, later.
fn analyze_due(before: u64, after: u64) -> bool {
    let crosses = |mark: u64| before < mark && mark <= after;
    crosses(1_000) || crosses(10_000) || before / ANALYZE_EVERY != after / ANALYZE_EVERY
}

const ANALYZE_EVERY: u64 = 100_000;

/// Search statements kept prepared per connection; past it the cache starts
/// over (searches are built from filters, so their texts are unbounded).
const KEPT_SEARCHES: usize = 256;

/// One pooled connection with the statements prepared on it.
pub(super) struct Conn {
    pub(super) client: Client,
    pub(super) statements: HashMap<&'static str, Statement>,
    /// Searches prepared on this connection, by SQL text (`query_built`).
    pub(super) searches: HashMap<String, Statement>,
}

pub(super) struct Manager {
    config: Config,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        Ok(Conn {
            client: self.config.connect(NoTls)?,
            statements: HashMap::new(),
            searches: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}

/// Why a transaction attempt stopped: a store outcome, or a database error that
/// may call for another attempt.
pub(super) enum Fail {
    Store(StoreError),
    Db(postgres::Error),
}

impl From<postgres::Error> for Fail {
    fn from(e: postgres::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

pub(super) type TxResult<T> = Result<T, Fail>;

pub(super) fn is_retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// Exponential backoff with jitter: attempt 1 waits 1–2 ms, doubling up to
/// 250–500 ms, so writers that collided do not collide again in lockstep.
pub(super) fn backoff(attempt: u32) -> Duration {
    let cap_us = 2_000u64.saturating_mul(1 << attempt.min(8)).min(500_000);
    let random = (uuid::Uuid::new_v4().as_u128() & u128::from(u64::MAX)) as u64;
    Duration::from_micros(cap_us / 2 + random % (cap_us / 2 + 1))
}

pub(super) enum Handle<'a> {
    /// Autocommit: a single statement needs no transaction round trips.
    Auto(&'a mut Client),
    Tx(Transaction<'a>),
}

/// A connection in use, with its cache of prepared statements.
pub(super) struct Session<'a> {
    handle: Handle<'a>,
    statements: &'a mut HashMap<&'static str, Statement>,
    searches: &'a mut HashMap<String, Statement>,
}

pub(super) type Params<'p> = [&'p (dyn ToSql + Sync)];

impl Session<'_> {
    pub(super) fn prepared(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = match &mut self.handle {
            Handle::Auto(c) => c.prepare(sql)?,
            Handle::Tx(t) => t.prepare(sql)?,
        };
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    pub(super) fn query(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
    ) -> Result<Vec<Row>, postgres::Error> {
        let s = self.prepared(sql)?;
        match &mut self.handle {
            Handle::Auto(c) => c.query(&s, params),
            Handle::Tx(t) => t.query(&s, params),
        }
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
    ) -> Result<Option<Row>, postgres::Error> {
        let s = self.prepared(sql)?;
        match &mut self.handle {
            Handle::Auto(c) => c.query_opt(&s, params),
            Handle::Tx(t) => t.query_opt(&s, params),
        }
    }

    pub(super) fn execute(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
    ) -> Result<u64, postgres::Error> {
        let s = self.prepared(sql)?;
        match &mut self.handle {
            Handle::Auto(c) => c.execute(&s, params),
            Handle::Tx(t) => t.execute(&s, params),
        }
    }

    /// Stop this transaction's statements after `budget` (PostgreSQL cancels
    /// them with 57014, `query_canceled`).
    pub(super) fn limit_statements(&mut self, budget: Duration) -> Result<(), postgres::Error> {
        let sql = format!(
            "SET LOCAL statement_timeout = {}",
            budget.as_millis().max(1)
        );
        match &mut self.handle {
            Handle::Auto(c) => c.batch_execute(&sql),
            Handle::Tx(t) => t.batch_execute(&sql),
        }
    }

    /// A statement built at run time (searches): parameter types are given, so it
    /// takes one round trip and leaves nothing prepared behind, unless `keep`:
    /// then it is prepared once per connection and later runs skip the parse and,
    /// after a few runs, the planning (PostgreSQL's generic plan; planning a
    /// `userName eq` took four times as long as running it). Only for lookups
    /// and unfiltered pages, whose plan does not depend on the values: a
    /// substring or range search gets a plan for its own values each time.
    pub(super) fn query_built(
        &mut self,
        sql: &str,
        params: &[SqlParam],
        keep: bool,
    ) -> Result<Vec<Row>, postgres::Error> {
        let typed: Vec<(&(dyn ToSql + Sync), Type)> = params
            .iter()
            .map(|p| -> (&(dyn ToSql + Sync), Type) {
                match p {
                    SqlParam::Text(t) => (t, Type::TEXT),
                    SqlParam::Num(n) => (n, Type::FLOAT8),
                    SqlParam::Bool(b) => (b, Type::BOOL),
                    SqlParam::Int(i) => (i, Type::INT8),
                }
            })
            .collect();
        if !keep {
            return match &mut self.handle {
                Handle::Auto(c) => c.query_typed(sql, &typed),
                Handle::Tx(t) => t.query_typed(sql, &typed),
            };
        }
        let statement = match self.searches.get(sql) {
            Some(s) => s.clone(),
            None => {
                let types: Vec<Type> = typed.iter().map(|(_, t)| t.clone()).collect();
                let s = match &mut self.handle {
                    Handle::Auto(c) => c.prepare_typed(sql, &types)?,
                    Handle::Tx(t) => t.prepare_typed(sql, &types)?,
                };
                if self.searches.len() >= KEPT_SEARCHES {
                    self.searches.clear();
                }
                self.searches.insert(sql.to_string(), s.clone());
                s
            }
        };
        let values: Vec<&(dyn ToSql + Sync)> = typed.iter().map(|(v, _)| *v).collect();
        match &mut self.handle {
            Handle::Auto(c) => c.query(&statement, &values),
            Handle::Tx(t) => t.query(&statement, &values),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum TxKind {
    /// One statement, autocommit.
    Single,
    /// Several reads that must see one snapshot.
    Snapshot,
    /// A read-write transaction at the server's default isolation.
    Write,
}

impl PostgresStore {
    /// Connect (failing if the server cannot be reached), apply migrations, and
    /// keep a pool of connections.
    pub fn open(
        url: &str,
        registry: Arc<SharedRegistry>,
        options: &PostgresOptions,
    ) -> StoreResult<Self> {
        let config = Config::from_str(url)
            .map_err(|e| StoreError::Backend(format!("bad database URL: {}", describe(&e))))?;
        let pool = r2d2::Pool::builder()
            .max_size(options.max_connections.max(1))
            .min_idle(Some(options.min_idle.min(options.max_connections)))
            .connection_timeout(options.acquire_timeout)
            .test_on_check_out(false)
            .build(Manager { config })
            .map_err(|e| StoreError::Backend(format!("cannot connect to PostgreSQL: {e}")))?;
        let store = PostgresStore {
            registry,
            pool,
            max_attempts: options.max_attempts.max(1),
            search_budget: options.search_budget,
            writes: std::sync::atomic::AtomicU64::new(0),
            rows_written: std::sync::atomic::AtomicU64::new(0),
            max_write_duration: options.max_write_duration,
            running: Default::default(),
        };
        {
            let mut conn = store.conn()?;
            migrate(&mut conn.client)?;
        }
        Ok(store)
    }

    pub(super) fn conn(&self) -> StoreResult<r2d2::PooledConnection<Manager>> {
        let waited = std::time::Instant::now();
        let conn = self
            .pool
            .get()
            .map_err(|e| StoreError::Unavailable(format!("no database connection: {e}")));
        metrics::histogram!("scimd_store_wait_seconds", "queue" => "postgres")
            .record(waited.elapsed().as_secs_f64());
        let state = self.pool.state();
        metrics::gauge!("scimd_store_pool_connections", "state" => "idle")
            .set(f64::from(state.idle_connections));
        metrics::gauge!("scimd_store_pool_connections", "state" => "busy")
            .set(f64::from(state.connections - state.idle_connections));
        conn
    }

    /// Run `f` in a transaction of kind `mode`, again from the start when the engine asks for a retry.
    pub(super) fn run<T>(
        &self,
        mode: TxKind,
        mut f: impl FnMut(&mut Session<'_>) -> TxResult<T>,
    ) -> StoreResult<T> {
        let mut attempt = 1;
        loop {
            match self.attempt(mode, &mut f) {
                Ok(v) => {
                    if mode == TxKind::Write {
                        self.after_write();
                    }
                    return Ok(v);
                }
                Err(Fail::Db(e)) if is_retryable(&e) && attempt < self.max_attempts => {
                    tracing::debug!(attempt, error = %describe(&e), "retrying transaction");
                    std::thread::sleep(backoff(attempt));
                    attempt += 1;
                }
                Err(Fail::Db(e)) => return Err(db_error(e)),
                Err(Fail::Store(e)) => return Err(e),
            }
        }
    }

    /// Every `COMPACT_EVERY` writes of this process, fold the type count deltas.
    fn after_write(&self) {
        let n = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(COMPACT_EVERY) {
            if let Err(e) = self.compact_type_counts() {
                tracing::warn!(error = %e, "folding the type count deltas failed");
            }
        }
        self.note_rows(1);
    }

    /// `rows` more resources written by this process (a write transaction counts
    /// one; a batch adds the rest of its rows).
    pub(super) fn note_rows(&self, rows: u64) {
        let before = self.rows_written.fetch_add(rows, Ordering::Relaxed);
        if analyze_due(before, before + rows) {
            self.analyze_in_background();
        }
    }

    /// `ANALYZE` the searched tables on a thread of its own (it samples, so it
    /// takes a fraction of a second even at a million users; the write that
    /// triggered it does not wait).
    fn analyze_in_background(&self) {
        let pool = self.pool.clone();
        let spawned = std::thread::Builder::new()
            .name("scimd-pg-analyze".into())
            .spawn(move || {
                let done = pool.get().map_err(|e| e.to_string()).and_then(|mut c| {
                    c.client
                        .batch_execute("ANALYZE attr_index; ANALYZE resources; ANALYZE members")
                        .map_err(|e| describe(&e))
                });
                match done {
                    Ok(()) => tracing::debug!("planner statistics refreshed"),
                    Err(e) => tracing::warn!(error = %e, "ANALYZE failed"),
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the ANALYZE thread");
        }
    }

    /// Fold `type_count_deltas` into `type_counts` (ddl.rs, step 9), in one
    /// transaction so every snapshot sees the deltas either here or there. One
    /// process at a time (a transaction-scoped advisory lock per schema): two
    /// folds deleting the same rows in different orders could deadlock, and a
    /// fold that finds the lock taken has nothing to do anyway.
    pub fn compact_type_counts(&self) -> StoreResult<u64> {
        let folded = self.attempt(TxKind::Write, &mut |s| {
            let got = s.query_opt(
                "SELECT pg_try_advisory_xact_lock(hashtext('scimd.type_counts.' || current_schema()))",
                &[],
            )?;
            if !matches!(got.map(|r| r.try_get::<_, bool>(0)).transpose()?, Some(true)) {
                return Ok(0);
            }
            let n = s.execute(
                "WITH moved AS (DELETE FROM type_count_deltas RETURNING rtype, d)
                 INSERT INTO type_counts (rtype, n)
                 SELECT rtype, sum(d) FROM moved GROUP BY rtype
                 ON CONFLICT (rtype) DO UPDATE SET n = type_counts.n + excluded.n",
                &[],
            )?;
            Ok(n)
        });
        folded.map_err(|e| match e {
            Fail::Db(e) => db_error(e),
            Fail::Store(e) => e,
        })
    }

    pub(super) fn attempt<T>(
        &self,
        mode: TxKind,
        f: &mut impl FnMut(&mut Session<'_>) -> TxResult<T>,
    ) -> TxResult<T> {
        let mut conn = self.conn()?;
        let Conn {
            client,
            statements,
            searches,
        } = &mut *conn;
        let handle = match mode {
            TxKind::Single => Handle::Auto(client),
            TxKind::Snapshot => Handle::Tx(
                client
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()?,
            ),
            TxKind::Write => Handle::Tx(client.transaction()?),
        };
        let began = std::time::Instant::now();
        let mut session = Session {
            handle,
            statements,
            searches,
        };
        let out = f(&mut session)?;
        if let Handle::Tx(t) = session.handle {
            // A write that ran past its bound rolls back (dropped): the feed has
            // stopped waiting for it (see `FeedStore::changes`).
            if mode == TxKind::Write && began.elapsed() > self.max_write_duration {
                return Err(Fail::Store(StoreError::Unavailable(format!(
                    "the write took longer than {} ms and was rolled back",
                    self.max_write_duration.as_millis()
                ))));
            }
            t.commit()?;
        }
        Ok(out)
    }
}

pub(super) fn found(changed: u64) -> TxResult<()> {
    if changed == 0 {
        Err(Fail::Store(StoreError::NotFound))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_are_refreshed_early_then_now_and_then() {
        assert!(!analyze_due(0, 999));
        assert!(analyze_due(999, 1_000));
        assert!(analyze_due(500, 1_500));
        assert!(!analyze_due(1_000, 1_001));
        assert!(analyze_due(9_000, 11_000));
        assert!(!analyze_due(10_000, 99_999));
        assert!(analyze_due(99_999, 100_000));
        assert!(analyze_due(150_000, 250_000));
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        for attempt in 1..20 {
            let d = backoff(attempt);
            assert!(d <= Duration::from_millis(500), "{d:?}");
            assert!(d >= Duration::from_micros(1_000), "{d:?}");
        }
    }
}
