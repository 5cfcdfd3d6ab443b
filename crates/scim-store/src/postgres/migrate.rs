//! The PostgreSQL schema steps (`crate::ddl`), applied in order and recorded in
//! `schema_migrations`; safe when several processes start at once.

use super::session::{backoff, is_retryable};
use super::{db_error, describe};
use crate::{StoreError, StoreResult};
use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};
use std::collections::HashSet;
use std::str::FromStr;

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
        let step = resolved(client, step)?;
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
        tx.batch_execute(&step)
            .map_err(|e| StoreError::Backend(format!("migration {version}: {}", describe(&e))))?;
        tx.commit().map_err(db_error)?;
        tracing::info!(version, "applied PostgreSQL migration");
        applied.push(i + 1);
    }
    Ok(applied)
}

/// `step` with the names it refers to filled in (`{trgm}`: the schema of the
/// pg_trgm extension, which this creates when missing).
fn resolved(client: &mut Client, step: &str) -> StoreResult<String> {
    Ok(if step.contains("{trgm}") {
        step.replace("{trgm}", &quoted(&trigram_schema(client)?))
    } else {
        step.to_string()
    })
}

/// The schema holding the pg_trgm extension, created in `public` when the
/// database does not have it yet. The extension is per database, not per schema:
/// one that already exists elsewhere is used where it is.
fn trigram_schema(client: &mut Client) -> StoreResult<String> {
    const FIND: &str = "SELECT n.nspname::text FROM pg_extension e
                        JOIN pg_namespace n ON n.oid = e.extnamespace
                        WHERE e.extname = 'pg_trgm'";
    let find = |client: &mut Client| -> StoreResult<Option<String>> {
        let row = client.query_opt(FIND, &[]).map_err(db_error)?;
        row.map(|r| r.try_get::<_, String>(0))
            .transpose()
            .map_err(db_error)
    };
    if let Some(schema) = find(client)? {
        return Ok(schema);
    }
    let created = client.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public");
    // A concurrent start may have created it meanwhile (a unique violation here).
    match (created, find(client)?) {
        (_, Some(schema)) => Ok(schema),
        (Err(e), None) => Err(StoreError::Backend(format!(
            "scimd needs the PostgreSQL extension pg_trgm (substring filters are \
             answered from its index) and could not create it: {}. Run \
             `CREATE EXTENSION pg_trgm SCHEMA public;` in this database as its owner \
             or a superuser (Debian/Ubuntu: the postgresql-contrib package provides \
             it), then start scimd again",
            describe(&e)
        ))),
        (Ok(()), None) => Err(StoreError::Backend(
            "CREATE EXTENSION pg_trgm succeeded but the extension is not there".into(),
        )),
    }
}

/// `name` as a quoted SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
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

#[cfg(test)]
#[cfg(feature = "test-support")]
mod tests {
    use super::*;
    use crate::ddl::POSTGRES_MIGRATIONS;
    use crate::postgres::ScratchSchema;

    const INSERT_RUN: &str = "INSERT INTO sync_runs (id, mapping, dry_run, state, stage, progress, summaries, started)
                              VALUES ($1, 'm', FALSE, $2, '', '{}', '{}', '2026-01-01T00:00:00.000000Z')";

    /// A schema at the version before the sync tables, with a resource in it.
    fn at_previous_version(url: &str) -> Client {
        let mut client = Config::from_str(url)
            .and_then(|c| c.connect(NoTls))
            .expect("connect");
        client
            .batch_execute(
                "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied TEXT NOT NULL)",
            )
            .expect("versions");
        let previous = POSTGRES_MIGRATIONS.len() - 1;
        for (i, step) in POSTGRES_MIGRATIONS[..previous].iter().enumerate() {
            let step = resolved(&mut client, step).expect("resolve");
            client.batch_execute(&step).expect("step");
            client
                .execute(
                    "INSERT INTO schema_migrations (version, applied) VALUES ($1, 'test')",
                    &[&(i64::try_from(i).expect("small") + 1)],
                )
                .expect("version");
        }
        client
            .batch_execute(
                "INSERT INTO resources (id, rtype, doc, version, created, modified)
                 VALUES ('u1', 'User', '{}', 1, 'c', 'm')",
            )
            .expect("seed");
        client
    }

    #[test]
    fn the_sync_step_migrates_a_database_forward() {
        let Some(schema) = ScratchSchema::for_tests("migrate_sync") else {
            return;
        };
        let mut client = at_previous_version(&schema.url);
        assert_eq!(
            migrate(&mut client).expect("migrate"),
            vec![POSTGRES_MIGRATIONS.len()]
        );
        assert_eq!(migrate(&mut client).expect("again"), Vec::<usize>::new());
        let kept: String = client
            .query_one("SELECT id FROM resources", &[])
            .and_then(|r| r.try_get(0))
            .expect("resource kept");
        assert_eq!(kept, "u1");

        // The database itself refuses a second open run of a mapping, and a
        // second link of one id per side.
        client
            .execute(INSERT_RUN, &[&"r1", &"SUCCESS"])
            .expect("finished run");
        client
            .execute(INSERT_RUN, &[&"r2", &"ACTIVE"])
            .expect("open run");
        assert!(client.execute(INSERT_RUN, &[&"r3", &"WAITING"]).is_err());
        let link = "INSERT INTO sync_links (link_set, first_id, second_id) VALUES ('s', $1, $2)";
        client.execute(link, &[&"a", &"x"]).expect("link");
        assert!(client.execute(link, &[&"b", &"x"]).is_err());
        assert!(client.execute(link, &[&"a", &"y"]).is_err());
    }
}
