//! The sync engine's page: connectors with a Test button, mappings with dry
//! run and reconciliation, recent runs, and a run's live progress, summaries and
//! per-object audit (the same engine calls as `/sync/…`).

use crate::pages::{csrf, failed, layout, ok, problem};
use crate::{see, Page, Shared, Visit};
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use scim_proto::ScimError;
use scim_sync_engine::remote::test_connector;
use scim_sync_engine::view::{audit_json, run_json};
use scim_sync_engine::{ConnectorDir, Engine, RunKind};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

type Fields = HashMap<String, String>;

/// Runs the page lists, and audit entries a run's page shows.
const RECENT_RUNS: usize = 20;
const AUDIT_SHOWN: usize = 200;

/// One mapping as the page lists it.
#[derive(Debug, Clone)]
pub struct MappingInfo {
    pub name: String,
    pub source: String,
    pub target: String,
}

/// What the console needs of the sync engine (`scimd serve --sync-dir`).
#[derive(Clone)]
pub struct ConsoleSync {
    pub connectors: Arc<ConnectorDir>,
    pub mappings: Vec<MappingInfo>,
    /// None without a `sync.json`.
    pub engine: Option<Engine>,
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/ui/sync", get(overview))
        .route("/ui/sync/connectors/{name}/test", post(test))
        .route("/ui/sync/recon", post(start))
        .route("/ui/sync/runs/{id}", get(run))
        .route("/ui/sync/runs/{id}/cancel", post(cancel))
        .route("/ui/sync/runs/{id}/allow-deletes", post(allow_deletes))
}

fn engine_failure(e: impl std::fmt::Display) -> axum::response::Response {
    failed(&ScimError::new(409, None, e.to_string()))
}

fn summary(v: &Value) -> String {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn runs_table(runs: &[Value]) -> Markup {
    html! {
        table {
            thead { tr { th { "Run" } th { "Mapping" } th { "Kind" } th { "State" } th.wide { "Started" } th { "Situations" } } }
            tbody { @for r in runs { tr {
                td { a href=(format!("/ui/sync/runs/{}", r["_id"].as_str().unwrap_or(""))) { (r["_id"].as_str().unwrap_or("")) } }
                td { (r["mapping"].as_str().unwrap_or("")) }
                td { (r["kind"].as_str().unwrap_or("")) @if r["dryRun"] == true { " (dry run)" } }
                td { (r["state"].as_str().unwrap_or("")) }
                td.wide { (r["started"].as_str().unwrap_or("")) }
                td { (summary(&r["situationSummary"])) }
            } } }
        }
    }
}

async fn overview(State(c): State<Shared>, v: Visit) -> Page {
    let admin = v.admin()?;
    let Some(sync) = &c.sync else {
        let body = html! { p { "No sync engine here: start scimd with " code { "--sync-dir DIR" }
        " (connector files and " code { "sync.json" } ", docs/sync.md) to reconcile with other SCIM providers." } };
        return ok(layout("Sync", Some(admin), "/ui/sync", body));
    };
    let runs = match &sync.engine {
        Some(e) => e
            .recent(RECENT_RUNS)
            .await
            .map_err(engine_failure)?
            .iter()
            .map(run_json)
            .collect(),
        None => Vec::new(),
    };
    let body = html! {
        h2 { "Connectors" }
        table {
            thead { tr { th { "Name" } th { "" } } }
            tbody { @for name in sync.connectors.names() { tr {
                td { (name) }
                td { form.inline method="post" action=(format!("/ui/sync/connectors/{name}/test")) {
                    (csrf(admin)) button.plain type="submit" { "Test" }
                } }
            } } }
        }
        h2 { "Mappings" }
        @if sync.engine.is_none() { p.muted { "No sync.json: no mappings." } }
        table {
            thead { tr { th { "Mapping" } th.wide { "Source" } th.wide { "Target" } th { "" } } }
            tbody { @for m in &sync.mappings { tr {
                td { (m.name) } td.wide { (m.source) } td.wide { (m.target) }
                td {
                    form.inline method="post" action="/ui/sync/recon" {
                        (csrf(admin))
                        input type="hidden" name="mapping" value=(m.name);
                        input type="hidden" name="dryRun" value="true";
                        button.plain type="submit" { "Dry run" }
                    }
                    " "
                    form.inline method="post" action="/ui/sync/recon" {
                        (csrf(admin))
                        input type="hidden" name="mapping" value=(m.name);
                        button type="submit" { "Reconcile" }
                    }
                }
            } } }
        }
        h2 { "Recent runs" }
        (runs_table(&runs))
    };
    ok(layout("Sync", Some(admin), "/ui/sync", body))
}

fn sync_of(c: &Shared) -> Result<&ConsoleSync, axum::response::Response> {
    c.sync
        .as_ref()
        .ok_or_else(|| problem(StatusCode::NOT_FOUND, "scimd runs without --sync-dir."))
}

fn engine_of(c: &Shared) -> Result<&Engine, axum::response::Response> {
    sync_of(c)?
        .engine
        .as_ref()
        .ok_or_else(|| problem(StatusCode::NOT_FOUND, "There is no sync.json: no mappings."))
}

async fn test(
    State(c): State<Shared>,
    v: Visit,
    Path(name): Path<String>,
    Form(f): Form<Fields>,
) -> Page {
    let admin = v.poster(&f)?;
    let sync = sync_of(&c)?;
    let connector = sync
        .connectors
        .get(&name)
        .ok_or_else(|| problem(StatusCode::NOT_FOUND, "No such connector."))?;
    let result = test_connector(&connector, sync.connectors.dir()).await;
    let body = html! {
        @if result.ok {
            p.notice role="status" { "Connector " strong { (result.name) } " answers: object types " (result.object_types.join(", ")) "." }
        } @else {
            p.error role="alert" { "Connector " strong { (result.name) } " failed: " (result.error.as_deref().unwrap_or("unknown error")) }
        }
        p { a href="/ui/sync" { "Back to sync" } }
    };
    ok(layout("Connector test", Some(admin), "/ui/sync", body))
}

async fn start(State(c): State<Shared>, v: Visit, Form(f): Form<Fields>) -> Page {
    v.poster(&f)?;
    let engine = engine_of(&c)?;
    let mapping = f.get("mapping").cloned().unwrap_or_default();
    let dry_run = f.get("dryRun").is_some_and(|d| d == "true");
    let run = engine
        .start(&mapping, RunKind::Recon, dry_run, true)
        .await
        .map_err(engine_failure)?;
    tracing::info!(run = %run.id, mapping = %mapping, dry_run, admin = ?v.admin.as_ref().map(|a| &a.user_name), "console: run started");
    Ok(see(&format!("/ui/sync/runs/{}", run.id)))
}

async fn run(State(c): State<Shared>, v: Visit, Path(id): Path<String>) -> Page {
    let admin = v.admin()?;
    let engine = engine_of(&c)?;
    let record = engine.get(&id).await.map_err(engine_failure)?;
    let r = run_json(&record);
    let entries = engine
        .audit(&id, 0, AUDIT_SHOWN)
        .await
        .map_err(engine_failure)?;
    let audit = audit_json(&entries, AUDIT_SHOWN);
    let state = r["state"].as_str().unwrap_or("");
    let active = state == "ACTIVE";
    let progress = &r["progress"];
    let count = |phase: &str| {
        format!(
            "{} of {}",
            progress[phase]["processed"].as_u64().unwrap_or(0),
            progress[phase]["total"].as_u64().unwrap_or(0)
        )
    };
    let body = html! {
        // While the run is active the block refreshes itself every second.
        div id="run" hx-get=[active.then(|| format!("/ui/sync/runs/{id}"))]
            hx-trigger=[active.then_some("every 1s")] hx-select="#run" hx-swap="outerHTML" {
            p { "Mapping " strong { (r["mapping"].as_str().unwrap_or("")) } " · "
                @if r["dryRun"] == true { "dry run · " }
                "state " strong data-state=(state) { (state) } " · stage " (r["stage"].as_str().unwrap_or("")) }
            @if let Some(e) = r["error"].as_str() { p.error { (e) } }
            p { "Source objects " (count("source")) " · target objects " (count("target")) }
            p { "Situations: " (summary(&r["situationSummary"])) }
            p { "Statuses: " (summary(&r["statusSummary"])) }
            @if active || state == "WAITING" {
                form.inline method="post" action=(format!("/ui/sync/runs/{id}/cancel")) {
                    (csrf(admin)) button.danger type="submit" { "Cancel" }
                }
            }
            @if state == "WAITING" {
                " "
                form.inline method="post" action=(format!("/ui/sync/runs/{id}/allow-deletes")) {
                    (csrf(admin)) button type="submit" { "Allow the deletes" }
                }
            }
            h2 { "Objects" }
            table {
                thead { tr { th { "Situation" } th { "Action" } th { "Status" } th.wide { "Source" } th.wide { "Target" } th { "Error" } } }
                tbody { @for e in audit["entries"].as_array().into_iter().flatten() { tr {
                    td { (e["situation"].as_str().unwrap_or("")) }
                    td { (e["action"].as_str().unwrap_or("")) }
                    td { (e["status"].as_str().unwrap_or("")) }
                    td.wide { (e["sourceId"].as_str().unwrap_or("")) }
                    td.wide { (e["targetId"].as_str().unwrap_or("")) }
                    td { (e["error"].as_str().unwrap_or("")) }
                } } }
            }
        }
        p { a href="/ui/sync" { "Back to sync" } }
    };
    ok(layout(&format!("Run {id}"), Some(admin), "/ui/sync", body))
}

async fn cancel(
    State(c): State<Shared>,
    v: Visit,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Page {
    v.poster(&f)?;
    engine_of(&c)?.cancel(&id).await.map_err(engine_failure)?;
    Ok(see(&format!("/ui/sync/runs/{id}")))
}

async fn allow_deletes(
    State(c): State<Shared>,
    v: Visit,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Page {
    v.poster(&f)?;
    engine_of(&c)?
        .allow_deletes(&id)
        .await
        .map_err(engine_failure)?;
    Ok(see(&format!("/ui/sync/runs/{id}")))
}
