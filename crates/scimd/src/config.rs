//! Settings for `scimd serve`: command-line flags, then SCIMD_* environment
//! variables, then the config file (TOML), then defaults.

use crate::logging::LogFormat;
use clap::Args;
use scim_auth::limits::Rate;
use scim_auth::Mode;
use scim_proto::schema::custom::GLUU_USER_EXTENSION;
use scim_proto::schema::RegistryOptions;
use scim_server::ServerConfig;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SCIMD_LISTEN")]
    listen: Option<String>,
    /// Directory for the embedded SQLite database.
    #[arg(long, env = "SCIMD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite:PATH or postgres://USER@HOST:PORT/DB.
    #[arg(long, env = "SCIMD_DATABASE")]
    database: Option<String>,
    /// API protection: oauth, uma, test or bypass.
    #[arg(long, env = "SCIMD_PROTECTION")]
    protection: Option<Mode>,
    /// TOML config file with the same settings (and limits).
    #[arg(long, env = "SCIMD_CONFIG")]
    config: Option<PathBuf>,
    /// Largest request body in bytes.
    #[arg(long, env = "SCIMD_MAX_PAYLOAD_BYTES")]
    max_payload_bytes: Option<usize>,
    /// Largest page size (count) of a search.
    #[arg(long, env = "SCIMD_MAX_RESULTS")]
    max_results: Option<u64>,
    /// Most operations in one Bulk request.
    #[arg(long, env = "SCIMD_BULK_MAX_OPERATIONS")]
    bulk_max_operations: Option<usize>,
    /// Largest Bulk request body in bytes.
    #[arg(long, env = "SCIMD_BULK_MAX_PAYLOAD_BYTES")]
    bulk_max_payload_bytes: Option<usize>,
    /// Do not publish the FidoDevice / Fido2Device resource types.
    #[arg(long, env = "SCIMD_NO_DEVICES")]
    no_devices: bool,
    /// URN of the user extension holding custom attributes.
    #[arg(long, env = "SCIMD_CUSTOM_SCHEMA_URN")]
    custom_schema_urn: Option<String>,
    /// Days the change feed keeps its entries (and deletion tombstones).
    #[arg(long, env = "SCIMD_CHANGE_RETENTION_DAYS")]
    change_retention_days: Option<u32>,
    /// Most PostgreSQL connections this process opens (pool size).
    #[arg(long, env = "SCIMD_DB_MAX_CONNECTIONS")]
    db_max_connections: Option<u32>,
    /// How long one search may run, ms, before it answers 400 tooMany (a filter
    /// no index can answer quickly must not hold a reader for long).
    #[arg(long, env = "SCIMD_SEARCH_BUDGET_MS")]
    search_budget_ms: Option<u64>,
    /// Also write the interception scripts' log (target scim_script) to this file.
    #[arg(long, env = "SCIMD_SCRIPT_LOG")]
    script_log: Option<PathBuf>,
    /// Heap limit of each script state, MiB.
    #[arg(long, env = "SCIMD_SCRIPT_MEMORY_MIB")]
    script_memory_mib: Option<usize>,
    /// CPU time a script call may take, ms.
    #[arg(long, env = "SCIMD_SCRIPT_CPU_MS")]
    script_cpu_ms: Option<u64>,
    /// Hosts `scim.notify` may POST to (comma-separated; none by default).
    #[arg(long, env = "SCIMD_SCRIPT_NOTIFY_ALLOW", value_delimiter = ',')]
    script_notify_allow: Vec<String>,
    /// Directory of sync connectors (one JSON file each) and `sync.json`.
    #[arg(long, env = "SCIMD_SYNC_DIR")]
    sync_dir: Option<PathBuf>,
    /// Log lines as text or json.
    #[arg(long, env = "SCIMD_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// TLS certificate chain (PEM); with --tls-key, serve HTTPS (HTTP/2 and 1.1).
    #[arg(long, env = "SCIMD_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, env = "SCIMD_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Also serve /metrics (Prometheus, no token) and the health probes here.
    #[arg(long, env = "SCIMD_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Seconds requests in flight get to finish after SIGTERM.
    #[arg(long, env = "SCIMD_DRAIN_SECONDS")]
    drain_seconds: Option<u64>,
    /// Longest request URL (path and query), bytes (414 above).
    #[arg(long, env = "SCIMD_MAX_URL_BYTES")]
    max_url_bytes: Option<usize>,
    /// Largest request headers (names and values together), bytes (431 above).
    #[arg(long, env = "SCIMD_MAX_HEADER_BYTES")]
    max_header_bytes: Option<usize>,
    /// Requests per second from one source address (burst twice that; 0: no limit).
    #[arg(long, env = "SCIMD_RATE_LIMIT_IP")]
    rate_limit_ip: Option<u32>,
    /// API requests per second of one client id (burst twice that; 0: no limit).
    #[arg(long, env = "SCIMD_RATE_LIMIT_CLIENT")]
    rate_limit_client: Option<u32>,
    /// Token requests per second from one source address (0: no limit).
    #[arg(long, env = "SCIMD_RATE_LIMIT_TOKEN_IP")]
    rate_limit_token_ip: Option<u32>,
    /// Proxies (ADDR or ADDR/PREFIX, comma-separated) whose X-Forwarded-For names
    /// the client address (rate limits, the failure throttle, the audit trail).
    #[arg(long, env = "SCIMD_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<String>,
    /// Longest a PostgreSQL write transaction may take, seconds (it rolls back
    /// past it); a foreign open transaction delays the change feed by at most
    /// this plus 5 s.
    #[arg(long, env = "SCIMD_MAX_WRITE_SECONDS")]
    max_write_seconds: Option<u64>,
    /// Members of this group (displayName) may log in to the console at /ui.
    #[arg(long, env = "SCIMD_ADMIN_GROUP")]
    admin_group: Option<String>,
    /// A console session ends after this many seconds without a request.
    #[arg(long, env = "SCIMD_CONSOLE_IDLE_SECONDS")]
    console_idle_seconds: Option<u64>,
    /// A console session ends this many seconds after its login, whatever it does.
    #[arg(long, env = "SCIMD_CONSOLE_MAX_SECONDS")]
    console_max_seconds: Option<u64>,
    #[command(flatten)]
    auth: crate::auth_config::AuthArgs,
}

impl ServeArgs {
    /// Only the database location, for commands that open the database directly.
    pub fn database_only(
        data_dir: Option<PathBuf>,
        database: Option<String>,
        config: Option<PathBuf>,
    ) -> Self {
        ServeArgs {
            data_dir,
            database,
            config,
            ..ServeArgs::default()
        }
    }
}

/// The config file; every key optional.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database: Option<String>,
    protection: Option<String>,
    max_payload_bytes: Option<usize>,
    max_results: Option<u64>,
    bulk_max_operations: Option<usize>,
    bulk_max_payload_bytes: Option<usize>,
    change_retention_days: Option<u32>,
    db_max_connections: Option<u32>,
    search_budget_ms: Option<u64>,
    no_devices: Option<bool>,
    custom_schema_urn: Option<String>,
    script_log: Option<PathBuf>,
    script_memory_mib: Option<usize>,
    script_cpu_ms: Option<u64>,
    script_notify_allow: Option<Vec<String>>,
    sync_dir: Option<PathBuf>,
    log_format: Option<LogFormat>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    metrics_listen: Option<String>,
    drain_seconds: Option<u64>,
    max_url_bytes: Option<usize>,
    max_header_bytes: Option<usize>,
    rate_limit_ip: Option<u32>,
    rate_limit_client: Option<u32>,
    rate_limit_token_ip: Option<u32>,
    max_write_seconds: Option<u64>,
    trusted_proxies: Option<Vec<String>>,
    admin_group: Option<String>,
    console_idle_seconds: Option<u64>,
    console_max_seconds: Option<u64>,
    /// The `[auth]` table: protection settings.
    auth: Option<crate::auth_config::AuthFile>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database: Option<String>,
    pub protection: Mode,
    pub max_payload_bytes: usize,
    pub max_results: u64,
    pub bulk_max_operations: usize,
    pub bulk_max_payload_bytes: usize,
    pub change_retention_days: u32,
    pub db_max_connections: u32,
    pub search_budget: std::time::Duration,
    pub devices: bool,
    pub custom_schema_urn: String,
    pub scripts: ScriptSettings,
    /// Where the sync connectors and `sync.json` are, when syncing is on.
    pub sync_dir: Option<PathBuf>,
    pub log_format: LogFormat,
    /// Certificate and key files, when serving HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub metrics_listen: Option<String>,
    pub drain: std::time::Duration,
    pub edge: scim_server::edge::EdgeLimits,
    /// Requests per second of one client id, and token requests per second of one
    /// address (None: no limit).
    pub client_rate: Option<Rate>,
    pub token_rate_per_ip: Option<Rate>,
    pub max_write_duration: std::time::Duration,
    /// The console's admin group and session lifetimes (seconds: idle, absolute).
    pub admin_group: String,
    pub console_idle: u64,
    pub console_max: u64,
    pub auth: crate::auth_config::AuthSettings,
}

/// How interception scripts run.
#[derive(Debug, Clone)]
pub struct ScriptSettings {
    pub log: Option<PathBuf>,
    pub memory_mib: usize,
    pub cpu_ms: u64,
    pub notify_allow: Vec<String>,
}

impl ScriptSettings {
    /// The script engine's limits; notifications wait for the commit of the
    /// request that queued them (the service commits or discards them).
    pub fn engine_config(&self) -> scim_hooks::luau::EngineConfig {
        scim_hooks::luau::EngineConfig {
            memory_limit: self.memory_mib.saturating_mul(1024 * 1024),
            cpu_limit: std::time::Duration::from_millis(self.cpu_ms),
            notify_allow: self.notify_allow.clone(),
            defer_notifications: true,
            ..scim_hooks::luau::EngineConfig::default()
        }
    }
}

impl Settings {
    pub fn resolve(args: ServeArgs) -> Result<Settings, String> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let defaults = ServerConfig::default();
        let protection = match (args.protection, file.protection) {
            (Some(p), _) => p,
            (None, Some(p)) => p.parse()?,
            (None, None) => Mode::default(),
        };
        Ok(Settings {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| "127.0.0.1:8080".into()),
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("scimd-data")),
            database: args.database.or(file.database),
            protection,
            max_payload_bytes: args
                .max_payload_bytes
                .or(file.max_payload_bytes)
                .unwrap_or(defaults.max_payload_bytes),
            max_results: args
                .max_results
                .or(file.max_results)
                .unwrap_or(defaults.max_results),
            bulk_max_operations: args
                .bulk_max_operations
                .or(file.bulk_max_operations)
                .unwrap_or(defaults.bulk_max_operations),
            bulk_max_payload_bytes: args
                .bulk_max_payload_bytes
                .or(file.bulk_max_payload_bytes)
                .unwrap_or(defaults.bulk_max_payload_bytes),
            change_retention_days: args
                .change_retention_days
                .or(file.change_retention_days)
                .unwrap_or(7),
            db_max_connections: args
                .db_max_connections
                .or(file.db_max_connections)
                .unwrap_or(16),
            search_budget: args
                .search_budget_ms
                .or(file.search_budget_ms)
                .map_or(scim_store::DEFAULT_SEARCH_BUDGET, |ms| {
                    std::time::Duration::from_millis(ms.max(1))
                }),
            devices: !(args.no_devices || file.no_devices.unwrap_or(false)),
            custom_schema_urn: args
                .custom_schema_urn
                .or(file.custom_schema_urn)
                .unwrap_or_else(|| GLUU_USER_EXTENSION.to_string()),
            scripts: ScriptSettings {
                log: args.script_log.or(file.script_log),
                memory_mib: args
                    .script_memory_mib
                    .or(file.script_memory_mib)
                    .unwrap_or(16),
                cpu_ms: args.script_cpu_ms.or(file.script_cpu_ms).unwrap_or(50),
                notify_allow: if args.script_notify_allow.is_empty() {
                    file.script_notify_allow.unwrap_or_default()
                } else {
                    args.script_notify_allow
                },
            },
            sync_dir: args.sync_dir.or(file.sync_dir),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            tls: tls_files(
                args.tls_cert.or(file.tls_cert),
                args.tls_key.or(file.tls_key),
            )?,
            metrics_listen: args.metrics_listen.or(file.metrics_listen),
            drain: std::time::Duration::from_secs(
                args.drain_seconds.or(file.drain_seconds).unwrap_or(30),
            ),
            edge: {
                let d = scim_server::edge::EdgeLimits::default();
                scim_server::edge::EdgeLimits {
                    max_url_bytes: args
                        .max_url_bytes
                        .or(file.max_url_bytes)
                        .unwrap_or(d.max_url_bytes),
                    max_header_bytes: args
                        .max_header_bytes
                        .or(file.max_header_bytes)
                        .unwrap_or(d.max_header_bytes),
                    per_ip: rate(args.rate_limit_ip.or(file.rate_limit_ip), 100_000),
                    trusted_proxies: networks(if args.trusted_proxies.is_empty() {
                        file.trusted_proxies.unwrap_or_default()
                    } else {
                        args.trusted_proxies
                    })?,
                }
            },
            client_rate: rate(args.rate_limit_client.or(file.rate_limit_client), 100_000),
            token_rate_per_ip: rate(args.rate_limit_token_ip.or(file.rate_limit_token_ip), 50),
            max_write_duration: args
                .max_write_seconds
                .or(file.max_write_seconds)
                .map_or(scim_store::DEFAULT_MAX_WRITE_DURATION, |s| {
                    std::time::Duration::from_secs(s.max(1))
                }),
            admin_group: args
                .admin_group
                .or(file.admin_group)
                .unwrap_or_else(|| "scimd-admins".into()),
            console_idle: args
                .console_idle_seconds
                .or(file.console_idle_seconds)
                .unwrap_or(1800)
                .max(1),
            console_max: args
                .console_max_seconds
                .or(file.console_max_seconds)
                .unwrap_or(43_200)
                .max(1),
            auth: crate::auth_config::AuthSettings::resolve(
                args.auth,
                file.auth.unwrap_or_default(),
            ),
        })
    }

    /// What the schema registry publishes (custom attributes are added from the
    /// database at start).
    pub fn registry_options(&self) -> RegistryOptions {
        RegistryOptions {
            devices: self.devices,
            custom: Some((self.custom_schema_urn.clone(), Vec::new())),
        }
    }

    pub fn server_config(&self) -> ServerConfig {
        ServerConfig {
            protection: self.protection,
            max_payload_bytes: self.max_payload_bytes,
            max_results: self.max_results,
            bulk_max_operations: self.bulk_max_operations,
            bulk_max_payload_bytes: self.bulk_max_payload_bytes,
            change_retention: chrono::TimeDelta::days(i64::from(self.change_retention_days)),
            devices: self.devices,
            custom_schema_urn: self.custom_schema_urn.clone(),
        }
    }

    /// The database URL: `--database` (`sqlite:PATH`, `postgres://…`), else the
    /// SQLite file `DATA_DIR/scimd.db`. `scim_store::open` parses it.
    pub fn database_url(&self) -> String {
        match &self.database {
            Some(url) => url.clone(),
            None => scim_store::default_url(&self.data_dir),
        }
    }

    pub fn open_options(&self) -> scim_store::OpenOptions {
        scim_store::OpenOptions {
            max_connections: self.db_max_connections.max(1),
            search_budget: self.search_budget,
            max_write_duration: self.max_write_duration,
        }
    }
}

/// The trusted proxy networks, each checked.
fn networks(list: Vec<String>) -> Result<Vec<scim_auth::limits::Network>, String> {
    list.iter()
        .filter(|n| !n.trim().is_empty())
        .map(|n| n.parse().map_err(|e| format!("--trusted-proxies: {e}")))
        .collect()
}

/// A rate of `n` per second (`default` when unset; 0: none).
fn rate(n: Option<u32>, default: u32) -> Option<Rate> {
    Rate::per_second(n.unwrap_or(default))
}

/// Both TLS files or neither.
fn tls_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<Option<(PathBuf, PathBuf)>, String> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some((c, k))),
        (None, None) => Ok(None),
        _ => Err("TLS needs both --tls-cert and --tls-key".into()),
    }
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

/// Where the database is: the same flags as `scimd serve`.
#[derive(Args, Debug)]
pub(crate) struct DatabaseArgs {
    /// Directory of the embedded SQLite database.
    #[arg(long, env = "SCIMD_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite:PATH or postgres://USER@HOST:PORT/DB.
    #[arg(long, env = "SCIMD_DATABASE", global = true)]
    database: Option<String>,
    /// TOML config file (for data-dir and database).
    #[arg(long, env = "SCIMD_CONFIG", global = true)]
    config: Option<PathBuf>,
}

impl DatabaseArgs {
    pub(crate) fn settings(self) -> Result<Settings, String> {
        Settings::resolve(ServeArgs::database_only(
            self.data_dir,
            self.database,
            self.config,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scim_store::Location;

    fn location(s: &Settings) -> Result<Location, scim_store::StoreError> {
        Location::parse(&s.database_url())
    }

    #[test]
    fn flags_override_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("scimd.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nprotection = \"bypass\"\nmax-results = 50\n",
        )
        .expect("write");
        let args = ServeArgs {
            listen: Some("127.0.0.1:1".into()),
            config: Some(path),
            ..ServeArgs::default()
        };
        let s = Settings::resolve(args).expect("settings");
        assert_eq!(s.listen, "127.0.0.1:1");
        assert_eq!(s.protection, Mode::Bypass);
        assert_eq!(s.max_results, 50);
        assert_eq!(s.data_dir, PathBuf::from("scimd-data"));
        assert_eq!(
            location(&s),
            Ok(Location::Sqlite(PathBuf::from("scimd-data/scimd.db")))
        );
    }

    #[test]
    fn unknown_file_keys_and_bad_urls_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "lisen = \"x\"\n").expect("write");
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        assert!(Settings::resolve(args).is_err());
        let s = Settings::resolve(ServeArgs {
            database: Some("mysql://x".into()),
            ..ServeArgs::default()
        })
        .expect("settings");
        assert!(location(&s).is_err());
    }

    #[test]
    fn postgres_urls_select_postgres() {
        for url in [
            "postgres://u@h:5432/db",
            "postgresql://u@h/db?sslmode=disable",
        ] {
            let s = Settings::resolve(ServeArgs {
                database: Some(url.into()),
                db_max_connections: Some(4),
                ..ServeArgs::default()
            })
            .expect("settings");
            assert_eq!(location(&s), Ok(Location::Postgres(url.into())));
            assert!(!matches!(location(&s), Ok(Location::Sqlite(_))));
            assert_eq!(s.open_options().max_connections, 4);
        }
        let s = Settings::resolve(ServeArgs {
            database: Some("sqlite:///tmp/x.db".into()),
            ..ServeArgs::default()
        })
        .expect("settings");
        assert_eq!(
            location(&s),
            Ok(Location::Sqlite(PathBuf::from("/tmp/x.db")))
        );
    }
}
