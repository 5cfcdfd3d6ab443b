//! The Luau engine: `Engine` runs Gluu-style interception scripts written in
//! Luau (through `mlua`) and implements both [`Hooks`] and [`ScriptManager`].
//!
//! - `methods`: Gluu's method names and the API version each needs;
//! - `state`: one sandboxed state (stdlib cut down, `scim` helpers, limits);
//! - `pool`: a loaded script, its pool of states, load/check/destroy;
//! - `convert`: JSON ↔ Lua tables;
//! - `call`: the hooks themselves (chaining, v5 responses, context);
//! - `notify`: the outbound notification queue.

mod call;
mod convert;
mod expr;
mod lazy;
mod methods;
mod notify;
mod pool;
mod state;

#[cfg(test)]
mod tests;

pub use expr::Expression;
pub use notify::Notification;

use crate::{ScriptDef, ScriptError, ScriptManager};
use chrono::{DateTime, Utc};
use pool::{Dropper, LoadLimits, NoteSink};
use scim_proto::clock::Clock;
use state::StateEnv;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

/// Limits and the notification settings, with production defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Heap limit of each Lua state (default 16 MiB).
    pub memory_limit: usize,
    /// CPU (wall) time one hook call may take (default 50 ms).
    pub cpu_limit: Duration,
    /// Time for loading: the chunk, `getApiVersion`, `init`, `destroy` (default 1 s).
    pub admin_time_limit: Duration,
    /// States per script, i.e. how many calls of one script run at once
    /// (default: the available parallelism).
    pub states_per_script: usize,
    /// Largest resource (approximate JSON size) passed to a script (default 1 MiB);
    /// larger ones fail the call.
    pub max_input_bytes: usize,
    /// Hosts `scim.notify` may POST to (`host` or `host:port`); empty: none.
    pub notify_allow: Vec<String>,
    /// Notifications waiting to be sent; more are dropped with a log line (1024).
    pub notify_queue: usize,
    /// POSTs per second at most (default 20; 0: unlimited).
    pub notify_rate: u32,
    /// Retries after a failed POST (default 3), with a doubling backoff.
    pub notify_retries: u32,
    pub notify_backoff: Duration,
    /// Timeout of one POST (default 5 s).
    pub notify_timeout: Duration,
    /// Keep the notifications of a request (by `HookContext::request_id`)
    /// until the service calls `Hooks::commit` (sent) or `Hooks::discard`
    /// (dropped). Off (default): they are queued as soon as the hook chain
    /// that sent them succeeds. At most `notify_queue` requests are kept; the
    /// oldest are dropped with a log line.
    pub defer_notifications: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            memory_limit: 16 << 20,
            cpu_limit: Duration::from_millis(50),
            admin_time_limit: Duration::from_secs(1),
            states_per_script: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2),
            max_input_bytes: 1 << 20,
            notify_allow: Vec::new(),
            notify_queue: 1024,
            notify_rate: 20,
            notify_retries: 3,
            notify_backoff: Duration::from_millis(200),
            notify_timeout: Duration::from_secs(5),
            defer_notifications: false,
        }
    }
}

/// What `scimd scripts show` displays of a running script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedInfo {
    pub name: String,
    pub order: i64,
    /// `getApiVersion` (1 when absent, -1 when it failed).
    pub api_version: i64,
    /// The Gluu methods it defines that its version lets run.
    pub methods: Vec<&'static str>,
    pub states: usize,
}

/// The last runtime error of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    pub method: String,
    pub line: Option<u32>,
    pub message: String,
    pub request_id: Option<String>,
    pub at: DateTime<Utc>,
}

pub(crate) struct ScriptSet {
    /// Enabled and loaded, ascending (order, name).
    pub(crate) scripts: Vec<Arc<Dropper>>,
    /// The first script whose version is ≥ 5 (`manage*`).
    pub(crate) first_v5: Option<usize>,
    /// Definitions that failed to load: the same definition again is not
    /// retried (hot reload polls), its error is reported again.
    failed: Vec<(ScriptDef, ScriptError)>,
}

/// Notifications kept until their request commits.
#[derive(Default)]
struct Pending {
    by_request: HashMap<String, Vec<Notification>>,
    order: VecDeque<String>,
}

/// The Luau engine (see the module doc and docs/scripts.md).
pub struct Engine {
    pub(crate) cfg: EngineConfig,
    env: StateEnv,
    set: RwLock<Arc<ScriptSet>>,
    active: AtomicBool,
    load_lock: Mutex<()>,
    errors: Mutex<BTreeMap<String, LastError>>,
    notifier: Arc<notify::Notifier>,
    pending: Mutex<Pending>,
    pub(crate) clock: Arc<dyn Clock>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Engine {
    /// An engine without scripts (call `load`); starts the notify thread.
    pub fn new(cfg: EngineConfig, clock: Arc<dyn Clock>) -> Engine {
        let notifier = notify::Notifier::start(notify::NotifySettings {
            queue: cfg.notify_queue,
            rate_per_sec: cfg.notify_rate,
            retries: cfg.notify_retries,
            backoff: cfg.notify_backoff,
            timeout: cfg.notify_timeout,
        });
        let env = StateEnv {
            clock: clock.clone(),
            notify_allow: Arc::new(cfg.notify_allow.clone()),
            memory_limit: cfg.memory_limit,
        };
        Engine {
            cfg,
            env,
            set: RwLock::new(Arc::new(ScriptSet {
                scripts: Vec::new(),
                first_v5: None,
                failed: Vec::new(),
            })),
            active: AtomicBool::new(false),
            load_lock: Mutex::new(()),
            errors: Mutex::new(BTreeMap::new()),
            notifier,
            pending: Mutex::new(Pending::default()),
            clock,
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub(crate) fn current(&self) -> Arc<ScriptSet> {
        match self.set.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn limits(&self) -> LoadLimits {
        LoadLimits {
            states: self.cfg.states_per_script,
            admin_limit: self.cfg.admin_time_limit,
        }
    }

    fn sink(&self) -> NoteSink {
        let notifier = self.notifier.clone();
        Arc::new(move |notes| {
            for n in notes {
                notifier.enqueue(n);
            }
        })
    }

    /// Queue notifications for sending (the hooks do this when they succeed).
    pub(crate) fn send(&self, notes: Vec<Notification>) {
        for n in notes {
            self.notifier.enqueue(n);
        }
    }

    /// What a hook chain that succeeded sent: queued now, or kept for `commit`.
    pub(crate) fn sent_by(&self, ctx: &crate::HookContext, notes: Vec<Notification>) {
        if notes.is_empty() {
            return;
        }
        let rid = match (&ctx.request_id, self.cfg.defer_notifications) {
            (Some(rid), true) => rid,
            _ => return self.send(notes),
        };
        let mut p = lock(&self.pending);
        let p = &mut *p;
        match p.by_request.get_mut(rid) {
            Some(kept) => kept.extend(notes),
            None => {
                p.by_request.insert(rid.clone(), notes);
                p.order.push_back(rid.clone());
            }
        }
        while p.order.len() > self.cfg.notify_queue.max(1) {
            if let Some(old) = p.order.pop_front() {
                if let Some(lost) = p.by_request.remove(&old) {
                    tracing::warn!(target: "scim_script", request_id = %old, count = lost.len(), "notifications never committed: dropped");
                }
            }
        }
    }

    fn take_pending(&self, request_id: &str) -> Vec<Notification> {
        let mut p = lock(&self.pending);
        let Some(notes) = p.by_request.remove(request_id) else {
            return Vec::new();
        };
        p.order.retain(|r| r != request_id);
        notes
    }

    /// Send what requests `request_id` kept (see `defer_notifications`).
    pub(crate) fn commit_pending(&self, request_id: &str) {
        let notes = self.take_pending(request_id);
        self.send(notes);
    }

    /// Drop what request `request_id` kept.
    pub(crate) fn discard_pending(&self, request_id: &str) {
        let notes = self.take_pending(request_id);
        if !notes.is_empty() {
            tracing::info!(target: "scim_script", request_id, count = notes.len(), "request failed: its notifications are dropped");
        }
    }

    /// The scripts now running, in the order they run.
    pub fn loaded(&self) -> Vec<LoadedInfo> {
        self.current()
            .scripts
            .iter()
            .map(|s| LoadedInfo {
                name: s.def.name.clone(),
                order: s.def.order,
                api_version: s.version,
                methods: methods::Method::ALL
                    .iter()
                    .filter(|m| s.runs(**m))
                    .map(|m| m.name())
                    .collect(),
                states: s.states,
            })
            .collect()
    }

    /// The last runtime error of each script that had one: (script, message, when).
    pub fn last_errors(&self) -> Vec<(String, String, DateTime<Utc>)> {
        lock(&self.errors)
            .iter()
            .map(|(name, e)| {
                let line = e.line.map(|l| format!(", line {l}")).unwrap_or_default();
                (
                    name.clone(),
                    format!("{}{line}: {}", e.method, e.message),
                    e.at,
                )
            })
            .collect()
    }

    /// The last runtime error of one script, in detail.
    pub fn last_error(&self, script: &str) -> Option<LastError> {
        lock(&self.errors).get(script).cloned()
    }

    /// Log a script's runtime error (script log) and keep it as its last.
    pub(crate) fn record_error(
        &self,
        script: &str,
        method: &str,
        line: Option<u32>,
        message: &str,
        request_id: Option<&str>,
    ) {
        tracing::error!(target: "scim_script", script, method, line, request_id = request_id.unwrap_or(""), "{message}");
        lock(&self.errors).insert(
            script.to_string(),
            LastError {
                method: method.to_string(),
                line,
                message: message.to_string(),
                request_id: request_id.map(str::to_owned),
                at: self.clock.now(),
            },
        );
    }
}

impl ScriptManager for Engine {
    fn runtime_errors(&self) -> Vec<(String, String, DateTime<Utc>)> {
        self.last_errors()
    }

    fn check(&self, def: &ScriptDef) -> Result<(), ScriptError> {
        pool::check(def, &self.env, &self.limits())
    }

    fn load(&self, mut defs: Vec<ScriptDef>) -> Vec<ScriptError> {
        let _serial = lock(&self.load_lock);
        let old = self.current();
        defs.retain(|d| d.enabled);
        defs.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.name.cmp(&b.name)));
        let limits = self.limits();
        let mut errors = Vec::new();
        let mut scripts: Vec<Arc<Dropper>> = Vec::with_capacity(defs.len());
        let mut failed: Vec<(ScriptDef, ScriptError)> = Vec::new();
        for def in defs {
            if scripts.iter().any(|s| s.def.name == def.name) {
                errors.push(ScriptError {
                    script: def.name.clone(),
                    line: None,
                    message: "two scripts with this name".into(),
                });
                continue;
            }
            if let Some(same) = old.scripts.iter().find(|s| s.def == def) {
                scripts.push(same.clone());
                continue;
            }
            if let Some((_, e)) = old.failed.iter().find(|(d, _)| *d == def) {
                errors.push(e.clone());
                failed.push((def, e.clone()));
                continue;
            }
            lock(&self.errors).remove(&def.name);
            match pool::load(&def, &self.env, &limits) {
                Ok((script, notes)) => {
                    self.send(notes);
                    scripts.push(Arc::new(Dropper {
                        script,
                        sink: self.sink(),
                    }));
                }
                Err(e) => {
                    // Logged and kept as the script's last error, for `scripts show`.
                    let message = format!("not loaded: {}", e.message);
                    self.record_error(&e.script, "load", e.line, &message, None);
                    failed.push((def.clone(), e.clone()));
                    errors.push(e);
                }
            }
        }
        let first_v5 = scripts.iter().position(|s| s.version >= 5);
        let active = !scripts.is_empty();
        let new = Arc::new(ScriptSet {
            scripts,
            first_v5,
            failed,
        });
        {
            let mut w = match self.set.write() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            *w = new;
        }
        self.active.store(active, Ordering::Release);
        // The replaced scripts are destroyed when their last call ends (here,
        // when none runs).
        drop(old);
        errors
    }
}

impl Engine {
    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }
}
