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
//! [`crate::dialect::Postgres`] spelling; this file holds only the statements
//! whose shape is fixed.
//!
//! The client is the synchronous `postgres` crate: the service calls the store
//! from tokio's blocking pool, so a blocking client is the simple correct choice.
//! Connections come from an r2d2 pool with a configurable limit.

use crate::clients::{ClientRecord, ClientStore, SigningKeyRecord};
use crate::dialect::Postgres as PgDialect;
use crate::index::{index_rows, IndexValue};
use crate::sql::{search_sql, SqlParam};
use crate::{
    Change, ChangeOp, ChangePage, ExportRecord, GroupRef, Member, MemberChange, MemberView, Page,
    Query, SecretChange, Store, StoreError, StoreResult, StoredResource, Write,
};
use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use postgres::{Client, Config, IsolationLevel, NoTls, Row, Statement, Transaction};
use scim_proto::schema::custom::CustomAttribute;
use scim_proto::schema::{ResourceTypeDef, SchemaRegistry, SharedRegistry};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// How deep nested groups are followed when computing `User.groups` (as SQLite).
const MAX_GROUP_NESTING: i64 = 32;

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
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            max_connections: 16,
            min_idle: 2,
            acquire_timeout: Duration::from_secs(10),
            max_attempts: 12,
        }
    }
}

/// One pooled connection with the statements prepared on it.
pub struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

struct Manager {
    config: Config,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        Ok(Conn {
            client: self.config.connect(NoTls)?,
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}

pub struct PostgresStore {
    registry: Arc<SharedRegistry>,
    pool: r2d2::Pool<Manager>,
    max_attempts: u32,
}

/// Why a transaction attempt stopped: a store outcome, or a database error that
/// may call for another attempt.
enum Fail {
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

type TxResult<T> = Result<T, Fail>;

fn is_retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
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
    StoreError::Backend(describe(&e))
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("stored document is not valid JSON: {e}"))
}

/// Exponential backoff with jitter: attempt 1 waits 1–2 ms, doubling up to
/// 250–500 ms, so writers that collided do not collide again in lockstep.
fn backoff(attempt: u32) -> Duration {
    let cap_us = 2_000u64.saturating_mul(1 << attempt.min(8)).min(500_000);
    let random = (uuid::Uuid::new_v4().as_u128() & u128::from(u64::MAX)) as u64;
    Duration::from_micros(cap_us / 2 + random % (cap_us / 2 + 1))
}

enum Handle<'a> {
    /// Autocommit: a single statement needs no transaction round trips.
    Auto(&'a mut Client),
    Tx(Transaction<'a>),
}

/// A connection in use, with its cache of prepared statements.
struct Session<'a> {
    handle: Handle<'a>,
    statements: &'a mut HashMap<&'static str, Statement>,
}

type Params<'p> = [&'p (dyn ToSql + Sync)];

impl Session<'_> {
    fn prepared(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
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

    fn query(
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

    fn query_opt(
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

    fn execute(&mut self, sql: &'static str, params: &Params<'_>) -> Result<u64, postgres::Error> {
        let s = self.prepared(sql)?;
        match &mut self.handle {
            Handle::Auto(c) => c.execute(&s, params),
            Handle::Tx(t) => t.execute(&s, params),
        }
    }

    /// A statement built at run time (searches): parameter types are given, so it
    /// takes one round trip and leaves nothing prepared behind.
    fn query_built(&mut self, sql: &str, params: &[SqlParam]) -> Result<Vec<Row>, postgres::Error> {
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
        match &mut self.handle {
            Handle::Auto(c) => c.query_typed(sql, &typed),
            Handle::Tx(t) => t.query_typed(sql, &typed),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
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
        };
        {
            let mut conn = store.conn()?;
            migrate(&mut conn.client)?;
        }
        Ok(store)
    }

    fn conn(&self) -> StoreResult<r2d2::PooledConnection<Manager>> {
        self.pool
            .get()
            .map_err(|e| StoreError::Backend(format!("no database connection: {e}")))
    }

    /// Run `f` in `mode`, again from the start when the engine asks for a retry.
    fn run<T>(
        &self,
        mode: Mode,
        mut f: impl FnMut(&mut Session<'_>) -> TxResult<T>,
    ) -> StoreResult<T> {
        let mut attempt = 1;
        loop {
            match self.attempt(mode, &mut f) {
                Ok(v) => return Ok(v),
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

    fn attempt<T>(
        &self,
        mode: Mode,
        f: &mut impl FnMut(&mut Session<'_>) -> TxResult<T>,
    ) -> TxResult<T> {
        let mut conn = self.conn()?;
        let Conn { client, statements } = &mut *conn;
        let handle = match mode {
            Mode::Single => Handle::Auto(client),
            Mode::Snapshot => Handle::Tx(
                client
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()?,
            ),
            Mode::Write => Handle::Tx(client.transaction()?),
        };
        let mut session = Session { handle, statements };
        let out = f(&mut session)?;
        if let Handle::Tx(t) = session.handle {
            t.commit()?;
        }
        Ok(out)
    }
}

/// One resource (CTE `d`, chosen by `$1` and type `$2`) and the walk up the
/// membership graph from it (as in `groups_of`, depth cap `$3`), in one statement:
/// a row per group, or one row with no group.
macro_rules! with_groups_sql {
    ($target:literal) => {
        concat!(
            "WITH RECURSIVE d AS (SELECT id, doc, version FROM resources WHERE ",
            $target,
            "), up(group_id, depth) AS (
                 SELECT m.group_id, 0::bigint FROM members m JOIN d ON m.member_id = d.id
                 UNION
                 SELECT m.group_id, up.depth + 1 FROM members m
                 JOIN up ON m.member_id = up.group_id
                 WHERE up.depth < $3::bigint
             ), g AS (
                 SELECT up.group_id, r.display, min(up.depth) AS depth FROM up
                 JOIN resources r ON r.id = up.group_id
                 WHERE up.group_id NOT IN (SELECT id FROM d)
                 GROUP BY up.group_id, r.display
             )
             SELECT d.id, d.doc, d.version, g.group_id, g.display, g.depth
             FROM d LEFT JOIN g ON true
             ORDER BY g.depth, g.display NULLS FIRST"
        )
    };
}
const WITH_GROUPS_BY_ID: &str = with_groups_sql!("id = $1 AND rtype = $2");
const WITH_GROUPS_BY_KEY: &str = with_groups_sql!("rtype = $2 AND unique_key = $1");

impl PostgresStore {
    /// A resource and its groups by one of the `WITH_GROUPS_*` statements.
    fn with_groups(
        &self,
        sql: &'static str,
        rt: &ResourceTypeDef,
        target: &str,
    ) -> StoreResult<Option<(StoredResource, Vec<GroupRef>)>> {
        let rows = self.run(Mode::Single, |s| {
            let rows = s.query(sql, &[&target, &rt.name, &MAX_GROUP_NESTING])?;
            rows.iter()
                .map(|r| {
                    let group = match r.try_get::<_, Option<String>>(3)? {
                        Some(gid) => Some(GroupRef {
                            id: gid,
                            display: r.try_get(4)?,
                            direct: r.try_get::<_, i64>(5)? == 0,
                        }),
                        None => None,
                    };
                    let resource = (
                        r.try_get::<_, String>(0)?,
                        r.try_get::<_, String>(1)?,
                        r.try_get::<_, i64>(2)?,
                    );
                    Ok((resource, group))
                })
                .collect::<TxResult<Vec<_>>>()
        })?;
        let Some(((id, doc, version), _)) = rows.first() else {
            return Ok(None);
        };
        let found = stored(id.clone(), &rt.name, doc, *version)?;
        let groups = rows.into_iter().filter_map(|(_, g)| g).collect();
        Ok(Some((found, groups)))
    }
}

/// Apply the migrations not yet applied; returns the steps applied now. Safe when
/// several processes start at once: each step is one transaction that first
/// inserts its version row, so a second process blocks on that row and then skips
/// the step (23505) once the first commits.
pub fn migrate(client: &mut Client) -> StoreResult<Vec<usize>> {
    let exists = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .and_then(|r| r.try_get::<_, bool>(0))
        .map_err(db_error)?;
    let mut tries = 0;
    let mut created = exists;
    while !created {
        // Concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog.
        match client.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version  BIGINT PRIMARY KEY,
                 applied  TEXT NOT NULL
             )",
        ) {
            Ok(()) => created = true,
            Err(e)
                if tries < 5
                    && (e.code() == Some(&SqlState::UNIQUE_VIOLATION)
                        || e.code() == Some(&SqlState::DUPLICATE_TABLE)
                        || is_retryable(&e)) =>
            {
                tries += 1;
                std::thread::sleep(backoff(tries));
            }
            Err(e) => return Err(StoreError::Backend(describe(&e))),
        }
    }
    let done: HashSet<i64> = client
        .query("SELECT version FROM schema_migrations", &[])
        .map_err(db_error)?
        .iter()
        .map(|r| r.try_get::<_, i64>(0))
        .collect::<Result<_, _>>()
        .map_err(db_error)?;
    let mut applied = Vec::new();
    for (i, step) in crate::ddl::POSTGRES_MIGRATIONS.iter().enumerate() {
        let version = i64::try_from(i + 1).unwrap_or(i64::MAX);
        if done.contains(&version) {
            continue;
        }
        let mut tx = client.transaction().map_err(db_error)?;
        let claimed = tx.execute(
            "INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)",
            &[&version, &crate::db_time(chrono::Utc::now())],
        );
        match claimed {
            Ok(_) => {}
            // Another process applied this step meanwhile.
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => continue,
            Err(e) => return Err(StoreError::Backend(describe(&e))),
        }
        tx.batch_execute(step)
            .map_err(|e| StoreError::Backend(format!("migration {version}: {}", describe(&e))))?;
        tx.commit().map_err(db_error)?;
        tracing::info!(version, "applied PostgreSQL migration");
        applied.push(i + 1);
    }
    Ok(applied)
}

/// Connect once and apply the migrations (`scimd migrate`).
pub fn migrate_url(url: &str) -> StoreResult<Vec<usize>> {
    let config = Config::from_str(url)
        .map_err(|e| StoreError::Backend(format!("bad database URL: {}", describe(&e))))?;
    let mut client = config.connect(NoTls).map_err(|e| {
        StoreError::Backend(format!("cannot connect to PostgreSQL: {}", describe(&e)))
    })?;
    migrate(&mut client)
}

/// Index rows of several resources as parallel arrays, inserted with one
/// `unnest` statement.
#[derive(Default)]
struct IndexBatch {
    res_id: Vec<String>,
    rtype: Vec<String>,
    path: Vec<String>,
    elem: Vec<i64>,
    text: Vec<Option<String>>,
    num: Vec<Option<f64>>,
    boolean: Vec<Option<bool>>,
}

impl IndexBatch {
    fn add(
        &mut self,
        registry: &SchemaRegistry,
        rt: &ResourceTypeDef,
        id: &str,
        doc: &serde_json::Value,
    ) {
        for row in index_rows(registry, rt, doc) {
            let (t, n, b) = match row.value {
                IndexValue::Text(t) => (Some(t), None, None),
                IndexValue::Num(n) => (None, Some(n), None),
                IndexValue::Bool(b) => (None, None, Some(b)),
            };
            self.res_id.push(id.to_string());
            self.rtype.push(rt.name.clone());
            self.path.push(row.path);
            self.elem.push(row.elem);
            self.text.push(t);
            self.num.push(n);
            self.boolean.push(b);
        }
    }

    fn insert(&self, s: &mut Session<'_>) -> Result<(), postgres::Error> {
        if self.res_id.is_empty() {
            return Ok(());
        }
        s.execute(
            "INSERT INTO attr_index (res_id, rtype, path, elem, v_text, v_num, v_bool)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[],
                                  $5::text[], $6::float8[], $7::bool[])",
            &[
                &self.res_id,
                &self.rtype,
                &self.path,
                &self.elem,
                &self.text,
                &self.num,
                &self.boolean,
            ],
        )?;
        Ok(())
    }
}

/// Member rows as parallel arrays; `pos` orders a group's members.
#[derive(Default)]
struct MemberBatch {
    group_id: Vec<String>,
    member_id: Vec<String>,
    member_type: Vec<String>,
    pos: Vec<i64>,
}

impl MemberBatch {
    fn add(&mut self, group_id: &str, members: &[Member], first_pos: i64) {
        for (k, m) in members.iter().enumerate() {
            self.group_id.push(group_id.to_string());
            self.member_id.push(m.id.clone());
            self.member_type.push(m.kind.clone());
            self.pos
                .push(first_pos.saturating_add(i64::try_from(k).unwrap_or(i64::MAX)));
        }
    }

    fn insert(&self, s: &mut Session<'_>) -> Result<(), postgres::Error> {
        if self.member_id.is_empty() {
            return Ok(());
        }
        // A member already present keeps its place (as SQLite's INSERT OR IGNORE).
        s.execute(
            "INSERT INTO members (group_id, member_id, member_type, pos)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
             ON CONFLICT (group_id, member_id) DO NOTHING",
            &[
                &self.group_id,
                &self.member_id,
                &self.member_type,
                &self.pos,
            ],
        )?;
        Ok(())
    }
}

/// Apply a membership change to `group_id`, whose row this transaction has
/// already inserted or locked.
fn write_members(s: &mut Session<'_>, group_id: &str, change: &MemberChange) -> TxResult<()> {
    let (add, first_pos) = match change {
        MemberChange::Keep => return Ok(()),
        MemberChange::Replace(all) => {
            s.execute("DELETE FROM members WHERE group_id = $1", &[&group_id])?;
            (all, 1)
        }
        MemberChange::Delta { add, remove } => {
            if !remove.is_empty() {
                s.execute(
                    "DELETE FROM members WHERE group_id = $1 AND member_id = ANY($2)",
                    &[&group_id, remove],
                )?;
            }
            if add.is_empty() {
                return Ok(());
            }
            let last: i64 = s
                .query_opt(
                    "SELECT pos FROM members WHERE group_id = $1 ORDER BY pos DESC LIMIT 1",
                    &[&group_id],
                )?
                .map(|r| r.try_get(0))
                .transpose()?
                .unwrap_or(0);
            (add, last + 1)
        }
    };
    let mut batch = MemberBatch::default();
    batch.add(group_id, add, first_pos);
    batch.insert(s)?;
    Ok(())
}

fn record_change(
    s: &mut Session<'_>,
    id: &str,
    rtype: &str,
    op: ChangeOp,
    version: i64,
    at: chrono::DateTime<chrono::Utc>,
    doc: Option<&str>,
) -> TxResult<()> {
    s.execute(
        "INSERT INTO changes (id, res_id, rtype, op, version, at, doc)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &uuid::Uuid::new_v4().to_string(),
            &id,
            &rtype,
            &op.as_str(),
            &version,
            &crate::db_time(at),
            &doc,
        ],
    )?;
    Ok(())
}

/// A change-feed position: the writing transaction's id and the change row's id.
/// Written zero-padded so that text order is position order.
fn position(tx: u64, id: &str) -> String {
    format!("p:{tx:020}:{id}")
}

fn parse_position(p: &str) -> StoreResult<(u64, String)> {
    p.strip_prefix("p:")
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(tx, id)| Some((tx.parse::<u64>().ok()?, id.to_string())))
        .ok_or_else(|| StoreError::BadCursor("not a position of this server".into()))
}

fn stored(id: String, rtype: &str, doc: &str, version: i64) -> StoreResult<StoredResource> {
    Ok(StoredResource {
        id,
        rtype: rtype.to_string(),
        doc: serde_json::from_str(doc).map_err(json_err)?,
        version,
    })
}

/// Why a conditional write matched no row: the resource is gone, or changed.
fn missing_or_changed(s: &mut Session<'_>, rt: &ResourceTypeDef, id: &str) -> TxResult<Fail> {
    let exists = s
        .query_opt(
            "SELECT version FROM resources WHERE id = $1 AND rtype = $2",
            &[&id, &rt.name],
        )?
        .is_some();
    Ok(Fail::Store(if exists {
        StoreError::VersionMismatch
    } else {
        StoreError::NotFound
    }))
}

/// Insert a new resource with its index, member and change-feed rows; a taken id
/// or unique key is this item's `Uniqueness` failure and leaves nothing behind.
fn insert_new(
    s: &mut Session<'_>,
    rt: &ResourceTypeDef,
    w: &Write,
    doc: &str,
    index: &IndexBatch,
) -> TxResult<StoreResult<()>> {
    let secret = w.secret.new_hash();
    let inserted = s.execute(
        "INSERT INTO resources (id, rtype, doc, version, created, modified, unique_key, display, secret)
         VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        &[
            &w.id,
            &rt.name,
            &doc,
            &crate::db_time(w.created),
            &crate::db_time(w.modified),
            &w.unique_key,
            &w.display,
            &secret,
        ],
    )?;
    if inserted == 0 {
        return Ok(Err(StoreError::Uniqueness));
    }
    index.insert(s)?;
    write_members(s, &w.id, &w.members)?;
    record_change(
        s,
        &w.id,
        &rt.name,
        ChangeOp::Created,
        1,
        w.modified,
        Some(doc),
    )?;
    Ok(Ok(()))
}

impl Store for PostgresStore {
    fn create(&self, rt: &ResourceTypeDef, w: Write) -> StoreResult<StoredResource> {
        self.create_many(vec![(rt.clone(), w)], 1)
            .pop()
            .unwrap_or_else(|| Err(StoreError::Backend("creation not attempted".into())))
    }

    fn create_many(
        &self,
        items: Vec<(ResourceTypeDef, Write)>,
        max_failures: usize,
    ) -> Vec<StoreResult<StoredResource>> {
        let registry = self.registry.load();
        let prepared: Vec<_> = items
            .into_iter()
            .map(|(rt, w)| {
                let doc = serde_json::to_string(&w.doc).map_err(json_err);
                let mut index = IndexBatch::default();
                index.add(&registry, &rt, &w.id, &w.doc);
                (rt, w, doc, index)
            })
            .collect();
        // One transaction for all: a uniqueness conflict skips its item without
        // aborting the transaction (no savepoint per item); any other error fails
        // them all, and a retryable one runs them all again.
        let outcome = self.run(Mode::Write, |s| {
            let mut out = Vec::with_capacity(prepared.len());
            let mut failures = 0;
            for (rt, w, doc, index) in &prepared {
                if failures >= max_failures {
                    break;
                }
                let r = match doc {
                    Err(e) => Err(e.clone()),
                    Ok(doc) => insert_new(s, rt, w, doc, index)?,
                };
                failures += usize::from(r.is_err());
                out.push(r);
            }
            Ok(out)
        });
        match outcome {
            Ok(out) => out
                .into_iter()
                .zip(prepared)
                .map(|(r, (rt, w, _, _))| {
                    r.map(|()| StoredResource {
                        id: w.id,
                        rtype: rt.name,
                        doc: w.doc,
                        version: 1,
                    })
                })
                .collect(),
            Err(e) => vec![Err(e); prepared.len()],
        }
    }

    fn get_with_groups(
        &self,
        rt: &ResourceTypeDef,
        id: &str,
    ) -> StoreResult<(StoredResource, Vec<GroupRef>)> {
        self.with_groups(WITH_GROUPS_BY_ID, rt, id)?
            .ok_or(StoreError::NotFound)
    }

    fn find_unique_with_groups(
        &self,
        rt: &ResourceTypeDef,
        key: &str,
    ) -> StoreResult<Option<(StoredResource, Vec<GroupRef>)>> {
        self.with_groups(WITH_GROUPS_BY_KEY, rt, key)
    }

    fn find_unique(&self, rt: &ResourceTypeDef, key: &str) -> StoreResult<Option<StoredResource>> {
        let row = self.run(Mode::Single, |s| {
            let row = s.query_opt(
                "SELECT id, doc, version FROM resources WHERE rtype = $1 AND unique_key = $2",
                &[&rt.name, &key],
            )?;
            Ok(match row {
                Some(r) => Some((
                    r.try_get::<_, String>(0)?,
                    r.try_get::<_, String>(1)?,
                    r.try_get::<_, i64>(2)?,
                )),
                None => None,
            })
        })?;
        row.map(|(id, doc, version)| stored(id, &rt.name, &doc, version))
            .transpose()
    }

    fn get(&self, rt: &ResourceTypeDef, id: &str) -> StoreResult<StoredResource> {
        let row = self.run(Mode::Single, |s| {
            let row = s.query_opt(
                "SELECT doc, version FROM resources WHERE id = $1 AND rtype = $2",
                &[&id, &rt.name],
            )?;
            Ok(match row {
                Some(r) => Some((r.try_get::<_, String>(0)?, r.try_get::<_, i64>(1)?)),
                None => None,
            })
        })?;
        let (doc, version) = row.ok_or(StoreError::NotFound)?;
        stored(id.to_string(), &rt.name, &doc, version)
    }

    fn replace(
        &self,
        rt: &ResourceTypeDef,
        w: Write,
        if_version: Option<i64>,
    ) -> StoreResult<StoredResource> {
        let doc = serde_json::to_string(&w.doc).map_err(json_err)?;
        let set_secret = matches!(w.secret, SecretChange::Set(_));
        let secret = w.secret.new_hash();
        let mut index = IndexBatch::default();
        index.add(&self.registry.load(), rt, &w.id, &w.doc);
        let version = self.run(Mode::Write, |s| {
            // Locks the row: writers of this resource (and of this group's member
            // rows) queue here, and each re-checks the version when its turn comes.
            let updated = s.query_opt(
                "UPDATE resources SET doc = $3, version = version + 1, modified = $4,
                        unique_key = $5, display = $6,
                        secret = CASE WHEN $7 THEN $8 ELSE secret END
                 WHERE id = $1 AND rtype = $2 AND ($9::bigint IS NULL OR version = $9)
                 RETURNING version",
                &[
                    &w.id,
                    &rt.name,
                    &doc,
                    &crate::db_time(w.modified),
                    &w.unique_key,
                    &w.display,
                    &set_secret,
                    &secret,
                    &if_version,
                ],
            )?;
            let Some(row) = updated else {
                return Err(missing_or_changed(s, rt, &w.id)?);
            };
            let next: i64 = row.try_get(0)?;
            s.execute("DELETE FROM attr_index WHERE res_id = $1", &[&w.id])?;
            index.insert(s)?;
            write_members(s, &w.id, &w.members)?;
            record_change(
                s,
                &w.id,
                &rt.name,
                ChangeOp::Updated,
                next,
                w.modified,
                Some(&doc),
            )?;
            Ok(next)
        })?;
        Ok(StoredResource {
            id: w.id,
            rtype: rt.name.clone(),
            doc: w.doc,
            version,
        })
    }

    fn delete(
        &self,
        rt: &ResourceTypeDef,
        id: &str,
        if_version: Option<i64>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        self.run(Mode::Write, |s| {
            let deleted = s.query_opt(
                "DELETE FROM resources WHERE id = $1 AND rtype = $2 AND ($3::bigint IS NULL OR version = $3)
                 RETURNING version",
                &[&id, &rt.name, &if_version],
            )?;
            let Some(row) = deleted else {
                return Err(missing_or_changed(s, rt, id)?);
            };
            let version: i64 = row.try_get(0)?;
            s.execute("DELETE FROM attr_index WHERE res_id = $1", &[&id])?;
            s.execute(
                "DELETE FROM members WHERE group_id = $1 OR member_id = $1",
                &[&id],
            )?;
            record_change(s, id, &rt.name, ChangeOp::Deleted, version, at, None)
        })
    }

    fn search(&self, rt: &ResourceTypeDef, q: &Query) -> StoreResult<Page> {
        let sql =
            search_sql(&PgDialect, &self.registry.load(), rt, q).map_err(StoreError::Query)?;
        // Page and total from one snapshot; a count-only search needs no transaction.
        let mode = if sql.page_sql.is_some() {
            Mode::Snapshot
        } else {
            Mode::Single
        };
        let (total, rows) = self.run(mode, |s| {
            let mut rows: Vec<crate::model::PageRow> = Vec::new();
            if let Some(page_sql) = &sql.page_sql {
                for r in s.query_built(page_sql, &sql.params)? {
                    rows.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?));
                }
            }
            let total: i64 = match crate::model::total_from_page(q, rows.len()) {
                Some(t) => t,
                None => match s
                    .query_built(&sql.count_sql, &sql.params[..sql.count_params])?
                    .first()
                {
                    Some(r) => r.try_get(0)?,
                    None => 0,
                },
            };
            Ok((total, rows))
        })?;
        crate::model::assemble_page(&rt.name, total, rows, sql.reversed)
    }

    fn members(&self, group_id: &str, with_display: bool) -> StoreResult<Vec<MemberView>> {
        self.run(Mode::Single, |s| {
            let rows = if with_display {
                s.query(
                    "SELECT m.member_id, m.member_type, r.display FROM members m
                     LEFT JOIN resources r ON r.id = m.member_id
                     WHERE m.group_id = $1 ORDER BY m.pos",
                    &[&group_id],
                )?
            } else {
                s.query(
                    "SELECT member_id, member_type, NULL::text FROM members
                     WHERE group_id = $1 ORDER BY pos",
                    &[&group_id],
                )?
            };
            rows.iter()
                .map(|r| {
                    Ok(MemberView {
                        id: r.try_get(0)?,
                        kind: r.try_get(1)?,
                        display: r.try_get(2)?,
                    })
                })
                .collect()
        })
    }

    fn groups_of(&self, member_id: &str) -> StoreResult<Vec<GroupRef>> {
        self.run(Mode::Single, |s| {
            // Depth-capped walk up the membership graph (cycles end at the cap).
            let rows = s.query(
                "WITH RECURSIVE up(group_id, depth) AS (
                     SELECT group_id, 0::bigint FROM members WHERE member_id = $1
                     UNION
                     SELECT m.group_id, up.depth + 1 FROM members m
                     JOIN up ON m.member_id = up.group_id
                     WHERE up.depth < $2::bigint
                 )
                 SELECT up.group_id, r.display, min(up.depth) FROM up
                 JOIN resources r ON r.id = up.group_id
                 WHERE up.group_id <> $1
                 GROUP BY up.group_id, r.display
                 ORDER BY min(up.depth), r.display NULLS FIRST",
                &[&member_id, &MAX_GROUP_NESTING],
            )?;
            rows.iter()
                .map(|r| {
                    Ok(GroupRef {
                        id: r.try_get(0)?,
                        display: r.try_get(1)?,
                        direct: r.try_get::<_, i64>(2)? == 0,
                    })
                })
                .collect()
        })
    }

    fn members_among(&self, group_id: &str, ids: &[String]) -> StoreResult<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found: HashSet<String> = self.run(Mode::Single, |s| {
            let rows = s.query(
                "SELECT member_id FROM members WHERE group_id = $1 AND member_id = ANY($2)",
                &[&group_id, &ids],
            )?;
            rows.iter()
                .map(|r| r.try_get(0).map_err(Fail::Db))
                .collect()
        })?;
        Ok(ids
            .iter()
            .filter(|id| found.contains(*id))
            .cloned()
            .collect())
    }

    fn custom_attributes(&self) -> StoreResult<Vec<CustomAttribute>> {
        self.run(Mode::Single, |s| {
            s.query(
                "SELECT definition FROM custom_attributes ORDER BY created, name_key",
                &[],
            )?
            .iter()
            .map(|r| {
                let def: String = r.get(0);
                serde_json::from_str(&def).map_err(|e| Fail::Store(json_err(e)))
            })
            .collect()
        })
    }

    fn add_custom_attribute(&self, attr: &CustomAttribute) -> StoreResult<()> {
        let definition = serde_json::to_string(attr).map_err(json_err)?;
        let key = attr.name.to_lowercase();
        self.run(Mode::Single, |s| {
            s.execute(
                "INSERT INTO custom_attributes (name_key, definition) VALUES ($1, $2)",
                &[&key, &definition],
            )?;
            Ok(())
        })
    }

    fn remove_custom_attribute(&self, name: &str) -> StoreResult<()> {
        let key = name.to_lowercase();
        self.run(Mode::Single, |s| {
            found(s.execute("DELETE FROM custom_attributes WHERE name_key = $1", &[&key])?)
        })
    }

    fn existing(&self, ids: &[String]) -> StoreResult<Vec<Member>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found: HashMap<String, String> = self.run(Mode::Single, |s| {
            let rows = s.query(
                "SELECT id, rtype FROM resources WHERE id = ANY($1)",
                &[&ids],
            )?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect()
        })?;
        Ok(ids
            .iter()
            .filter_map(|id| {
                found.get(id).map(|kind| Member {
                    id: id.clone(),
                    kind: kind.clone(),
                })
            })
            .collect())
    }

    /// Changes are delivered in (transaction id, row id) order, and only those
    /// written by transactions older than every transaction still running
    /// (`pg_snapshot_xmin`): a transaction that began earlier but commits later
    /// cannot add a row behind a position already handed out.
    fn changes(&self, after: Option<&str>, limit: usize) -> StoreResult<ChangePage> {
        let from = after.map(parse_position).transpose()?;
        let limit_rows = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
        let (pruned, rows) = self.run(Mode::Snapshot, |s| {
            let pruned = s
                .query_opt(
                    "SELECT value FROM feed_state WHERE name = 'pruned_through'",
                    &[],
                )?
                .map(|r| r.try_get::<_, String>(0))
                .transpose()?;
            let pruned = pruned.as_deref().map(parse_position).transpose()?;
            if let (Some(f), Some(p)) = (&from, &pruned) {
                if f < p {
                    return Err(Fail::Store(StoreError::BadCursor(
                        "the changes after this position are no longer retained".into(),
                    )));
                }
            }
            let start = match (&from, &pruned) {
                (Some(f), Some(p)) => Some(f.max(p).clone()),
                (f, p) => f.clone().or_else(|| p.clone()),
            };
            let (tx, id) = start.clone().unwrap_or((0, String::new()));
            let rows = s.query(
                "SELECT tx::text, id, res_id, rtype, op, version, at, doc FROM changes
                 WHERE (tx, id) > ($1::text::xid8, $2::text)
                   AND tx < pg_snapshot_xmin(pg_current_snapshot())
                 ORDER BY tx, id LIMIT $3",
                &[&tx.to_string(), &id, &limit_rows],
            )?;
            Ok((start, rows))
        })?;
        let mut changes = Vec::new();
        let mut last = pruned.or(from);
        let mut more = false;
        for r in rows {
            if changes.len() == limit {
                more = true;
                break;
            }
            let tx: String = r.try_get(0).map_err(db_error)?;
            let tx: u64 = tx
                .parse()
                .map_err(|_| StoreError::Backend(format!("transaction id '{tx}'")))?;
            let op: String = r.try_get(4).map_err(db_error)?;
            let doc: Option<String> = r.try_get(7).map_err(db_error)?;
            last = Some((tx, r.try_get(1).map_err(db_error)?));
            changes.push(Change {
                op: ChangeOp::parse(&op)
                    .ok_or_else(|| StoreError::Backend(format!("unknown change op '{op}'")))?,
                id: r.try_get(2).map_err(db_error)?,
                rtype: r.try_get(3).map_err(db_error)?,
                version: r.try_get(5).map_err(db_error)?,
                at: r.try_get(6).map_err(db_error)?,
                doc: doc
                    .map(|d| serde_json::from_str(&d))
                    .transpose()
                    .map_err(json_err)?,
            });
        }
        let (tx, id) = last.unwrap_or((0, String::new()));
        Ok(ChangePage {
            changes,
            next: position(tx, &id),
            more,
        })
    }

    fn prune_changes(&self, before: chrono::DateTime<chrono::Utc>) -> StoreResult<u64> {
        let before = crate::db_time(before);
        self.run(Mode::Write, |s| {
            // Only settled rows (see `changes`) can be pruned, so nothing can later
            // appear behind the pruned position.
            let Some(last) = s.query_opt(
                "SELECT tx::text, id FROM changes
                 WHERE at < $1 AND tx < pg_snapshot_xmin(pg_current_snapshot())
                 ORDER BY tx DESC, id DESC LIMIT 1",
                &[&before],
            )?
            else {
                return Ok(0);
            };
            let tx: String = last.try_get(0)?;
            let id: String = last.try_get(1)?;
            let n = s.execute(
                "DELETE FROM changes WHERE (tx, id) <= ($1::text::xid8, $2::text)",
                &[&tx, &id],
            )?;
            let tx: u64 = tx
                .parse()
                .map_err(|_| StoreError::Backend(format!("transaction id '{tx}'")))?;
            s.execute(
                "INSERT INTO feed_state (name, value) VALUES ('pruned_through', $1)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value
                 WHERE feed_state.value COLLATE \"C\" < excluded.value COLLATE \"C\"",
                &[&position(tx, &id)],
            )?;
            Ok(n)
        })
    }

    fn export(&self, sink: &mut dyn FnMut(ExportRecord) -> StoreResult<()>) -> StoreResult<u64> {
        // Not retried: records already handed to the sink cannot be taken back.
        let mut conn = self.conn()?;
        let Conn { client, .. } = &mut *conn;
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(db_error)?;
        let portal = tx
            .bind(
                "SELECT id, rtype, doc, version, created, modified, unique_key, display, secret
                 FROM resources ORDER BY rtype, created, id",
                &[],
            )
            .map_err(db_error)?;
        let mut n = 0;
        loop {
            let rows = tx.query_portal(&portal, 500).map_err(db_error)?;
            if rows.is_empty() {
                break;
            }
            let groups: Vec<String> = rows
                .iter()
                .filter(|r| r.try_get::<_, &str>(1).is_ok_and(|t| t == "Group"))
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()
                .map_err(db_error)?;
            let mut members: HashMap<String, Vec<Member>> = HashMap::new();
            if !groups.is_empty() {
                for m in tx
                    .query(
                        "SELECT group_id, member_id, member_type FROM members
                         WHERE group_id = ANY($1) ORDER BY group_id, pos",
                        &[&groups],
                    )
                    .map_err(db_error)?
                {
                    members
                        .entry(m.try_get(0).map_err(db_error)?)
                        .or_default()
                        .push(Member {
                            id: m.try_get(1).map_err(db_error)?,
                            kind: m.try_get(2).map_err(db_error)?,
                        });
                }
            }
            for r in rows {
                let id: String = r.try_get(0).map_err(db_error)?;
                let doc: String = r.try_get(2).map_err(db_error)?;
                let created: String = r.try_get(4).map_err(db_error)?;
                let modified: String = r.try_get(5).map_err(db_error)?;
                sink(ExportRecord {
                    rtype: r.try_get(1).map_err(db_error)?,
                    doc: serde_json::from_str(&doc).map_err(json_err)?,
                    version: r.try_get(3).map_err(db_error)?,
                    created: crate::parse_db_time(&created)?,
                    modified: crate::parse_db_time(&modified)?,
                    unique_key: r.try_get(6).map_err(db_error)?,
                    display: r.try_get(7).map_err(db_error)?,
                    secret: r.try_get(8).map_err(db_error)?,
                    members: members.remove(&id).unwrap_or_default(),
                    id,
                })?;
                n += 1;
            }
        }
        tx.commit().map_err(db_error)?;
        Ok(n)
    }

    fn import(&self, batch: &[ExportRecord]) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(batch.len());
        let mut rtypes = Vec::with_capacity(batch.len());
        let mut docs = Vec::with_capacity(batch.len());
        let mut versions = Vec::with_capacity(batch.len());
        let mut created = Vec::with_capacity(batch.len());
        let mut modified = Vec::with_capacity(batch.len());
        let mut unique_keys = Vec::with_capacity(batch.len());
        let mut displays = Vec::with_capacity(batch.len());
        let mut secrets = Vec::with_capacity(batch.len());
        let mut groups = Vec::new();
        let mut index = IndexBatch::default();
        let mut members = MemberBatch::default();
        let registry = self.registry.load();
        for rec in batch {
            let rt = registry.resource_type(&rec.rtype).ok_or_else(|| {
                StoreError::Backend(format!("unknown resource type '{}'", rec.rtype))
            })?;
            ids.push(rec.id.clone());
            rtypes.push(rec.rtype.clone());
            docs.push(serde_json::to_string(&rec.doc).map_err(json_err)?);
            versions.push(rec.version);
            created.push(crate::db_time(rec.created));
            modified.push(crate::db_time(rec.modified));
            unique_keys.push(rec.unique_key.clone());
            displays.push(rec.display.clone());
            secrets.push(rec.secret.clone());
            index.add(&registry, rt, &rec.id, &rec.doc);
            if rt.name == "Group" || !rec.members.is_empty() {
                groups.push(rec.id.clone());
                members.add(&rec.id, &rec.members, 1);
            }
        }
        self.run(Mode::Write, |s| {
            s.execute(
                "INSERT INTO resources (id, rtype, doc, version, created, modified, unique_key, display, secret)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                                      $6::text[], $7::text[], $8::text[], $9::text[])
                 ON CONFLICT (id) DO UPDATE SET rtype = excluded.rtype, doc = excluded.doc,
                    version = excluded.version, created = excluded.created,
                    modified = excluded.modified, unique_key = excluded.unique_key,
                    display = excluded.display, secret = excluded.secret",
                &[
                    &ids,
                    &rtypes,
                    &docs,
                    &versions,
                    &created,
                    &modified,
                    &unique_keys,
                    &displays,
                    &secrets,
                ],
            )?;
            s.execute("DELETE FROM attr_index WHERE res_id = ANY($1)", &[&ids])?;
            index.insert(s)?;
            if !groups.is_empty() {
                s.execute("DELETE FROM members WHERE group_id = ANY($1)", &[&groups])?;
                members.insert(s)?;
            }
            Ok(())
        })
    }
}

fn client_row(r: &Row) -> TxResult<ClientRecord> {
    let scopes: String = r.try_get(3)?;
    let created: String = r.try_get(4)?;
    let expires: Option<String> = r.try_get(5)?;
    let locked: Option<String> = r.try_get(7)?;
    Ok(ClientRecord {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        secret_hash: r.try_get(2)?,
        scopes: scopes.split_whitespace().map(str::to_string).collect(),
        created: crate::parse_db_time(&created)?,
        expires: expires.as_deref().map(crate::parse_db_time).transpose()?,
        disabled: r.try_get(6)?,
        locked_until: locked.as_deref().map(crate::parse_db_time).transpose()?,
        origin: r.try_get(8)?,
    })
}

fn found(changed: u64) -> TxResult<()> {
    if changed == 0 {
        Err(Fail::Store(StoreError::NotFound))
    } else {
        Ok(())
    }
}

/// The authorization server's clients and keys live in the same database, so every
/// scimd process sees the same clients, keys and lock-outs.
impl ClientStore for PostgresStore {
    fn create_client(&self, c: &ClientRecord) -> StoreResult<()> {
        let scopes = c.scopes.join(" ");
        self.run(Mode::Write, |s| {
            s.execute(
                "INSERT INTO oauth_clients (id, name, secret_hash, scopes, created, expires, disabled, locked_until, origin)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &c.id,
                    &c.name,
                    &c.secret_hash,
                    &scopes,
                    &crate::db_time(c.created),
                    &c.expires.map(crate::db_time),
                    &c.disabled,
                    &c.locked_until.map(crate::db_time),
                    &c.origin,
                ],
            )?;
            Ok(())
        })
    }

    fn get_client(&self, id: &str) -> StoreResult<Option<ClientRecord>> {
        self.run(Mode::Single, |s| {
            s.query_opt(
                "SELECT id, name, secret_hash, scopes, created, expires, disabled, locked_until, origin
                 FROM oauth_clients WHERE id = $1",
                &[&id],
            )?
            .map(|r| client_row(&r))
            .transpose()
        })
    }

    fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        self.run(Mode::Single, |s| {
            s.query(
                "SELECT id, name, secret_hash, scopes, created, expires, disabled, locked_until, origin
                 FROM oauth_clients ORDER BY created, id",
                &[],
            )?
            .iter()
            .map(client_row)
            .collect()
        })
    }

    fn set_client_disabled(&self, id: &str, disabled: bool) -> StoreResult<()> {
        self.run(Mode::Single, |s| {
            found(s.execute(
                "UPDATE oauth_clients SET disabled = $2 WHERE id = $1",
                &[&id, &disabled],
            )?)
        })
    }

    fn delete_client(&self, id: &str) -> StoreResult<()> {
        self.run(Mode::Write, |s| {
            s.execute("DELETE FROM oauth_failures WHERE client_id = $1", &[&id])?;
            found(s.execute("DELETE FROM oauth_clients WHERE id = $1", &[&id])?)
        })
    }

    fn rotate_secret(&self, id: &str, secret_hash: &str) -> StoreResult<()> {
        self.run(Mode::Write, |s| {
            s.execute("DELETE FROM oauth_failures WHERE client_id = $1", &[&id])?;
            found(s.execute(
                "UPDATE oauth_clients SET secret_hash = $2, locked_until = NULL WHERE id = $1",
                &[&id, &secret_hash],
            )?)
        })
    }

    fn record_failure(
        &self,
        id: &str,
        at: chrono::DateTime<chrono::Utc>,
        window_start: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<u64> {
        let (at, window_start) = (crate::db_time(at), crate::db_time(window_start));
        self.run(Mode::Write, |s| {
            // The client's row lock serialises failure counting across processes.
            s.query_opt(
                "SELECT 1 FROM oauth_clients WHERE id = $1 FOR UPDATE",
                &[&id],
            )?;
            s.execute(
                "DELETE FROM oauth_failures WHERE client_id = $1 AND at < $2",
                &[&id, &window_start],
            )?;
            s.execute(
                "INSERT INTO oauth_failures (client_id, at) VALUES ($1, $2)",
                &[&id, &at],
            )?;
            let n: i64 = s
                .query_opt(
                    "SELECT count(*) FROM oauth_failures WHERE client_id = $1",
                    &[&id],
                )?
                .map(|r| r.try_get(0))
                .transpose()?
                .unwrap_or(0);
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn set_locked_until(
        &self,
        id: &str,
        until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> StoreResult<()> {
        let until_text = until.map(crate::db_time);
        self.run(Mode::Write, |s| {
            if until_text.is_none() {
                s.execute("DELETE FROM oauth_failures WHERE client_id = $1", &[&id])?;
            }
            found(s.execute(
                "UPDATE oauth_clients SET locked_until = $2 WHERE id = $1",
                &[&id, &until_text],
            )?)
        })
    }

    fn delete_expired_dynamic_clients(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<u64> {
        let now = crate::db_time(now);
        self.run(Mode::Single, |s| {
            Ok(s.execute(
                "DELETE FROM oauth_clients WHERE origin = 'dynamic' AND expires IS NOT NULL AND expires < $1",
                &[&now],
            )?)
        })
    }

    fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        self.run(Mode::Single, |s| {
            s.query(
                "SELECT kid, alg, private_key, public_jwk, created, retired
                 FROM oauth_signing_keys ORDER BY created DESC, kid",
                &[],
            )?
            .iter()
            .map(|r| {
                let created: String = r.try_get(4)?;
                let retired: Option<String> = r.try_get(5)?;
                Ok(SigningKeyRecord {
                    kid: r.try_get(0)?,
                    alg: r.try_get(1)?,
                    private_key: r.try_get(2)?,
                    public_jwk: r.try_get(3)?,
                    created: crate::parse_db_time(&created)?,
                    retired: retired.as_deref().map(crate::parse_db_time).transpose()?,
                })
            })
            .collect()
        })
    }

    fn add_signing_key(&self, k: &SigningKeyRecord) -> StoreResult<()> {
        self.run(Mode::Single, |s| {
            s.execute(
                "INSERT INTO oauth_signing_keys (kid, alg, private_key, public_jwk, created, retired)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &k.kid,
                    &k.alg,
                    &k.private_key,
                    &k.public_jwk,
                    &crate::db_time(k.created),
                    &k.retired.map(crate::db_time),
                ],
            )?;
            Ok(())
        })
    }

    fn retire_signing_keys_except(
        &self,
        keep_kid: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<u64> {
        let at = crate::db_time(at);
        self.run(Mode::Single, |s| {
            Ok(s.execute(
                "UPDATE oauth_signing_keys SET retired = $2 WHERE kid <> $1 AND retired IS NULL",
                &[&keep_kid, &at],
            )?)
        })
    }

    fn delete_signing_key(&self, kid: &str) -> StoreResult<()> {
        self.run(Mode::Single, |s| {
            s.execute("DELETE FROM oauth_signing_keys WHERE kid = $1", &[&kid])?;
            Ok(())
        })
    }

    fn server_secret(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        let now = crate::db_time(chrono::Utc::now());
        self.run(Mode::Write, |s| {
            // Concurrent first starts: one insert wins, every process reads it.
            s.execute(
                "INSERT INTO server_secrets (name, value, created) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &candidate, &now],
            )?;
            match s.query_opt("SELECT value FROM server_secrets WHERE name = $1", &[&name])? {
                Some(r) => Ok(r.try_get(0)?),
                None => Err(Fail::Store(StoreError::NotFound)),
            }
        })
    }
}

/// Append `-c search_path=SCHEMA` to a connection URL, so that every connection
/// made from it works in that schema.
pub fn url_with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// A fresh schema in the database at `url`, dropped (with everything in it) when
/// this value is dropped. Lets test runs share one database without seeing each
/// other's rows; `url` connects with it as the search path.
pub struct ScratchSchema {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl ScratchSchema {
    pub fn create(url: &str, prefix: &str) -> StoreResult<ScratchSchema> {
        let name = format!(
            "{prefix}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let mut client = Config::from_str(url)
            .and_then(|c| c.connect(NoTls))
            .map_err(|e| {
                StoreError::Backend(format!(
                    "cannot connect to PostgreSQL at {url}: {}",
                    describe(&e)
                ))
            })?;
        client
            .batch_execute(&format!("CREATE SCHEMA \"{name}\""))
            .map_err(db_error)?;
        Ok(ScratchSchema {
            admin_url: url.to_string(),
            url: url_with_schema(url, &name),
            name,
        })
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        let dropped = Config::from_str(&self.admin_url)
            .and_then(|c| c.connect(NoTls))
            .and_then(|mut c| {
                c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name))
            });
        if let Err(e) = dropped {
            tracing::warn!(schema = %self.name, error = %describe(&e), "could not drop scratch schema");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_as_text_and_parse_back() {
        let a = position(9, "b");
        let b = position(10, "a");
        assert!(a < b);
        assert_eq!(parse_position(&b).ok(), Some((10, "a".to_string())));
        assert!(parse_position("s:12").is_err());
        assert!(parse_position("p:x:y").is_err());
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        for attempt in 1..20 {
            let d = backoff(attempt);
            assert!(d <= Duration::from_millis(500), "{d:?}");
            assert!(d >= Duration::from_micros(1_000), "{d:?}");
        }
    }

    #[test]
    fn schema_urls() {
        assert_eq!(
            url_with_schema("postgres://u@h/db", "s1"),
            "postgres://u@h/db?options=-c%20search_path%3Ds1"
        );
        assert_eq!(
            url_with_schema("postgres://u@h/db?sslmode=disable", "s1"),
            "postgres://u@h/db?sslmode=disable&options=-c%20search_path%3Ds1"
        );
    }
}
