//! The engine: starts, waits for, cancels and resumes runs; one process at a
//! time executes a run (its lease in the store), and any process may take over
//! a run whose process died. Schedules start live syncs.

use crate::connectors::ConnectorDir;
use crate::objects::{Mark, ObjectError, ObjectSet};
use crate::remote::{DirLookup, RemoteSet};
use crate::run::execute;
use crate::view::{RunKind, RunState};
use chrono::{DateTime, TimeDelta, Utc};
use scim_proto::schema::SchemaRegistry;
use scim_store::sync::{RunRecord, RunStart, RunUpdate};
use scim_store::{StoreError, SyncStore};
use scim_sync::config::{Connector, Endpoint, Mapping, Schedule, SyncConfig};
use scim_sync::mapping::Expressions;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How long a lease on a run lasts; the executing process renews it every third
/// of that. A run whose process died is taken over this long after.
pub const LEASE: Duration = Duration::from_secs(15);

/// How often the engine looks for runs nobody executes (and due schedules).
const SCAN_EVERY: Duration = Duration::from_secs(2);

/// Returns the registry as it is now (custom attributes change at run time).
pub type RegistryFn = Arc<dyn Fn() -> Arc<SchemaRegistry> + Send + Sync>;

/// What an engine is made of.
pub struct EngineParts {
    pub config: SyncConfig,
    /// The sync directory's connectors (relative `$file` secrets are read from it).
    pub connectors: Arc<ConnectorDir>,
    pub store: Arc<dyn SyncStore>,
    /// scimd's own objects (`managed/*`).
    pub local: Arc<dyn ObjectSet>,
    pub registry: RegistryFn,
    /// Evaluates the mappings' Luau transforms (compiled at start).
    pub expressions: Arc<dyn Expressions + Send>,
}

/// Why a run could not be started or changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("no mapping named '{0}'")]
    UnknownMapping(String),
    #[error("no run with id '{0}'")]
    UnknownRun(String),
    /// The mapping has a run in progress (or waiting): this one.
    #[error("mapping '{}' already has run {} in progress", .0.mapping, .0.id)]
    AlreadyOpen(Box<RunRecord>),
    /// The run is not in a state that allows this.
    #[error("{0}")]
    State(String),
    #[error("storage: {0}")]
    Store(String),
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        EngineError::Store(e.to_string())
    }
}

/// A run executing in this process.
pub(crate) struct Control {
    pub(crate) cancel: AtomicBool,
    done: watch::Sender<bool>,
}

impl Control {
    pub(crate) fn canceled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: SyncConfig,
    connectors: Arc<ConnectorDir>,
    lookup: DirLookup,
    pub(crate) store: Arc<dyn SyncStore>,
    local: Arc<dyn ObjectSet>,
    pub(crate) registry: RegistryFn,
    pub(crate) expressions: Arc<dyn Expressions + Send>,
    /// This process's name on leases.
    pub(crate) owner: String,
    /// One client per connector (its token reused), for as long as the
    /// connector stays as it was.
    remotes: Mutex<HashMap<String, (Connector, Arc<RemoteSet>)>>,
    running: Mutex<HashMap<String, Arc<Control>>>,
}

/// A store call off the async workers (SQLite and PostgreSQL calls block).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(StoreError::Backend(format!("store task: {e}"))))
}

impl Inner {
    /// The object set an endpoint names: scimd itself or a connector's remote
    /// (one client per connector, so its token is reused).
    pub(crate) fn set_for(&self, endpoint: &Endpoint) -> Result<Arc<dyn ObjectSet>, ObjectError> {
        let Some(name) = endpoint.connector() else {
            return Ok(self.local.clone());
        };
        let connector = self
            .connectors
            .get(name)
            .ok_or_else(|| ObjectError::Failed(format!("no connector named '{name}'")))?;
        let mut remotes = self.remotes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((c, r)) = remotes.get(name) {
            if *c == connector {
                return Ok(r.clone());
            }
        }
        if !connector.enabled {
            return Err(ObjectError::Failed(format!(
                "connector '{name}' is disabled"
            )));
        }
        let set = RemoteSet::new(&connector, &self.lookup, (self.registry)())
            .map_err(ObjectError::Failed)?;
        let set = Arc::new(set);
        remotes.insert(name.to_string(), (connector, set.clone()));
        Ok(set)
    }

    pub(crate) fn mapping(&self, name: &str) -> Option<&Mapping> {
        self.config.mapping(name)
    }

    /// Take or renew this process's lease of the run.
    pub(crate) async fn claim(&self, id: &str) -> Result<bool, StoreError> {
        let (store, id, owner) = (self.store.clone(), id.to_string(), self.owner.clone());
        let now = Utc::now();
        let until = now + TimeDelta::from_std(LEASE).unwrap_or(TimeDelta::seconds(15));
        blocking(move || store.claim_run(&id, &owner, now, until)).await
    }

    /// Where the mapping's last successful run left the source's changes.
    pub(crate) async fn last_mark(&self, mapping: &str) -> Result<Option<Mark>, StoreError> {
        let (store, mapping) = (self.store.clone(), mapping.to_string());
        let runs = blocking(move || store.recent_runs(Some(&mapping), 50)).await?;
        Ok(runs
            .iter()
            .filter(|r| r.state == "SUCCESS" && !r.dry_run)
            .find_map(|r| RunState::of(r).mark))
    }
}

impl Engine {
    pub fn new(parts: EngineParts) -> Engine {
        let owner = format!("{}:{}", std::process::id(), uuid::Uuid::new_v4().simple());
        Engine {
            inner: Arc::new(Inner {
                config: parts.config,
                lookup: DirLookup {
                    dir: parts.connectors.dir().to_path_buf(),
                },
                connectors: parts.connectors,
                store: parts.store,
                local: parts.local,
                registry: parts.registry,
                expressions: parts.expressions,
                owner,
                remotes: Mutex::new(HashMap::new()),
                running: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Start a run of `mapping`. With `execute_here` this process executes it
    /// at once; otherwise it waits in the store (ACTIVE, no lease) for a serving
    /// process to take it.
    pub async fn start(
        &self,
        mapping: &str,
        kind: RunKind,
        dry_run: bool,
        execute_here: bool,
    ) -> Result<RunRecord, EngineError> {
        if self.inner.mapping(mapping).is_none() {
            return Err(EngineError::UnknownMapping(mapping.to_string()));
        }
        let store = self.inner.store.clone();
        let (id, name) = (uuid::Uuid::now_v7().to_string(), mapping.to_string());
        let state = RunState {
            kind,
            ..RunState::default()
        };
        let started = blocking(move || {
            let run = match store.create_run(&id, &name, dry_run, Utc::now())? {
                RunStart::Started(r) => r,
                RunStart::AlreadyOpen(r) => return Ok(RunStart::AlreadyOpen(r)),
            };
            store.update_run(&run.id, &update(&run, "queued", &state))?;
            store.get_run(&run.id).map(RunStart::Started)
        })
        .await?;
        let run = match started {
            RunStart::Started(r) => r,
            RunStart::AlreadyOpen(r) => return Err(EngineError::AlreadyOpen(Box::new(r))),
        };
        if execute_here && self.inner.claim(&run.id).await? {
            self.spawn(&run.id);
        }
        Ok(run)
    }

    /// Execute the run here (the lease is ours).
    fn spawn(&self, id: &str) {
        let (done, _) = watch::channel(false);
        let control = Arc::new(Control {
            cancel: AtomicBool::new(false),
            done,
        });
        {
            let mut running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
            if running.contains_key(id) {
                return;
            }
            running.insert(id.to_string(), control.clone());
        }
        let (inner, id) = (self.inner.clone(), id.to_string());
        tokio::spawn(async move {
            execute(inner.clone(), &id, &control).await;
            inner
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            control.done.send_replace(true);
        });
    }

    fn control(&self, id: &str) -> Option<Arc<Control>> {
        self.inner
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    pub async fn get(&self, id: &str) -> Result<RunRecord, EngineError> {
        let (store, key) = (self.inner.store.clone(), id.to_string());
        blocking(move || store.get_run(&key))
            .await
            .map_err(|e| match e {
                StoreError::NotFound => EngineError::UnknownRun(id.to_string()),
                e => e.into(),
            })
    }

    pub async fn recent(&self, limit: usize) -> Result<Vec<RunRecord>, EngineError> {
        let store = self.inner.store.clone();
        Ok(blocking(move || store.recent_runs(None, limit)).await?)
    }

    pub async fn audit(
        &self,
        id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<scim_store::sync::AuditRecord>, EngineError> {
        self.get(id).await?;
        let (store, id) = (self.inner.store.clone(), id.to_string());
        Ok(blocking(move || store.audit(&id, after, limit)).await?)
    }

    /// Wait until the run is no longer ACTIVE (finished, or waiting for
    /// `allowDeletes`), wherever it executes.
    pub async fn wait(&self, id: &str) -> Result<RunRecord, EngineError> {
        loop {
            let run = self.get(id).await?;
            if run.state != "ACTIVE" {
                return Ok(run);
            }
            match self.control(id) {
                Some(c) => {
                    let mut done = c.done.subscribe();
                    // An error means the sender is gone: the run ended.
                    let _ = done.wait_for(|d| *d).await;
                }
                None => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Cancel an open run: an executing one stops after the objects in flight.
    pub async fn cancel(&self, id: &str) -> Result<RunRecord, EngineError> {
        let run = self.get(id).await?;
        if run.ended.is_some() {
            return Err(EngineError::State(format!(
                "run {id} has ended ({})",
                run.state
            )));
        }
        if let Some(c) = self.control(id) {
            c.cancel.store(true, Ordering::Relaxed);
            return self.wait(id).await;
        }
        // Waiting, queued, or executed by a process that will find it ended.
        let (store, key) = (self.inner.store.clone(), id.to_string());
        match blocking(move || store.finish_run(&key, "CANCELED", Utc::now())).await {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        self.get(id).await
    }

    /// Let a run waiting at its deletion threshold carry its deletes out.
    pub async fn allow_deletes(&self, id: &str) -> Result<RunRecord, EngineError> {
        let run = self.get(id).await?;
        if run.state != "WAITING" {
            return Err(EngineError::State(format!(
                "run {id} is {}, not WAITING for allowDeletes",
                run.state
            )));
        }
        let mut state = RunState::of(&run);
        state.allow_deletes = true;
        let mut u = update(&run, "deletesAllowed", &state);
        u.state = "ACTIVE".into();
        let (store, key) = (self.inner.store.clone(), id.to_string());
        blocking(move || store.update_run(&key, &u)).await?;
        if self.inner.claim(id).await? {
            self.spawn(id);
        }
        self.get(id).await
    }

    /// Take over runs nobody executes (queued, or left by a process that died)
    /// and start due schedules, every few seconds, for as long as the process
    /// serves.
    pub fn run_in_background(&self) {
        let engine = self.clone();
        tokio::spawn(async move {
            let mut due: HashMap<String, DateTime<Utc>> = HashMap::new();
            loop {
                engine.take_over().await;
                engine.start_due(&mut due).await;
                tokio::time::sleep(SCAN_EVERY).await;
            }
        });
    }

    async fn take_over(&self) {
        for m in &self.inner.config.mappings {
            let (store, name) = (self.inner.store.clone(), m.name.clone());
            let open = match blocking(move || store.open_run(&name)).await {
                Ok(open) => open,
                Err(e) => {
                    tracing::warn!(mapping = %m.name, error = %e, "sync: cannot read open runs");
                    continue;
                }
            };
            let Some(run) = open.filter(|r| r.state == "ACTIVE") else {
                continue;
            };
            if self.control(&run.id).is_some() {
                continue;
            }
            match self.inner.claim(&run.id).await {
                Ok(true) => {
                    tracing::info!(run = %run.id, mapping = %run.mapping, "sync: executing run");
                    self.spawn(&run.id);
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(run = %run.id, error = %e, "sync: cannot claim run"),
            }
        }
    }

    async fn start_due(&self, due: &mut HashMap<String, DateTime<Utc>>) {
        let now = Utc::now();
        for m in &self.inner.config.mappings {
            let Some(schedule) = &m.schedule else {
                continue;
            };
            let next = *due
                .entry(m.name.clone())
                .or_insert_with(|| next_time(schedule, now));
            if next > now {
                continue;
            }
            due.insert(m.name.clone(), next_time(schedule, now));
            match self.start(&m.name, RunKind::LiveSync, false, true).await {
                Ok(run) => tracing::info!(run = %run.id, mapping = %m.name, "sync: scheduled run"),
                Err(EngineError::AlreadyOpen(_)) => {}
                Err(e) => tracing::warn!(mapping = %m.name, error = %e, "sync: scheduled run"),
            }
        }
    }
}

/// When a schedule next fires after `now`.
fn next_time(schedule: &Schedule, now: DateTime<Utc>) -> DateTime<Utc> {
    match schedule {
        Schedule::Every(d) => now + TimeDelta::from_std(*d).unwrap_or(TimeDelta::hours(1)),
        Schedule::Cron(expr) => {
            scim_sync::cron::next_after(expr, now).unwrap_or(now + TimeDelta::hours(1))
        }
    }
}

/// The record's update with a new stage and state column, other columns kept.
pub(crate) fn update(run: &RunRecord, stage: &str, state: &RunState) -> RunUpdate {
    RunUpdate {
        state: run.state.clone(),
        stage: stage.to_string(),
        progress: run.progress.clone(),
        summaries: run.summaries.clone(),
        cursor: Some(state.to_text()),
    }
}
