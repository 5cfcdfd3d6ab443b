//! Executing one run: read the source and target objects (all of them, or for
//! a live sync only what changed and what it touches), plan with scim-sync,
//! carry the decisions out a few at a time, and record every object in the
//! audit as it goes. Planning again from the objects and links as they are is
//! what makes a resumed run safe: what an earlier attempt did is found linked,
//! or found by correlation, never created twice.

use crate::engine::{blocking, update, Control, Inner, LEASE};
use crate::objects::{id_of, quote, Listed, Mark, ObjectError, ObjectSet};
use crate::view::{Count, Progress, RunKind, RunState, Summaries};
use chrono::Utc;
use futures_util::stream::{self, StreamExt};
use rustc_hash::{FxHashMap, FxHashSet};
use scim_store::sync::{AuditEntry, LinkRow, LinkSide, RunRecord};
use scim_store::StoreError;
use scim_sync::config::{Mapping, MaxDeletes, ObjectKind};
use scim_sync::links::{stamp, stamp_holds, version_of, Link, LinkIndex};
use scim_sync::mapping::{attribute_ops, map_source};
use scim_sync::plan::{plan, Change, Decision, LinkChange, Phase, Plan, PlanInput};
use scim_sync::situation::{Action, Situation};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Objects written at the same time.
const CONCURRENCY: usize = 16;

/// Creates sent together (one Bulk request, or several within the remote's
/// `maxOperations`), their links recorded in one store write.
const CREATE_BATCH: usize = 100;

/// Audit entries written per store call (and progress saved as often).
const AUDIT_BATCH: usize = 500;

/// Links read per store call.
const LINK_PAGE: usize = 5000;

/// Link stamps written per store transaction.
const STAMP_BATCH: usize = 5000;

/// A recon reads whole documents only of the pairs out of step while they are
/// at most this part of all objects (1/N), or this many (a few searches by id);
/// past both, reading everything is cheaper.
const OUT_OF_STEP_SHARE: usize = 5;
const OUT_OF_STEP_FLOOR: usize = 1000;

/// The status of an entry in a dry run: what would be done, nothing written.
pub const DRY_RUN: &str = "DRY_RUN";

/// Execute the run (this process holds its lease) until it ends or waits.
pub(crate) async fn execute(inner: Arc<Inner>, id: &str, control: &Control) {
    let run = match get(&inner, id).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(run = %id, error = %e, "sync: cannot read run");
            return;
        }
    };
    let mut exec = Execution {
        inner: inner.clone(),
        state: RunState::of(&run),
        run,
        control,
        progress: Progress::default(),
        summaries: Summaries::default(),
        lease_checked: Instant::now(),
    };
    let outcome = exec.go().await;
    if let Err(e) = exec.end(outcome).await {
        tracing::warn!(run = %id, error = %e, "sync: cannot record the end of the run");
    }
}

async fn get(inner: &Inner, id: &str) -> Result<RunRecord, StoreError> {
    let (store, id) = (inner.store.clone(), id.to_string());
    blocking(move || store.get_run(&id)).await
}

/// How a run's execution ended.
enum Outcome {
    Done,
    /// Stopped before its deletes, over the mapping's `maxDeletes`.
    Waiting,
    Canceled,
    /// The run ended elsewhere (canceled) or another process took it over.
    Lost,
    Failed(String),
}

impl From<StoreError> for Outcome {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Outcome::Lost,
            e => Outcome::Failed(format!("storage: {e}")),
        }
    }
}

impl From<ObjectError> for Outcome {
    fn from(e: ObjectError) -> Self {
        Outcome::Failed(e.to_string())
    }
}

/// The objects a run plans from.
struct Read {
    sources: Vec<Value>,
    targets: Vec<Value>,
    links: Vec<Link>,
    /// The links' stamps by first id (`scim_sync::links::stamp`).
    stamps: HashMap<String, String>,
    member_links: LinkIndex,
    /// Targets the mapping has in all (a live sync reads only some).
    target_total: usize,
    /// Linked pairs left out because their stamps show them in step: CONFIRMED,
    /// nothing to write.
    in_step: u64,
    /// A live sync saw source deletions (the target phase then runs on the
    /// targets linked to them).
    live_deletions: bool,
}

/// What carrying out one decision gave.
struct Applied {
    entry: AuditEntry,
    /// The remote refused the credentials: the run stops.
    stop: Option<String>,
    /// The link's new stamp (first id, stamp), after an update that left the
    /// pair in step with versions known.
    stamp: Option<(String, String)>,
}

struct Execution<'c> {
    inner: Arc<Inner>,
    run: RunRecord,
    state: RunState,
    control: &'c Control,
    progress: Progress,
    summaries: Summaries,
    lease_checked: Instant,
}

impl Execution<'_> {
    fn mapping(&self) -> Result<Mapping, Outcome> {
        self.inner
            .mapping(&self.run.mapping)
            .cloned()
            .ok_or_else(|| {
                Outcome::Failed(format!(
                    "mapping '{}' is no longer configured",
                    self.run.mapping
                ))
            })
    }

    async fn go(&mut self) -> Outcome {
        match self.attempt().await {
            Ok(o) | Err(o) => o,
        }
    }

    async fn attempt(&mut self) -> Result<Outcome, Outcome> {
        let m = self.mapping()?;
        let source = self.inner.set_for(&m.source)?;
        let target = self.inner.set_for(&m.target)?;
        self.save("reading").await?;
        let mark = source.mark().await?;
        let since = match self.state.kind {
            RunKind::LiveSync => self.inner.last_mark(&m.name).await?,
            RunKind::Recon => None,
        };
        let started = Instant::now();
        let changed = match &since {
            Some(since) => self.read_changed(&m, &*source, &*target, since).await?,
            None => None,
        };
        let read = match changed {
            Some(read) => read,
            None => match self.read_out_of_step(&m, &*source, &*target).await? {
                Some(read) => read,
                None => self.read_all(&m, &*source, &*target).await?,
            },
        };
        let read_ms = started.elapsed().as_millis();
        if since.is_none() && self.state.kind == RunKind::LiveSync {
            tracing::info!(run = %self.run.id, "sync: no earlier run to continue from: reconciling everything");
        }
        self.save("planning").await?;
        let started = Instant::now();
        let (sources, targets, in_step) = (read.sources.len(), read.targets.len(), read.in_step);
        let plan = self.plan(&m, read).await?;
        let plan_ms = started.elapsed().as_millis();
        for (s, n) in plan.situation_summary() {
            self.summaries
                .situation_summary
                .insert(s.as_str().to_string(), n);
        }
        self.count_in_step(in_step);
        self.progress.source.total = phase_count(&plan, Phase::Source) + in_step;
        self.progress.target.total = phase_count(&plan, Phase::Target);
        if self.run.dry_run {
            self.report_dry_run(&plan).await?;
            return Ok(Outcome::Done);
        }
        let hold = plan.needs_allow_deletes && !self.state.allow_deletes;
        self.save("executing").await?;
        let started = Instant::now();
        let changes = plan.changes().count();
        let outcome = self.carry_out(&m, &*target, plan, hold).await?;
        tracing::info!(
            run = %self.run.id, mapping = %m.name, sources, targets, in_step, changes, read_ms, plan_ms,
            write_ms = started.elapsed().as_millis(), "sync: run carried out"
        );
        if let Outcome::Done = outcome {
            if hold {
                return Ok(Outcome::Waiting);
            }
            self.state.mark = Some(mark);
        }
        Ok(outcome)
    }

    async fn read_all(
        &self,
        m: &Mapping,
        source: &dyn ObjectSet,
        target: &dyn ObjectSet,
    ) -> Result<Read, Outcome> {
        let kind = m.source.kind();
        let source_attrs = m.source_attributes().unwrap_or_default();
        let target_attrs = m.target_attributes();
        // Both sides and the link tables at once.
        let ((sources, source_ms), (targets, target_ms), table, member_links) = tokio::try_join!(
            timed(source.list(kind, None, &source_attrs)),
            timed(target.list(m.target.kind(), None, &target_attrs)),
            async { self.links(m.link_set()).await.map_err(Outcome::from) },
            async { self.member_links(m).await.map_err(Outcome::from) },
        )?;
        let (links, stamps) = table.all();
        tracing::debug!(run = %self.run.id, source_ms, target_ms, "sync: objects read");
        Ok(Read {
            target_total: targets.len(),
            sources,
            targets,
            links,
            stamps,
            member_links,
            live_deletions: false,
            in_step: 0,
        })
    }

    /// A recon of a mapping whose pairs mostly are as the last run left them:
    /// both sides listed by id and version only, and whole documents read only
    /// for what is out of step (an unlinked or changed source, a target without
    /// its source). None when that does not pay: a dry run (it reports every
    /// object), group mappings (a member's new link changes a group whose own
    /// version did not), a CONFIRMED policy other than UPDATE, no links yet, or
    /// too much out of step.
    async fn read_out_of_step(
        &self,
        m: &Mapping,
        source: &dyn ObjectSet,
        target: &dyn ObjectSet,
    ) -> Result<Option<Read>, Outcome> {
        let eligible = self.state.kind == RunKind::Recon
            && !self.run.dry_run
            && !m.maps_members()
            && m.policies.action_for(Situation::Confirmed) == Action::Update;
        let (store, set) = (self.inner.store.clone(), m.link_set().to_string());
        if !eligible || blocking(move || store.count_links(&set)).await? == 0 {
            return Ok(None);
        }
        let (source_kind, target_kind) = (m.source.kind(), m.target.kind());
        let ((source_versions, source_ms), (target_versions, target_ms), table) = tokio::try_join!(
            timed(source.versions(source_kind)),
            timed(target.versions(target_kind)),
            async { self.links(m.link_set()).await.map_err(Outcome::from) },
        )?;
        let started = Instant::now();
        let by_source = table.by_source(m.is_reverse());
        let step = OutOfStep::find(m, &by_source, &source_versions, &target_versions);
        tracing::debug!(run = %self.run.id, source_ms, target_ms,
            compare_ms = started.elapsed().as_millis(), "sync: versions compared");
        let total = source_versions.len() + target_versions.len();
        if step.count() > (total / OUT_OF_STEP_SHARE).max(OUT_OF_STEP_FLOOR) {
            return Ok(None);
        }
        let source_attrs = m.source_attributes().unwrap_or_default();
        let mut sources = source
            .get_many(source_kind, &step.sources, &source_attrs)
            .await?;
        // A source that went in the meantime is left for the next run.
        sources.retain(|s| id_of(s).is_some());
        let mut targets: HashMap<String, Value> = HashMap::new();
        for doc in target
            .get_many(target_kind, &step.targets, &m.target_attributes())
            .await?
        {
            if let Some(id) = id_of(&doc) {
                targets.insert(id.to_string(), doc);
            }
        }
        let linked = |id: &str| by_source.contains_key(id);
        self.correlate_unlinked(m, target, &sources, linked, &mut targets)
            .await?;
        let targets: Vec<Value> = targets.into_values().collect();
        let (links, stamps) = table.touching(m.is_reverse(), &sources, &targets, &[]);
        Ok(Some(Read {
            in_step: step.in_step,
            sources,
            targets,
            links,
            stamps,
            member_links: LinkIndex::default(),
            target_total: target_versions.len(),
            live_deletions: false,
        }))
    }

    /// Add to `targets` what the correlation queries find for each of the
    /// `sources` that has no link (a run decides FOUND or ABSENT from them).
    async fn correlate_unlinked(
        &self,
        m: &Mapping,
        target: &dyn ObjectSet,
        sources: &[Value],
        linked: impl Fn(&str) -> bool,
        targets: &mut HashMap<String, Value>,
    ) -> Result<(), Outcome> {
        let kind = m.target.kind();
        for s in sources {
            if id_of(s).is_some_and(&linked) {
                continue;
            }
            let mapped = map_source(m, s, &*self.inner.expressions);
            for filter in correlation_filters(m, &mapped.doc) {
                for doc in target.list(kind, Some(&filter), &[]).await? {
                    if let Some(id) = id_of(&doc) {
                        targets.insert(id.to_string(), doc);
                    }
                }
            }
        }
        Ok(())
    }

    /// The changed sources, and the targets they reach: linked ones by id,
    /// unlinked ones by the correlation queries.
    async fn read_changed(
        &self,
        m: &Mapping,
        source: &dyn ObjectSet,
        target: &dyn ObjectSet,
        since: &Mark,
    ) -> Result<Option<Read>, Outcome> {
        let changed = match source.changed_since(m.source.kind(), since).await {
            Ok(c) => c,
            Err(ObjectError::Gone(why)) => {
                tracing::info!(run = %self.run.id, reason = %why, "sync: the changes since the last run are gone: reconciling everything");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let table = self.links(m.link_set()).await?;
        let by_source = table.by_source(m.is_reverse());
        let linked: Vec<String> = changed
            .changed
            .iter()
            .filter_map(id_of)
            .chain(changed.deleted.iter().map(String::as_str))
            .filter_map(|s| by_source.get(s).map(|(t, _)| t.to_string()))
            .collect();
        let mut targets: HashMap<String, Value> = HashMap::new();
        for doc in target.get_many(m.target.kind(), &linked, &[]).await? {
            if let Some(id) = id_of(&doc) {
                targets.insert(id.to_string(), doc);
            }
        }
        let is_linked = |id: &str| by_source.contains_key(id);
        self.correlate_unlinked(m, target, &changed.changed, is_linked, &mut targets)
            .await?;
        let targets: Vec<Value> = targets.into_values().collect();
        let (links, stamps) =
            table.touching(m.is_reverse(), &changed.changed, &targets, &changed.deleted);
        let target_total = table.rows.len();
        Ok(Some(Read {
            sources: changed.changed,
            targets,
            links,
            stamps,
            member_links: self.member_links(m).await?,
            target_total,
            live_deletions: !changed.deleted.is_empty(),
            in_step: 0,
        }))
    }

    /// The link set as stored, every link with its stamp.
    async fn links(&self, set: &str) -> Result<LinkTable, StoreError> {
        let mut rows = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (store, set_name, from) =
                (self.inner.store.clone(), set.to_string(), after.clone());
            let page = blocking(move || store.links(&set_name, from.as_deref(), LINK_PAGE)).await?;
            let full = page.len() == LINK_PAGE;
            after = page.last().map(|l| l.first_id.clone());
            rows.extend(page);
            if !full {
                return Ok(LinkTable { rows });
            }
        }
    }

    /// For a group mapping: source member id → target member id, through the
    /// links of the user mapping between the same places.
    async fn member_links(&self, m: &Mapping) -> Result<LinkIndex, StoreError> {
        if !m.maps_members() {
            return Ok(LinkIndex::default());
        }
        let Some((set, reversed)) = self.inner.config.member_links_of(m) else {
            return Ok(LinkIndex::default());
        };
        let (links, _) = self.links(set).await?.all();
        Ok(LinkIndex::new(&links, reversed))
    }

    async fn plan(&self, m: &Mapping, read: Read) -> Result<Plan, Outcome> {
        let mut mapping = m.clone();
        if self.state.kind == RunKind::LiveSync {
            // Only targets linked to deleted sources are left for the target
            // phase of a live sync.
            mapping.run_target_phase &= read.live_deletions;
        }
        // A percent threshold counts every target, read or not.
        if let Some(MaxDeletes::Percent(_)) = mapping.max_deletes {
            let limit = mapping.max_deletes.map(|d| d.limit(read.target_total));
            mapping.max_deletes = limit.map(MaxDeletes::Count);
        }
        let registry = (self.inner.registry)();
        let dry_run = self.run.dry_run;
        let expressions = self.inner.expressions.clone();
        let (planned, stamps) = tokio::task::spawn_blocking(move || {
            let planned = plan(&PlanInput {
                mapping: &mapping,
                registry: &registry,
                sources: &read.sources,
                targets: &read.targets,
                links: &read.links,
                member_links: &read.member_links,
                dry_run,
                expressions: &*expressions,
            });
            let stamps = match (&planned, dry_run) {
                (Ok(p), false) => new_stamps(&mapping, p, &read.stamps),
                _ => Vec::new(),
            };
            // Freeing 200,000 documents takes a while: not on the run's path.
            tokio::task::spawn_blocking(move || drop(read));
            (planned, stamps)
        })
        .await
        .map_err(|e| Outcome::Failed(format!("planning: {e}")))?;
        let planned = planned.map_err(|e| Outcome::Failed(e.to_string()))?;
        self.write_stamps(m.link_set(), stamps).await?;
        Ok(planned)
    }

    /// Store link stamps, a batch per transaction.
    async fn write_stamps(
        &self,
        set: &str,
        stamps: Vec<(String, Option<String>)>,
    ) -> Result<(), Outcome> {
        for batch in stamps.chunks(STAMP_BATCH) {
            let (store, set, batch) = (self.inner.store.clone(), set.to_string(), batch.to_vec());
            blocking(move || store.stamp_links(&set, &batch)).await?;
        }
        Ok(())
    }

    /// Pairs left out of the plan as in step count as CONFIRMED, carried out.
    fn count_in_step(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        let s = &mut self.summaries;
        *s.situation_summary
            .entry(Situation::Confirmed.as_str().to_string())
            .or_insert(0) += n;
        *s.status_summary.entry("SUCCESS".into()).or_insert(0) += n;
        self.progress.source.processed += n;
        self.progress.in_step = n;
    }

    async fn report_dry_run(&mut self, plan: &Plan) -> Result<(), Outcome> {
        let mut batch = Vec::new();
        for d in &plan.decisions {
            self.count_processed(d);
            let e = entry(d, DRY_RUN, d.target_id.clone(), d.error.clone());
            *self
                .summaries
                .status_summary
                .entry(DRY_RUN.into())
                .or_insert(0) += 1;
            if recorded(d, &e) {
                batch.push(e);
            }
            if batch.len() == AUDIT_BATCH {
                self.flush(&mut batch).await?;
            }
        }
        self.flush(&mut batch).await?;
        Ok(())
    }

    /// Carry the decisions out, `CONCURRENCY` at a time; with `hold`, deletes
    /// and disables wait for `allowDeletes`.
    async fn carry_out(
        &mut self,
        m: &Mapping,
        target: &dyn ObjectSet,
        plan: Plan,
        hold: bool,
    ) -> Result<Outcome, Outcome> {
        let inner = self.inner.clone();
        let worker = Worker {
            inner: &inner,
            m,
            target,
        };
        let todo = plan
            .decisions
            .into_iter()
            .filter(|d| !(hold && matches!(d.change, Change::Delete | Change::Disable(_))));
        let mut results = stream::iter(units(todo))
            .map(|u| worker.apply_unit(u))
            .buffer_unordered(CONCURRENCY);
        let mut batch = Vec::new();
        let mut stamps = Vec::new();
        let mut last_save = Instant::now();
        while let Some(done) = results.next().await {
            for (d, applied) in done {
                self.count_processed(&d);
                stamps.extend(applied.stamp.map(|(first, s)| (first, Some(s))));
                let e = applied.entry;
                metrics::counter!("scimd_sync_objects_total",
                    "mapping" => self.run.mapping.clone(), "status" => e.status.clone())
                .increment(1);
                *self
                    .summaries
                    .status_summary
                    .entry(e.status.clone())
                    .or_insert(0) += 1;
                if recorded(&d, &e) {
                    batch.push(e);
                }
                if let Some(reason) = applied.stop {
                    self.write_stamps(m.link_set(), std::mem::take(&mut stamps))
                        .await?;
                    self.flush(&mut batch).await?;
                    return Ok(Outcome::Failed(reason));
                }
            }
            let canceled = self.control.canceled();
            if canceled
                || batch.len() >= AUDIT_BATCH
                || last_save.elapsed() > Duration::from_secs(1)
            {
                self.write_stamps(m.link_set(), std::mem::take(&mut stamps))
                    .await?;
                self.flush(&mut batch).await?;
                last_save = Instant::now();
            }
            if canceled {
                return Ok(Outcome::Canceled);
            }
        }
        self.write_stamps(m.link_set(), stamps).await?;
        self.flush(&mut batch).await?;
        Ok(Outcome::Done)
    }

    fn count_processed(&mut self, d: &Decision) {
        let c: &mut Count = match d.phase {
            Phase::Source => &mut self.progress.source,
            Phase::Target => &mut self.progress.target,
        };
        c.processed += 1;
    }

    /// Append the entries and save progress; renew the lease now and then.
    async fn flush(&mut self, batch: &mut Vec<AuditEntry>) -> Result<(), Outcome> {
        if !batch.is_empty() {
            let (store, id, entries) = (
                self.inner.store.clone(),
                self.run.id.clone(),
                std::mem::take(batch),
            );
            blocking(move || store.append_audit(&id, &entries)).await?;
        }
        self.save(&self.run.stage.clone()).await
    }

    /// Record stage, progress, summaries and state; fails with `Lost` once the
    /// run ended elsewhere or the lease went to another process.
    async fn save(&mut self, stage: &str) -> Result<(), Outcome> {
        if self.lease_checked.elapsed() > LEASE / 3 {
            if !self.inner.claim(&self.run.id).await? {
                return Err(Outcome::Lost);
            }
            self.lease_checked = Instant::now();
        }
        self.run.stage = stage.to_string();
        self.run.progress = serde_json::to_string(&self.progress).unwrap_or_default();
        self.run.summaries = serde_json::to_string(&self.summaries).unwrap_or_default();
        let u = update(&self.run, stage, &self.state);
        let (store, id) = (self.inner.store.clone(), self.run.id.clone());
        blocking(move || store.update_run(&id, &u)).await?;
        Ok(())
    }

    async fn end(&mut self, outcome: Outcome) -> Result<(), StoreError> {
        let state = match outcome {
            Outcome::Lost => return Ok(()),
            Outcome::Done => "SUCCESS",
            Outcome::Canceled => "CANCELED",
            Outcome::Waiting => {
                self.run.state = "WAITING".into();
                self.lease_checked = Instant::now();
                let _ = self.save("waitingForAllowDeletes").await;
                let (store, id, owner) = (
                    self.inner.store.clone(),
                    self.run.id.clone(),
                    self.inner.owner.clone(),
                );
                return blocking(move || store.release_run(&id, &owner)).await;
            }
            Outcome::Failed(reason) => {
                tracing::warn!(run = %self.run.id, mapping = %self.run.mapping, error = %reason, "sync: run failed");
                self.state.error = Some(reason);
                "FAILED"
            }
        };
        self.lease_checked = Instant::now();
        match self.save("done").await {
            Ok(()) | Err(Outcome::Lost) => {}
            Err(_) => {}
        }
        let (store, id) = (self.inner.store.clone(), self.run.id.clone());
        match blocking(move || store.finish_run(&id, state, Utc::now())).await {
            Ok(()) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The decisions as units of work: creates in groups of `CREATE_BATCH`, every
/// other decision alone.
fn units(decisions: impl Iterator<Item = Decision>) -> Vec<Vec<Decision>> {
    let mut units = Vec::new();
    let mut creates = Vec::new();
    for d in decisions {
        if is_create(&d) {
            creates.push(d);
            if creates.len() == CREATE_BATCH {
                units.push(std::mem::take(&mut creates));
            }
        } else {
            units.push(vec![d]);
        }
    }
    if !creates.is_empty() {
        units.push(creates);
    }
    units
}

/// A decision that creates its target (and has nothing that stops it first).
fn is_create(d: &Decision) -> bool {
    matches!(d.change, Change::Create(_)) && d.error.is_none() && d.action != Action::Exception
}

fn phase_count(plan: &Plan, phase: Phase) -> u64 {
    plan.decisions.iter().filter(|d| d.phase == phase).count() as u64
}

/// Filters that find the target a source correlates to, by the mapping's
/// correlation queries over the mapped document (plain attribute paths; a
/// value path has no one-comparison filter form).
fn correlation_filters(m: &Mapping, mapped: &Value) -> Vec<String> {
    m.correlation
        .iter()
        .filter(|q| !q.path.has_selector())
        .filter_map(|q| {
            let literal = match q.path.read(mapped)? {
                Value::String(s) => quote(s),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some(format!("{} eq {literal}", q.path.raw()))
        })
        .collect()
}

/// What happened to the object of a decision.
fn entry(
    d: &Decision,
    status: &str,
    target_id: Option<String>,
    error: Option<String>,
) -> AuditEntry {
    AuditEntry {
        situation: d.situation.as_str().to_string(),
        action: d.action.as_str().to_string(),
        status: status.to_string(),
        source_id: d.source_id.clone(),
        target_id,
        error,
    }
}

/// Whether the audit keeps the entry: not for NOREPORT, nor for an update that
/// had nothing to write (a re-run of 100,000 unchanged objects would otherwise
/// add 100,000 rows saying so; the summaries still count them).
fn recorded(d: &Decision, e: &AuditEntry) -> bool {
    let nothing_done = d.action == Action::Update
        && d.change == Change::None
        && d.link == LinkChange::None
        && e.error.is_none();
    d.action != Action::NoReport && !nothing_done
}

/// Carries single decisions out against the target and the link table.
struct Worker<'a> {
    inner: &'a Inner,
    m: &'a Mapping,
    target: &'a dyn ObjectSet,
}

impl Worker<'_> {
    async fn apply_unit(&self, unit: Vec<Decision>) -> Vec<(Decision, Applied)> {
        let applied = if unit.iter().all(is_create) {
            self.create_all(&unit).await
        } else {
            let mut out = Vec::with_capacity(unit.len());
            for d in &unit {
                out.push(self.apply(d).await);
            }
            out
        };
        unit.into_iter().zip(applied).collect()
    }

    async fn apply(&self, d: &Decision) -> Applied {
        if let Some(e) = &d.error {
            return failed(d, d.target_id.clone(), e.clone());
        }
        if d.action == Action::Exception {
            return failed(d, d.target_id.clone(), exception(d.situation));
        }
        let kind = self.m.target.kind();
        let mut version = None;
        let written = match (&d.change, d.target_id.as_deref()) {
            (Change::None, _) => Ok(d.target_id.clone()),
            (Change::Create(_), _) => {
                return self.create_all(std::slice::from_ref(d)).await.remove(0)
            }
            (Change::Patch(ops) | Change::Disable(ops), Some(t)) => {
                self.target.update(kind, t, ops).await.map(|v| {
                    version = v;
                    d.target_id.clone()
                })
            }
            (Change::Delete, Some(t)) => self.target.delete(kind, t).await.map(|()| None),
            (_, None) => Err(ObjectError::Failed("no target to write".into())),
        };
        match written {
            Ok(target_id) => {
                let mut applied = self.relink(d, &d.link, None, target_id.clone()).await;
                if applied.entry.error.is_none() {
                    applied.stamp = self.stamp_after(d, target_id.as_deref(), version.as_deref());
                }
                applied
            }
            Err(e) => object_failure(d, d.target_id.clone(), e),
        }
    }

    /// The link's stamp (first id, stamp) once the target of `d` is `target_id`
    /// at `version`, when both versions are known and the pair stays linked.
    fn stamp_after(
        &self,
        d: &Decision,
        target_id: Option<&str>,
        version: Option<&str>,
    ) -> Option<(String, String)> {
        if matches!(d.change, Change::Delete | Change::Disable(_)) {
            return None;
        }
        let (s, t) = (d.source_id.as_deref()?, target_id?);
        let l = Link::between(self.m.is_reverse(), s, t);
        Some((
            l.first,
            stamp(self.m, d.source_version.as_deref()?, version?),
        ))
    }

    /// Create the targets of `ds` (all creates) together, then record their
    /// links in one store write.
    async fn create_all(&self, ds: &[Decision]) -> Vec<Applied> {
        let kind = self.m.target.kind();
        let docs: Vec<Value> = ds.iter().map(|d| created_doc(d).clone()).collect();
        let created = self.target.create_many(kind, &docs).await;
        let mut out: Vec<Applied> = Vec::with_capacity(ds.len());
        // (decision's slot, target id) of each new link.
        let mut slots = Vec::new();
        let mut new_links = Vec::new();
        for ((d, doc), result) in ds.iter().zip(&docs).zip(created) {
            match result {
                Ok(c) => match (id_of(&c), d.source_id.as_deref()) {
                    (Some(t), Some(s)) => {
                        let stamp = self.stamp_after(d, Some(t), version_of(&c));
                        let l = Link::between(self.m.is_reverse(), s, t);
                        new_links.push(LinkRow::new(&l.first, &l.second, stamp.map(|s| s.1)));
                        slots.push((out.len(), t.to_string()));
                        // Replaced once the link is recorded (below).
                        out.push(failed(d, Some(t.to_string()), "link not recorded".into()));
                    }
                    (t, _) => out.push(failed(
                        d,
                        t.map(str::to_string),
                        "the created object has no id".into(),
                    )),
                },
                Err(ObjectError::Conflict(e)) => out.push(self.link_existing(d, doc, e).await),
                Err(e) => out.push(object_failure(d, None, e)),
            }
        }
        for (k, result) in self.put_links(new_links).await.into_iter().enumerate() {
            let (slot, t) = &slots[k];
            let d = &ds[*slot];
            out[*slot] = match result {
                Ok(()) => Applied {
                    entry: entry(d, "SUCCESS", Some(t.clone()), None),
                    stop: None,
                    stamp: None,
                },
                Err(e) => failed(d, Some(t.clone()), format!("recording the link: {e}")),
            };
        }
        out
    }

    /// Record these links in one write; when that fails (PostgreSQL refuses a
    /// write racing for the same id), one by one, so only the ones at fault fail.
    async fn put_links(&self, links: Vec<LinkRow>) -> Vec<Result<(), StoreError>> {
        if links.is_empty() {
            return Vec::new();
        }
        let (store, set) = (self.inner.store.clone(), self.m.link_set().to_string());
        let all = links.clone();
        if blocking(move || store.put_links(&set, &all)).await.is_ok() {
            return links.iter().map(|_| Ok(())).collect();
        }
        let mut out = Vec::with_capacity(links.len());
        for l in links {
            let (store, set) = (self.inner.store.clone(), self.m.link_set().to_string());
            out.push(blocking(move || store.put_links(&set, std::slice::from_ref(&l))).await);
        }
        out
    }

    /// A create answered 409: the object exists. Find it by the correlation
    /// queries (or, for a user, its userName) and, when it is one not linked to another source, link it and
    /// bring it up to date.
    async fn link_existing(&self, d: &Decision, doc: &Value, conflict: String) -> Applied {
        let kind = self.m.target.kind();
        let mut found: Vec<Value> = Vec::new();
        let mut filters = correlation_filters(self.m, doc);
        // The conflict is on the unique attribute, whatever correlates.
        if let (ObjectKind::User, Some(name)) = (kind, doc.get("userName").and_then(Value::as_str))
        {
            filters.push(format!("userName eq {}", quote(name)));
        }
        for filter in filters {
            match self.target.list(kind, Some(&filter), &[]).await {
                Ok(list) if list.len() == 1 => {
                    found = list;
                    break;
                }
                Ok(_) => {}
                Err(e) => return object_failure(d, None, e),
            }
        }
        let Some(existing) = found.pop() else {
            return failed(d, None, conflict);
        };
        let Some(target_id) = id_of(&existing).map(str::to_string) else {
            return failed(d, None, conflict);
        };
        let side = if self.m.is_reverse() {
            LinkSide::First
        } else {
            LinkSide::Second
        };
        let (store, set, tid) = (
            self.inner.store.clone(),
            self.m.link_set().to_string(),
            target_id.clone(),
        );
        match blocking(move || store.find_link(&set, side, &tid)).await {
            Ok(Some(_)) => {
                return failed(
                    d,
                    Some(target_id),
                    format!("{conflict}; the existing object is linked to another source"),
                )
            }
            Ok(None) => {}
            Err(e) => return failed(d, Some(target_id), format!("storage: {e}")),
        }
        let ops = attribute_ops(self.m, doc, &existing);
        if !ops.is_empty() {
            if let Err(e) = self.target.update(kind, &target_id, &ops).await {
                return object_failure(d, Some(target_id), e);
            }
        }
        let mut applied = self
            .relink(
                d,
                &LinkChange::AddAfterCreate,
                Some(target_id.clone()),
                Some(target_id),
            )
            .await;
        applied.entry.action = Action::Link.as_str().to_string();
        applied
    }

    /// Record the decision's link change; `created` is the id a create gave.
    async fn relink(
        &self,
        d: &Decision,
        link: &LinkChange,
        created: Option<String>,
        target_id: Option<String>,
    ) -> Applied {
        let reverse = self.m.is_reverse();
        let set = self.m.link_set().to_string();
        let store = self.inner.store.clone();
        let result = match (link, created, d.source_id.clone()) {
            (LinkChange::None, _, _) => Ok(()),
            (LinkChange::Add(l), _, _) => {
                let l = l.clone();
                blocking(move || store.put_link(&set, &l.first, &l.second)).await
            }
            (LinkChange::AddAfterCreate, Some(t), Some(s)) => {
                let l = Link::between(reverse, &s, &t);
                blocking(move || store.put_link(&set, &l.first, &l.second)).await
            }
            (LinkChange::AddAfterCreate, _, _) => {
                Err(StoreError::Backend("the created object has no id".into()))
            }
            (LinkChange::Remove(l), _, _) => {
                let first = l.first.clone();
                blocking(move || store.remove_link(&set, LinkSide::First, &first).map(|_| ())).await
            }
        };
        match result {
            Ok(()) => Applied {
                entry: entry(d, "SUCCESS", target_id, None),
                stop: None,
                stamp: None,
            },
            Err(e) => failed(d, target_id, format!("recording the link: {e}")),
        }
    }
}

/// A link set as read: each link with its stamp.
struct LinkTable {
    rows: Vec<LinkRow>,
}

impl LinkTable {
    /// Every link, and the stamps by first id.
    fn all(&self) -> (Vec<Link>, HashMap<String, String>) {
        self.select(|_| true)
    }

    /// The links of these sources and targets, and of the `gone` sources: all a
    /// plan of them looks up (it asks for links by the ids it plans, nothing else).
    fn touching(
        &self,
        reverse: bool,
        sources: &[Value],
        targets: &[Value],
        gone: &[String],
    ) -> (Vec<Link>, HashMap<String, String>) {
        let sources: HashSet<&str> = sources
            .iter()
            .filter_map(id_of)
            .chain(gone.iter().map(String::as_str))
            .collect();
        let targets: HashSet<&str> = targets.iter().filter_map(id_of).collect();
        self.select(|l| {
            let (s, t) = oriented(l, reverse);
            sources.contains(s) || targets.contains(t)
        })
    }

    fn select(&self, keep: impl Fn(&LinkRow) -> bool) -> (Vec<Link>, HashMap<String, String>) {
        let mut links = Vec::new();
        let mut stamps = HashMap::new();
        for l in self.rows.iter().filter(|l| keep(l)) {
            if let Some(s) = &l.stamp {
                stamps.insert(l.first_id.clone(), s.clone());
            }
            links.push(Link {
                first: l.first_id.clone(),
                second: l.second_id.clone(),
            });
        }
        (links, stamps)
    }

    /// Source id → (target id, stamp), seen from a mapping that is `reverse` or not.
    fn by_source(&self, reverse: bool) -> ByIds<'_> {
        self.rows
            .iter()
            .map(|l| {
                let (s, t) = oriented(l, reverse);
                (s, (t, l.stamp.as_deref()))
            })
            .collect()
    }
}

/// Linked source id → (target id, stamp). Fx hashing: a recon looks up every
/// pair of a large directory here, and the ids are not chosen by an attacker
/// (they are the two systems' own).
type ByIds<'a> = FxHashMap<&'a str, (&'a str, Option<&'a str>)>;

/// A stored link as (source id, target id) of a mapping that is `reverse` or not.
fn oriented(l: &LinkRow, reverse: bool) -> (&str, &str) {
    if reverse {
        (&l.second_id, &l.first_id)
    } else {
        (&l.first_id, &l.second_id)
    }
}

/// A listing, and how long it took in milliseconds.
async fn timed<T>(
    f: impl std::future::Future<Output = Result<Vec<T>, ObjectError>>,
) -> Result<(Vec<T>, u128), Outcome> {
    let t = Instant::now();
    let v = f.await?;
    Ok((v, t.elapsed().as_millis()))
}

/// What a recon reads whole, found from both sides' listings of ids and
/// versions and the links' stamps.
#[derive(Debug, Default, PartialEq)]
struct OutOfStep {
    /// Sources without a link, or whose stamp no longer holds (either side
    /// changed, the target went, the mapping changed).
    sources: Vec<String>,
    /// The targets linked to those sources, and the targets without a source
    /// (never linked, or their source went).
    targets: Vec<String>,
    /// Linked pairs whose stamps hold.
    in_step: u64,
}

impl OutOfStep {
    /// `linked` maps each linked source id to its target id and stamp.
    fn find(m: &Mapping, linked: &ByIds<'_>, sources: &[Listed], targets: &[Listed]) -> OutOfStep {
        let versions: FxHashMap<&str, Option<&str>> = targets
            .iter()
            .map(|t| (t.id.as_str(), t.version.as_deref()))
            .collect();
        let mut out = OutOfStep::default();
        // Targets whose sources are listed: the others are read.
        let mut reached: FxHashSet<&str> = FxHashSet::default();
        reached.reserve(linked.len());
        for s in sources {
            let id = s.id.as_str();
            let Some(&(t, stamp)) = linked.get(id) else {
                out.sources.push(id.to_string());
                continue;
            };
            reached.insert(t);
            let holds = match (stamp, s.version.as_deref(), versions.get(t)) {
                (Some(stamp), Some(sv), Some(Some(tv))) => stamp_holds(stamp, m, sv, tv),
                _ => false,
            };
            if holds {
                out.in_step += 1;
            } else {
                out.sources.push(id.to_string());
            }
        }
        for t in versions.keys() {
            if !reached.contains(t) {
                out.targets.push(t.to_string());
            }
        }
        // The targets of out-of-step sources are read with them.
        for id in &out.sources {
            if let Some(&(t, _)) = linked.get(id.as_str()) {
                if versions.contains_key(t) {
                    out.targets.push(t.to_string());
                }
            }
        }
        out
    }

    fn count(&self) -> usize {
        self.sources.len() + self.targets.len()
    }
}

/// The stamps of the pairs `p` leaves in step without writing, where the
/// stored stamp differs.
fn new_stamps(
    m: &Mapping,
    p: &Plan,
    stored: &HashMap<String, String>,
) -> Vec<(String, Option<String>)> {
    p.decisions
        .iter()
        .filter_map(|d| {
            let stamp = d.in_step_stamp(m)?;
            let first = match m.is_reverse() {
                true => d.target_id.as_deref(),
                false => d.source_id.as_deref(),
            }?;
            (stored.get(first) != Some(&stamp)).then(|| (first.to_string(), Some(stamp)))
        })
        .collect()
}

/// The document a create decision writes.
fn created_doc(d: &Decision) -> &Value {
    static NONE: Value = Value::Null;
    match &d.change {
        Change::Create(doc) => doc,
        _ => &NONE,
    }
}

fn exception(s: Situation) -> String {
    match s {
        Situation::Ambiguous => "several targets correlate to this source".into(),
        Situation::FoundAlreadyLinked => "the correlated target is linked to another source".into(),
        Situation::Missing => "the linked target no longer exists".into(),
        Situation::SourceMissing => "the linked source no longer exists".into(),
        Situation::Unassigned => "the target is linked to no source".into(),
        other => format!("the policy for {} is EXCEPTION", other.as_str()),
    }
}

fn failed(d: &Decision, target_id: Option<String>, error: String) -> Applied {
    Applied {
        entry: entry(d, "FAILURE", target_id, Some(error)),
        stop: None,
        stamp: None,
    }
}

fn object_failure(d: &Decision, target_id: Option<String>, e: ObjectError) -> Applied {
    let stop = matches!(e, ObjectError::Forbidden(_)).then(|| format!("stopped: {e}"));
    let mut a = failed(d, target_id, e.to_string());
    a.stop = stop;
    a
}

#[cfg(test)]
mod out_of_step_tests {
    use super::*;
    use scim_sync::config::SyncConfig;
    use serde_json::json;

    fn mapping() -> Mapping {
        let registry = scim_proto::schema::SchemaRegistry::standard();
        let text = json!({"mappings": [{"name": "out", "source": "managed/user",
            "target": "system/scim/account",
            "properties": [{"source": "userName", "target": "userName"}]}]});
        let config = SyncConfig::parse("sync.json", &text.to_string(), &registry).expect("mapping");
        config.mappings[0].clone()
    }

    fn doc(id: &str, version: &str) -> Listed {
        Listed {
            id: id.into(),
            version: Some(version.into()),
        }
    }

    fn row(first: &str, second: &str, stamp: Option<String>) -> LinkRow {
        LinkRow::new(first, second, stamp)
    }

    #[test]
    fn pairs_out_of_step_are_found_from_versions_and_stamps() {
        let m = mapping();
        let held = |sv: &str, tv: &str| Some(stamp(&m, sv, tv));
        let table = LinkTable {
            rows: vec![
                row("s-same", "t-same", held("1", "1")),
                row("s-changed", "t-changed", held("1", "1")),
                row("s-drift", "t-drift", held("1", "1")),
                row("s-unstamped", "t-unstamped", None),
                row("s-gone", "t-orphan", held("1", "1")),
                row("s-lost", "t-lost", held("1", "1")),
            ],
        };
        let sources = [
            doc("s-same", "1"),
            doc("s-changed", "2"),
            doc("s-drift", "1"),
            doc("s-unstamped", "1"),
            doc("s-lost", "1"),
            doc("s-new", "1"),
        ];
        let targets = [
            doc("t-same", "1"),
            doc("t-changed", "1"),
            doc("t-drift", "5"),
            doc("t-unstamped", "1"),
            doc("t-orphan", "1"),
            doc("t-stray", "1"),
        ];
        let by_source = table.by_source(false);
        let mut step = OutOfStep::find(&m, &by_source, &sources, &targets);
        step.targets.sort();
        assert_eq!(step.in_step, 1);
        assert_eq!(
            step.sources,
            ["s-changed", "s-drift", "s-unstamped", "s-lost", "s-new"]
        );
        assert_eq!(
            step.targets,
            ["t-changed", "t-drift", "t-orphan", "t-stray", "t-unstamped"]
        );
        // Another mapping's stamps never hold.
        let mut other = m.clone();
        other.digest = "0123456789abcdef".into();
        assert_eq!(
            OutOfStep::find(&other, &by_source, &sources, &targets).in_step,
            0
        );

        // A plan of the out-of-step objects gets their links only.
        let (links, stamps) = table.touching(
            false,
            &[json!({"id": "s-changed"})],
            &[json!({"id": "t-orphan"})],
            &[],
        );
        assert_eq!(
            links,
            [
                Link::between(false, "s-changed", "t-changed"),
                Link::between(false, "s-gone", "t-orphan")
            ]
        );
        assert_eq!(stamps.len(), 2);
    }
}
