//! The sync engine inside scimd: connectors loaded from `--sync-dir` (every
//! `*.json` but `sync.json` is one), `sync.json` checked against them, the
//! engine (crate `scim-sync-engine`) over this server's own objects, its REST
//! endpoints under `/sync/` and the `scimd sync` commands.

mod cli;
mod local;
mod routes;

pub(crate) use cli::{run_sync, SyncArgs};
pub(crate) use routes::routes;

use scim_proto::schema::SchemaRegistry;
use scim_server::service::Service;
use scim_sync::config::{Connector, SyncConfig};
use scim_sync_engine::{Engine, EngineParts};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The mappings file in the sync directory; every other `*.json` is a connector.
const SYNC_FILE: &str = "sync.json";

/// A sync directory: its connectors and, when it has a `sync.json`, its mappings.
#[derive(Debug, Clone)]
pub(crate) struct SyncDir {
    pub(crate) dir: PathBuf,
    pub(crate) connectors: Vec<Connector>,
    pub(crate) config: Option<SyncConfig>,
}

impl SyncDir {
    pub(crate) fn connector(&self, name: &str) -> Option<&Connector> {
        self.connectors.iter().find(|c| c.name == name)
    }
}

/// The connectors of `dir`, and its `sync.json` (when there is one) parsed and
/// checked against them: a bad file fails with its file, mapping and field.
pub(crate) fn load(dir: &Path, registry: &SchemaRegistry) -> Result<SyncDir, String> {
    let connectors = load_connectors(dir)?;
    let sync_path = dir.join(SYNC_FILE);
    let config = if sync_path.exists() {
        let text = read(&sync_path)?;
        let config =
            SyncConfig::parse(SYNC_FILE, &text, registry).map_err(|e| format!("sync: {e}"))?;
        let known: Vec<&str> = connectors.iter().map(|c| c.name.as_str()).collect();
        config
            .check_connectors(SYNC_FILE, &known)
            .map_err(|e| format!("sync: {e}"))?;
        Some(config)
    } else {
        None
    };
    Ok(SyncDir {
        dir: dir.to_path_buf(),
        connectors,
        config,
    })
}

/// Every `*.json` file of `dir` but `sync.json`, parsed as a connector.
pub(crate) fn load_connectors(dir: &Path) -> Result<Vec<Connector>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the sync directory {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_connector_file(p))
        .collect();
    files.sort();
    let mut list: Vec<Connector> = Vec::with_capacity(files.len());
    for path in files {
        let name = file_name(&path);
        let connector = Connector::parse(&name, &read(&path)?).map_err(|e| format!("sync: {e}"))?;
        if list.iter().any(|c| c.name == connector.name) {
            return Err(format!(
                "sync: {name}: 'name': connector '{}' is defined twice",
                connector.name
            ));
        }
        list.push(connector);
    }
    Ok(list)
}

fn is_connector_file(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == "json") && file_name(path) != SYNC_FILE
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The engine of a sync directory with mappings, over this service's objects
/// and store; None without a `sync.json`.
pub(crate) fn engine(sync: &SyncDir, service: &Arc<Service>) -> Option<Engine> {
    let config = sync.config.clone()?;
    let registry_of = service.clone();
    Some(Engine::new(EngineParts {
        config,
        connectors: sync.connectors.clone(),
        dir: sync.dir.clone(),
        store: service.store.clone(),
        local: Arc::new(local::LocalSet {
            service: service.clone(),
        }),
        registry: Arc::new(move || registry_of.registry()),
    }))
}
