//! scimd: the one binary. Argument parsing and wiring only.

mod admin;
mod admins;
mod auth_config;
mod backup;
mod clients;
mod config;
mod listen;
mod logging;
mod scripts;
mod sync;
mod transfer;

use clap::{Parser, Subcommand};
use config::{ServeArgs, Settings};
use scim_auth::Mode;
use scim_proto::clock::SystemClock;
use scim_proto::schema::{SchemaRegistry, SharedRegistry};
use scim_server::Service;
use scim_store::clients::ClientStore;
use scim_store::{StoreError, Stores};
use std::process::ExitCode;
use std::sync::Arc;

/// mimalloc instead of glibc malloc: per-request allocations were ~25 % of a GET's
/// CPU with glibc, and glibc's per-thread arenas kept memory after peaks.
/// Most threads running store calls at once (see `serve`).
const BLOCKING_THREADS: usize = 16;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "scimd",
    version,
    about = "A fast, secure SCIM 2.0 identity provisioning server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the SCIM service.
    Serve(Box<ServeArgs>),
    /// Manage OAuth clients of the built-in authorization server.
    Clients(clients::ClientsArgs),
    /// Manage the authorization server's signing keys.
    Keys(clients::KeysArgs),
    /// Manage custom user attributes (the user extension).
    Attributes(admin::AttributesArgs),
    /// Manage interception scripts (running servers pick changes up within 3 s).
    Scripts(scripts::ScriptsArgs),
    /// Enrol FIDO devices from JSON (SCIM clients cannot create devices).
    Devices(admin::DevicesArgs),
    /// Sync with third-party SCIM providers (connectors in a sync directory).
    Sync(sync::SyncArgs),
    /// Apply the database schema migrations and exit.
    Migrate(transfer::MigrateArgs),
    /// Write every resource and the authorization server's state as JSON lines.
    Export(transfer::ExportArgs),
    /// Load an export into this database (batched transactions; re-runnable).
    Import(transfer::ImportArgs),
    /// Who wrote what: the audit trail of the change log.
    Audit(admin::AuditArgs),
    /// Copy a live SQLite database consistently (online backup API).
    Backup(backup::BackupArgs),
    /// Put a backup in place of the SQLite database (no server may be running).
    Restore(backup::RestoreArgs),
    /// Console administrators: `admins add` creates or promotes one.
    #[command(subcommand)]
    Admins(admins::AdminsCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => Settings::resolve(*args).and_then(|s| {
            logging::init(s.log_format, s.scripts.log.as_deref())?;
            serve(s)
        }),
        other => logging::init(logging::LogFormat::Text, None).and_then(|()| run(other)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scimd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Every command but `serve`.
fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Serve(_) => Err("serve is run by main".into()),
        Command::Clients(args) => clients::run_clients(args),
        Command::Keys(args) => clients::run_keys(args),
        Command::Attributes(args) => admin::run_attributes(args),
        Command::Scripts(args) => scripts::run_scripts(args),
        Command::Devices(args) => admin::run_devices(args),
        Command::Sync(args) => sync::run_sync(args),
        Command::Migrate(args) => transfer::migrate(args),
        Command::Export(args) => transfer::export(args),
        Command::Import(args) => transfer::import(args),
        Command::Audit(args) => admin::run_audit(args),
        Command::Backup(args) => backup::run_backup(args),
        Command::Restore(args) => backup::run_restore(args),
        Command::Admins(cmd) => admins::run(cmd),
    }
}

fn serve(settings: Settings) -> Result<(), String> {
    match settings.protection {
        Mode::Bypass => {
            tracing::warn!("PROTECTION MODE IS BYPASS: every SCIM endpoint is open to anyone who can reach {}. Use only behind your own access control.", settings.listen);
        }
        other => {
            tracing::info!(protection = %other, "API protection on");
        }
    }
    // Held until the process ends: `scimd restore` refuses while it is.
    let _serving = backup::serve_lock(&settings)?;
    let (service, client_store) = open_service(&settings)?;
    // The stored scripts run before the first request is served.
    let scripts_seen = service
        .reload_scripts_if_changed(None)
        .map_err(|e| format!("cannot load interception scripts: {e}"))?;
    let connectors = open_sync(&settings, &service)?;
    let auth = open_auth(&settings, client_store)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Store calls run on blocking threads; a few dozen keep the SQLite group
        // commit fed and PostgreSQL's pool busy. More only add memory (each thread
        // keeps its own allocator cache) and contention for the same connections.
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    // Background tasks still hold the service when the server stops. Shut them down
    // first, so that the last reference to the stores goes away on this thread:
    // PostgreSQL's synchronous clients must not be dropped on an async worker (they
    // block on their own runtime, which panicked and aborted at shutdown).
    let held = (service.clone(), auth.clone());
    scim_server::metrics::install()?;
    let served = runtime.block_on(async move {
        let tls = match &settings.tls {
            Some((cert, key)) => Some(listen::tls_acceptor(cert, key)?),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(&settings.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot read the bound address: {e}"))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, "scimd listening; SCIM base {scheme}://{addr}/scim/v2");
        scim_server::feed::spawn_maintenance(service.clone(), Some(scripts_seen));
        auth.spawn_maintenance();
        let guard = scim_auth::Guard::new(auth.clone());
        let console = scim_console::Console::new(
            service.clone(),
            auth.clone(),
            console_config(&settings),
            connectors
                .as_ref()
                .map(|(dir, engine)| sync::console_sync(dir, engine)),
        );
        let mut app = scim_server::http::router_with_auth(service.clone(), Some(auth));
        app = app.merge(scim_console::routes(console));
        if let Some((dir, engine)) = connectors {
            if let Some(e) = &engine {
                // Resumes runs left by a stopped process, starts schedules.
                e.run_in_background();
            }
            app = app.merge(sync::routes(dir, engine, guard.clone()));
        }
        app = app.merge(scim_server::http::metrics_route(guard));
        let app = scim_server::edge::edge(app, service.clone(), settings.edge.clone());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        if let Some(maddr) = &settings.metrics_listen {
            let ml = tokio::net::TcpListener::bind(maddr)
                .await
                .map_err(|e| format!("cannot listen on {maddr} for metrics: {e}"))?;
            tracing::info!(addr = %maddr, "metrics at http://{maddr}/metrics");
            let mapp = scim_server::edge::edge(
                scim_server::http::open_metrics_route(),
                service.clone(),
                settings.edge.clone(),
            );
            let mut s = stopped.clone();
            tokio::spawn(listen::serve(
                ml,
                mapp,
                None,
                async move {
                    let _ = s.wait_for(|v| *v).await;
                },
                std::time::Duration::from_secs(1),
            ));
        }
        let drain = settings.drain;
        listen::serve(
            listener,
            app,
            tls,
            async move {
                shutdown_signal().await;
                let _ = stop.send(true);
            },
            drain,
        )
        .await;
        Ok::<(), String>(())
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    drop(held);
    served
}

/// The SCIM service on the configured database, with the custom attributes it
/// holds; also the authorization server's store on the same database.
/// The console's settings: admin group, session lifetimes, cookies `Secure`
/// under TLS, and what the dashboard names as the database.
fn console_config(settings: &Settings) -> scim_console::ConsoleConfig {
    let url = settings.database_url();
    let database = if url.starts_with("postgres") {
        "PostgreSQL".to_string()
    } else {
        format!("SQLite ({})", url.trim_start_matches("sqlite:"))
    };
    scim_console::ConsoleConfig {
        admin_group: settings.admin_group.clone(),
        lifetimes: scim_console::Lifetimes {
            idle: chrono::Duration::seconds(settings.console_idle as i64),
            absolute: chrono::Duration::seconds(settings.console_max as i64),
        },
        secure_cookies: settings.tls.is_some(),
        database,
    }
}

pub fn open_service(settings: &Settings) -> Result<(Arc<Service>, Arc<dyn ClientStore>), String> {
    let registry = Arc::new(SharedRegistry::new(SchemaRegistry::build(
        &settings.registry_options(),
    )));
    let stores = open_stores(settings, registry.clone())?;
    let clock: Arc<dyn scim_proto::clock::Clock> = Arc::new(SystemClock);
    let engine = Arc::new(scim_hooks::luau::Engine::new(
        settings.scripts.engine_config(),
        clock.clone(),
    ));
    let service = Arc::new(Service {
        registry,
        store: stores.resources,
        clock,
        config: settings.server_config(),
        updating: Default::default(),
        hooks: engine.clone(),
        scripts: engine,
    });
    service
        .reload_registry()
        .map_err(|e| format!("cannot read custom attributes: {e}"))?;
    Ok((service, stores.clients))
}

/// The stores of the configured database (SQLite by default, PostgreSQL for
/// `postgres://…`): resources and the authorization server's data side by side.
/// Migrations are applied on open.
pub fn open_stores(settings: &Settings, registry: Arc<SharedRegistry>) -> Result<Stores, String> {
    let stores = scim_store::open(&settings.database_url(), registry, &settings.open_options())
        .map_err(store_error)?;
    tracing::info!(backend = %stores.backend, "using store");
    Ok(stores)
}

/// A storage error as one sentence for the user (the store's own messages already
/// say what failed where).
pub fn store_error(e: StoreError) -> String {
    match e {
        StoreError::Backend(message) => message,
        other => other.to_string(),
    }
}

/// A sync directory and its engine (when it has mappings).
type SyncParts = (Arc<sync::SyncDir>, Option<scim_sync_engine::Engine>);

/// The sync directory of `--sync-dir` (its `sync.json` checked) and, when it
/// has mappings, the engine; none without it.
fn open_sync(settings: &Settings, service: &Arc<Service>) -> Result<Option<SyncParts>, String> {
    let Some(dir) = &settings.sync_dir else {
        return Ok(None);
    };
    let loaded = sync::load(dir, &service.registry())?;
    let mappings = loaded.config.as_ref().map_or(0, |c| c.mappings.len());
    tracing::info!(dir = %dir.display(), connectors = loaded.connectors.names().len(), mappings, "sync directory loaded");
    let engine = sync::engine(&loaded, service);
    Ok(Some((Arc::new(loaded), engine)))
}

/// The built-in authorization server on the same database as the resources.
fn open_auth(
    settings: &Settings,
    store: Arc<dyn ClientStore>,
) -> Result<Arc<scim_auth::Auth>, String> {
    let mode = settings.protection;
    let mut config = settings.auth.to_config(mode, &settings.listen)?;
    config.client_rate = settings.client_rate;
    config.token_rate_per_ip = settings.token_rate_per_ip;
    let open_registration = matches!(mode, scim_auth::Mode::Oauth | scim_auth::Mode::Uma);
    if config.dynamic_registration && open_registration {
        tracing::warn!("dynamic client registration is open: anyone who can reach /oauth/register can obtain SCIM scopes");
    }
    if settings.auth.issuer.is_none() {
        tracing::info!(issuer = %config.issuer, "no --issuer given; tokens name this issuer");
    }
    let clock = Arc::new(scim_proto::clock::SystemClock);
    let auth = scim_auth::Auth::new(config, store, clock)
        .map_err(|e| format!("cannot set up the authorization server: {e}"))?;
    Ok(Arc::new(auth))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
