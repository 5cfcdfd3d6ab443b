//! The one way in: a database URL (`sqlite:PATH`, `postgres://…`) to the stores
//! on that database, and the migrations of it. Callers never name a backend.

use crate::clients::ClientStore;
use crate::{Store, StoreError, StoreResult};
use scim_proto::schema::SharedRegistry;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the resources (and the authorization server's data) are stored, as a
/// database URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `sqlite:PATH` (also `sqlite://PATH`): one file, created when missing.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`, handed to the driver as it is.
    Postgres(String),
}

impl Location {
    pub fn parse(url: &str) -> StoreResult<Location> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Location::Postgres(url.to_string()));
        }
        match url.strip_prefix("sqlite:") {
            Some(p) => Ok(Location::Sqlite(PathBuf::from(p.trim_start_matches("//")))),
            None => Err(StoreError::Backend(format!(
                "unsupported database URL '{url}' (expected sqlite:PATH or postgres://…)"
            ))),
        }
    }
}

/// The database URL of the default deployment: the SQLite file `DATA_DIR/scimd.db`.
pub fn default_url(data_dir: &Path) -> String {
    format!("sqlite:{}", data_dir.join("scimd.db").display())
}

/// How to open a database; what does not apply to a backend is ignored by it.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Most connections this process opens to PostgreSQL (its pool size). SQLite's
    /// connections are fixed by its design (one writer, a few readers).
    pub max_connections: u32,
    /// How long one search may run before it answers 400 tooMany.
    pub search_budget: std::time::Duration,
    /// Longest a PostgreSQL write transaction may take (see
    /// `PostgresOptions::max_write_duration`).
    pub max_write_duration: std::time::Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            max_connections: 16,
            search_budget: crate::DEFAULT_SEARCH_BUDGET,
            max_write_duration: crate::DEFAULT_MAX_WRITE_DURATION,
        }
    }
}

/// Which backend was opened, as the start-up log line shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite { path: PathBuf },
    Postgres { max_connections: u32 },
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Sqlite { path } => write!(f, "SQLite ({})", path.display()),
            Backend::Postgres { max_connections } => {
                write!(f, "PostgreSQL (pool of {max_connections} connections)")
            }
        }
    }
}

/// The stores of one database: resources and the authorization server's data side
/// by side.
pub struct Stores {
    pub resources: Arc<dyn Store>,
    pub clients: Arc<dyn ClientStore>,
    pub backend: Backend,
}

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub backend: Backend,
    /// Migration steps this build knows.
    pub steps: usize,
    /// The steps applied by this call (1-based).
    pub applied: Vec<usize>,
}

impl fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.backend {
            Backend::Sqlite { path } => write!(
                f,
                "SQLite schema at {} is current ({} migration steps)",
                path.display(),
                self.steps
            ),
            Backend::Postgres { .. } => write!(
                f,
                "PostgreSQL schema is current ({} migration steps; applied now: {:?})",
                self.steps, self.applied
            ),
        }
    }
}

/// `context: message` as a backend error (the message of a backend error without
/// its generic prefix, so the user reads one sentence).
fn context(what: String) -> impl FnOnce(StoreError) -> StoreError {
    move |e| match e {
        StoreError::Backend(m) => StoreError::Backend(format!("{what}: {m}")),
        other => StoreError::Backend(format!("{what}: {other}")),
    }
}

/// Open the database at `url` (creating a missing SQLite file and its directory)
/// and apply its migrations.
pub fn open(
    url: &str,
    registry: Arc<SharedRegistry>,
    options: &OpenOptions,
) -> StoreResult<Stores> {
    match Location::parse(url)? {
        Location::Sqlite(path) => sqlite::open(&path, registry, options),
        Location::Postgres(url) => postgres::open(&url, registry, options),
    }
}

/// Only the authorization server's store on the database at `url` (the `scimd
/// clients` and `scimd keys` commands): on SQLite one connection instead of the
/// resource store's threads.
pub fn open_clients(url: &str, options: &OpenOptions) -> StoreResult<Arc<dyn ClientStore>> {
    match Location::parse(url)? {
        Location::Sqlite(path) => sqlite::open_clients(&path),
        Location::Postgres(url) => {
            let registry = Arc::new(SharedRegistry::new(
                scim_proto::schema::SchemaRegistry::standard(),
            ));
            Ok(postgres::open(&url, registry, options)?.clients)
        }
    }
}

/// Apply the migrations of the database at `url` and say what was done.
pub fn migrate(url: &str) -> StoreResult<MigrationReport> {
    match Location::parse(url)? {
        Location::Sqlite(path) => sqlite::migrate(&path),
        Location::Postgres(url) => postgres::migrate(&url),
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use crate::sqlite::{SqliteClientStore, SqliteStore};

    fn create_dir(path: &Path) -> StoreResult<()> {
        match path.parent() {
            Some(dir) => std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!(
                    "cannot create data directory {}: {e}",
                    dir.display()
                ))
            }),
            None => Ok(()),
        }
    }

    fn cannot_open(path: &Path) -> impl FnOnce(StoreError) -> StoreError {
        context(format!("cannot open {}", path.display()))
    }

    pub(super) fn open(
        path: &Path,
        registry: Arc<SharedRegistry>,
        options: &OpenOptions,
    ) -> StoreResult<Stores> {
        create_dir(path)?;
        let resources = SqliteStore::open(path, registry)
            .map_err(cannot_open(path))?
            .with_search_budget(options.search_budget);
        let clients = SqliteClientStore::open(path).map_err(cannot_open(path))?;
        Ok(Stores {
            resources: Arc::new(resources),
            clients: Arc::new(clients),
            backend: Backend::Sqlite {
                path: path.to_path_buf(),
            },
        })
    }

    pub(super) fn open_clients(path: &Path) -> StoreResult<Arc<dyn ClientStore>> {
        create_dir(path)?;
        Ok(Arc::new(
            SqliteClientStore::open(path).map_err(cannot_open(path))?,
        ))
    }

    pub(super) fn migrate(path: &Path) -> StoreResult<MigrationReport> {
        create_dir(path)?;
        let applied = crate::sqlite::migrate_file(path).map_err(cannot_open(path))?;
        Ok(MigrationReport {
            backend: Backend::Sqlite {
                path: path.to_path_buf(),
            },
            steps: crate::ddl::SQLITE_MIGRATIONS.len(),
            applied,
        })
    }
}

#[cfg(not(feature = "sqlite"))]
mod sqlite {
    use super::*;

    fn missing() -> StoreError {
        StoreError::Backend(
            "this build has no SQLite backend (scim-store's cargo feature `sqlite`)".into(),
        )
    }

    pub(super) fn open(_: &Path, _: Arc<SharedRegistry>, _: &OpenOptions) -> StoreResult<Stores> {
        Err(missing())
    }

    pub(super) fn open_clients(_: &Path) -> StoreResult<Arc<dyn ClientStore>> {
        Err(missing())
    }

    pub(super) fn migrate(_: &Path) -> StoreResult<MigrationReport> {
        Err(missing())
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crate::postgres::{PostgresOptions, PostgresStore};

    pub(super) fn open(
        url: &str,
        registry: Arc<SharedRegistry>,
        options: &OpenOptions,
    ) -> StoreResult<Stores> {
        let options = PostgresOptions {
            max_connections: options.max_connections.max(1),
            search_budget: options.search_budget,
            max_write_duration: options.max_write_duration,
            ..PostgresOptions::default()
        };
        let store = Arc::new(
            PostgresStore::open(url, registry, &options)
                .map_err(context("cannot open the PostgreSQL database".into()))?,
        );
        Ok(Stores {
            resources: store.clone(),
            clients: store,
            backend: Backend::Postgres {
                max_connections: options.max_connections,
            },
        })
    }

    pub(super) fn migrate(url: &str) -> StoreResult<MigrationReport> {
        let applied =
            crate::postgres::migrate_url(url).map_err(context("migrating PostgreSQL".into()))?;
        Ok(MigrationReport {
            backend: Backend::Postgres { max_connections: 1 },
            steps: crate::ddl::POSTGRES_MIGRATIONS.len(),
            applied,
        })
    }
}

#[cfg(not(feature = "postgres"))]
mod postgres {
    use super::*;

    fn missing() -> StoreError {
        StoreError::Backend(
            "this build has no PostgreSQL backend (scim-store's cargo feature `postgres`)".into(),
        )
    }

    pub(super) fn open(_: &str, _: Arc<SharedRegistry>, _: &OpenOptions) -> StoreResult<Stores> {
        Err(missing())
    }

    pub(super) fn migrate(_: &str) -> StoreResult<MigrationReport> {
        Err(missing())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_backend() {
        for url in [
            "postgres://u@h:5432/db",
            "postgresql://u@h/db?sslmode=disable",
        ] {
            assert_eq!(Location::parse(url), Ok(Location::Postgres(url.into())));
        }
        assert_eq!(
            Location::parse("sqlite:///tmp/x.db"),
            Ok(Location::Sqlite(PathBuf::from("/tmp/x.db")))
        );
        assert_eq!(
            Location::parse("sqlite:data/x.db"),
            Ok(Location::Sqlite(PathBuf::from("data/x.db")))
        );
        assert_eq!(
            Location::parse(&default_url(Path::new("scimd-data"))),
            Ok(Location::Sqlite(PathBuf::from("scimd-data/scimd.db")))
        );
        assert!(Location::parse("mysql://x").is_err());
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn a_sqlite_url_migrates_and_opens_both_stores() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("new").join("scimd.db");
        let url = format!("sqlite:{}", path.display());
        let all: Vec<usize> = (1..=crate::ddl::SQLITE_MIGRATIONS.len()).collect();
        assert_eq!(migrate(&url).expect("migrate").applied, all);
        let again = migrate(&url).expect("migrate again");
        assert_eq!(again.applied, Vec::<usize>::new());
        assert!(
            again.to_string().starts_with("SQLite schema at "),
            "{again}"
        );
        let registry = Arc::new(SharedRegistry::new(
            scim_proto::schema::SchemaRegistry::standard(),
        ));
        let stores = open(&url, registry, &OpenOptions::default()).expect("open");
        assert_eq!(stores.backend, Backend::Sqlite { path: path.clone() });
        assert!(stores.resources.cheap_point_reads());
        assert_eq!(stores.clients.list_clients().expect("clients"), vec![]);
        let clients = open_clients(&url, &OpenOptions::default()).expect("clients only");
        assert_eq!(clients.signing_keys().expect("keys"), vec![]);
    }

    #[test]
    fn a_bad_url_says_what_is_expected() {
        let registry = Arc::new(SharedRegistry::new(
            scim_proto::schema::SchemaRegistry::standard(),
        ));
        let err = open("mysql://x", registry, &OpenOptions::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("expected sqlite:PATH or postgres://"), "{err}");
    }

    #[test]
    fn migrate_reports_like_scimd_says() {
        let report = MigrationReport {
            backend: Backend::Postgres { max_connections: 1 },
            steps: 4,
            applied: vec![3, 4],
        };
        assert_eq!(
            report.to_string(),
            "PostgreSQL schema is current (4 migration steps; applied now: [3, 4])"
        );
    }
}
