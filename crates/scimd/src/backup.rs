//! `scimd backup` and `scimd restore`: a consistent copy of a live SQLite
//! database, and putting one back while no server uses the database. PostgreSQL
//! has its own tools (docs/operations.md).

use crate::config::{DatabaseArgs, Settings};
use clap::Args;
use scim_store::sqlite::backup::{self, Copied, ServeLock};
use scim_store::Location;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub(crate) struct BackupArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// The backup file to create (never overwritten).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
pub(crate) struct RestoreArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// The backup file to put in place of the database.
    #[arg(long = "in")]
    input: PathBuf,
}

/// The SQLite file of these settings; PostgreSQL is refused with what to use.
fn sqlite_file(settings: &Settings, verb: &str) -> Result<PathBuf, String> {
    match Location::parse(&settings.database_url()).map_err(|e| e.to_string())? {
        Location::Sqlite(path) => Ok(path),
        Location::Postgres(_) => Err(format!(
            "scimd {verb} copies SQLite databases; for PostgreSQL use pg_dump / pg_restore (docs/operations.md)"
        )),
    }
}

pub(crate) fn run_backup(args: BackupArgs) -> Result<(), String> {
    let settings = args.db.settings()?;
    let db = sqlite_file(&settings, "backup")?;
    if !db.exists() {
        return Err(format!("no database at {}", db.display()));
    }
    let started = std::time::Instant::now();
    let c = backup::backup(&db, &args.out).map_err(crate::store_error)?;
    report("backed up", &db, &args.out, &c, started);
    Ok(())
}

pub(crate) fn run_restore(args: RestoreArgs) -> Result<(), String> {
    let settings = args.db.settings()?;
    let db = sqlite_file(&settings, "restore")?;
    let started = std::time::Instant::now();
    let c = backup::restore(&args.input, &db).map_err(crate::store_error)?;
    report("restored", &args.input, &db, &c, started);
    Ok(())
}

fn report(
    what: &str,
    from: &std::path::Path,
    to: &std::path::Path,
    c: &Copied,
    t: std::time::Instant,
) {
    println!(
        "{what} {} to {}: {} pages, {} bytes in {:.1} s",
        from.display(),
        to.display(),
        c.pages,
        c.bytes,
        t.elapsed().as_secs_f64()
    );
}

/// While `scimd serve` runs on SQLite it holds the database's serve lock, so a
/// restore cannot replace the file under it. None for PostgreSQL.
pub(crate) fn serve_lock(settings: &Settings) -> Result<Option<ServeLock>, String> {
    match Location::parse(&settings.database_url()).map_err(|e| e.to_string())? {
        Location::Sqlite(path) => ServeLock::serving(&path)
            .map(Some)
            .map_err(crate::store_error),
        Location::Postgres(_) => Ok(None),
    }
}
