//! The sync engine inside scimd: connectors loaded from `--sync-dir` (every
//! `*.json` but `sync.json` is one), `sync.json` checked against them, the
//! engine (crate `scim-sync-engine`) over this server's own objects, its REST
//! endpoints under `/sync/` and the `scimd sync` commands.

mod cli;
mod local;
mod routes;

pub(crate) use cli::{run_sync, SyncArgs};
pub(crate) use routes::routes;

use scim_hooks::luau::Expression;
use scim_proto::schema::SchemaRegistry;
use scim_server::service::Service;
use scim_sync::config::SyncConfig;
use scim_sync::mapping::Expressions;
use scim_sync_engine::connectors::SYNC_FILE;
use scim_sync_engine::{ConnectorDir, Engine, EngineParts};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// A sync directory: its connectors and, when it has a `sync.json`, its mappings
/// with their transform expressions compiled.
#[derive(Debug)]
pub(crate) struct SyncDir {
    pub(crate) connectors: Arc<ConnectorDir>,
    pub(crate) config: Option<SyncConfig>,
    expressions: Arc<LuauExpressions>,
}

/// The mappings' Luau transform expressions, each compiled once.
#[derive(Debug, Default)]
struct LuauExpressions(HashMap<String, Expression>);

impl LuauExpressions {
    /// Compile every expression of `config`; the first that does not compile
    /// fails with its mapping.
    fn compile(config: &SyncConfig) -> Result<LuauExpressions, String> {
        let mut out = HashMap::new();
        for m in &config.mappings {
            for text in m.expressions() {
                if out.contains_key(text) {
                    continue;
                }
                let e = Expression::compile(text).map_err(|e| {
                    format!(
                        "sync: {SYNC_FILE}: mapping '{}': 'transform' '{text}' {e}",
                        m.name
                    )
                })?;
                out.insert(text.to_string(), e);
            }
        }
        Ok(LuauExpressions(out))
    }
}

impl Expressions for LuauExpressions {
    fn eval(&self, expr: &str, value: &Value, source: &Value) -> Result<Option<Value>, String> {
        match self.0.get(expr) {
            Some(e) => e.eval(value, source),
            None => Err(format!("'{expr}' was not compiled")),
        }
    }
}

impl SyncDir {
    pub(crate) fn dir(&self) -> &Path {
        self.connectors.dir()
    }

    /// The mappings that read or write through connector `name`.
    pub(crate) fn mappings_using(&self, name: &str) -> Vec<String> {
        self.config
            .iter()
            .flat_map(|c| &c.mappings)
            .filter(|m| m.source.connector() == Some(name) || m.target.connector() == Some(name))
            .map(|m| m.name.clone())
            .collect()
    }
}

/// The connectors of `dir`, and its `sync.json` (when there is one) parsed and
/// checked against them: a bad file fails with its file, mapping and field.
/// What the console shows of the sync directory and drives of the engine.
pub(crate) fn console_sync(dir: &SyncDir, engine: &Option<Engine>) -> scim_console::ConsoleSync {
    use scim_sync::config::{Endpoint, ObjectKind};
    let text = |e: &Endpoint| match e {
        Endpoint::Managed(ObjectKind::User) => "managed/user".to_string(),
        Endpoint::Managed(ObjectKind::Group) => "managed/group".to_string(),
        Endpoint::System { connector, kind } => {
            let kind = if *kind == ObjectKind::User {
                "account"
            } else {
                "group"
            };
            format!("system/{connector}/{kind}")
        }
    };
    let mappings = dir
        .config
        .iter()
        .flat_map(|c| c.mappings.iter())
        .map(|m| scim_console::MappingInfo {
            name: m.name.clone(),
            source: text(&m.source),
            target: text(&m.target),
        })
        .collect();
    scim_console::ConsoleSync {
        connectors: dir.connectors.clone(),
        mappings,
        engine: engine.clone(),
    }
}

pub(crate) fn load(dir: &Path, registry: &SchemaRegistry) -> Result<SyncDir, String> {
    let connectors = ConnectorDir::load(dir)?;
    let sync_path = dir.join(SYNC_FILE);
    let config = if sync_path.exists() {
        let text = std::fs::read_to_string(&sync_path)
            .map_err(|e| format!("cannot read {}: {e}", sync_path.display()))?;
        let config =
            SyncConfig::parse(SYNC_FILE, &text, registry).map_err(|e| format!("sync: {e}"))?;
        let names = connectors.names();
        let known: Vec<&str> = names.iter().map(String::as_str).collect();
        config
            .check_connectors(SYNC_FILE, &known)
            .map_err(|e| format!("sync: {e}"))?;
        Some(config)
    } else {
        None
    };
    let expressions = match &config {
        Some(c) => LuauExpressions::compile(c)?,
        None => LuauExpressions::default(),
    };
    Ok(SyncDir {
        connectors: Arc::new(connectors),
        config,
        expressions: Arc::new(expressions),
    })
}

/// The engine of a sync directory with mappings, over this service's objects
/// and store; None without a `sync.json`.
pub(crate) fn engine(sync: &SyncDir, service: &Arc<Service>) -> Option<Engine> {
    let config = sync.config.clone()?;
    let registry_of = service.clone();
    Some(Engine::new(EngineParts {
        config,
        connectors: sync.connectors.clone(),
        store: service.store.clone(),
        local: Arc::new(local::LocalSet {
            service: service.clone(),
        }),
        registry: Arc::new(move || registry_of.registry()),
        expressions: sync.expressions.clone(),
    }))
}
