//! `/sync/…` over HTTP, protected like the admin API (admin scope), in the
//! shapes of PingIDM's REST API: the connection test, starting, reading,
//! canceling and releasing runs, and a run's audit.

use super::SyncDir;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use scim_proto::messages::param;
use scim_proto::ScimError;
use scim_server::http::error_response;
use scim_sync_engine::connectors::listing;
use scim_sync_engine::remote::test_connector;
use scim_sync_engine::view::{audit_json, run_json};
use scim_sync_engine::{ConnectorError, Engine, EngineError, RunKind};
use serde_json::json;
use std::sync::Arc;

/// Audit entries per page unless `count` says otherwise, and at most.
const AUDIT_PAGE: usize = 100;
const AUDIT_PAGE_MAX: usize = 1000;

/// Runs `GET /sync/recon` lists.
const RECENT_RUNS: usize = 50;

#[derive(Clone)]
struct SyncState {
    sync: Arc<SyncDir>,
    engine: Option<Engine>,
}

type Params = Query<Vec<(String, String)>>;

pub(crate) fn routes(
    sync: Arc<SyncDir>,
    engine: Option<Engine>,
    guard: scim_auth::Guard,
) -> Router {
    let protect = axum::middleware::from_fn_with_state(guard, scim_auth::protect);
    Router::new()
        .route("/sync/system", get(list_connectors))
        .route(
            "/sync/system/{connector}",
            post(system_action)
                .get(show_connector)
                .put(put_connector)
                .delete(delete_connector),
        )
        .route("/sync/recon", post(start).get(list))
        .route("/sync/recon/{id}", get(show).post(run_action))
        .route("/sync/recon/{id}/audit", get(audit))
        .layer(protect)
        .with_state(SyncState { sync, engine })
}

fn engine_error(e: EngineError) -> ScimError {
    match &e {
        EngineError::UnknownMapping(_) | EngineError::UnknownRun(_) => {
            ScimError::not_found(e.to_string())
        }
        EngineError::AlreadyOpen(_) | EngineError::State(_) => ScimError::conflict(e.to_string()),
        EngineError::Store(_) => ScimError::internal(e.to_string()),
    }
}

/// The response of a handler's outcome.
fn respond(r: Result<Response, ScimError>) -> Response {
    r.unwrap_or_else(|e| error_response(&e))
}

fn engine_of(state: &SyncState) -> Result<&Engine, ScimError> {
    state.engine.as_ref().ok_or_else(|| {
        ScimError::not_found(format!(
            "no mappings: {} has no sync.json",
            state.sync.dir().display()
        ))
    })
}

fn flag(params: &[(String, String)], name: &str) -> Result<bool, ScimError> {
    match param(params, name) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(ScimError::invalid_value(format!(
            "{name} must be true or false, not '{v}'"
        ))),
    }
}

/// `POST /sync/system/{connector}?_action=test`.
async fn system_action(
    State(state): State<SyncState>,
    UrlPath(name): UrlPath<String>,
    Query(params): Params,
) -> Response {
    if param(&params, "_action") != Some("test") {
        return error_response(&ScimError::invalid_value("_action must be test"));
    }
    let Some(connector) = state.sync.connectors.get(&name) else {
        return error_response(&ScimError::not_found(format!(
            "no connector named '{name}'"
        )));
    };
    let result = test_connector(&connector, state.sync.dir()).await;
    (StatusCode::OK, Json(vec![result])).into_response()
}

fn connector_error(e: ConnectorError) -> ScimError {
    match e {
        ConnectorError::Invalid(d) => ScimError::invalid_value(d),
        ConnectorError::NotFound(_) => ScimError::not_found(e.to_string()),
        ConnectorError::Io(d) => ScimError::internal(d),
    }
}

/// `GET /sync/system`: every connector, literal secrets masked.
async fn list_connectors(State(state): State<SyncState>) -> Response {
    Json(listing(&state.sync.connectors)).into_response()
}

/// `GET /sync/system/{connector}`.
async fn show_connector(
    State(state): State<SyncState>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    match state.sync.connectors.shown(&name) {
        Some(c) => Json(c).into_response(),
        None => error_response(&ScimError::not_found(format!(
            "no connector named '{name}'"
        ))),
    }
}

/// `PUT /sync/system/{connector}`: create or replace the connector file, checked
/// as at start; the next run uses it. `"***"` keeps a secret as it is.
async fn put_connector(
    State(state): State<SyncState>,
    UrlPath(name): UrlPath<String>,
    body: axum::body::Bytes,
) -> Response {
    let body: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error_response(&ScimError::invalid_syntax(format!("not JSON: {e}"))),
    };
    let dir = state.sync.connectors.clone();
    let key = name.clone();
    let put = tokio::task::spawn_blocking(move || dir.put(&key, body)).await;
    match put {
        Ok(Ok(created)) => {
            tracing::info!(connector = %name, created, "sync: connector written");
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let shown = state.sync.connectors.shown(&name);
            (status, Json(shown)).into_response()
        }
        Ok(Err(e)) => error_response(&connector_error(e)),
        Err(e) => error_response(&ScimError::internal_because("connector task", e)),
    }
}

/// `DELETE /sync/system/{connector}`: refused while a mapping uses it.
async fn delete_connector(
    State(state): State<SyncState>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let users = state.sync.mappings_using(&name);
    if !users.is_empty() {
        return error_response(&ScimError::conflict(format!(
            "connector '{name}' is used by mapping {}",
            users.join(", ")
        )));
    }
    match state.sync.connectors.remove(&name) {
        Ok(()) => {
            tracing::info!(connector = %name, "sync: connector removed");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => error_response(&connector_error(e)),
    }
}

/// `POST /sync/recon?_action=recon|liveSync&mapping=M[&waitForCompletion=true][&dryRun=true]`.
async fn start(State(state): State<SyncState>, Query(params): Params) -> Response {
    respond(start_run(&state, &params).await)
}

async fn start_run(state: &SyncState, params: &[(String, String)]) -> Result<Response, ScimError> {
    let engine = engine_of(state)?;
    let kind = match param(params, "_action") {
        Some("recon") => RunKind::Recon,
        Some("liveSync") => RunKind::LiveSync,
        _ => {
            return Err(ScimError::invalid_value(
                "_action must be recon or liveSync",
            ))
        }
    };
    let mapping =
        param(params, "mapping").ok_or_else(|| ScimError::invalid_value("mapping is required"))?;
    let wait = flag(params, "waitForCompletion")?;
    let dry_run = flag(params, "dryRun")?;
    let run = engine
        .start(mapping, kind, dry_run, true)
        .await
        .map_err(engine_error)?;
    if !wait {
        return Ok((StatusCode::ACCEPTED, Json(run_json(&run))).into_response());
    }
    let run = engine.wait(&run.id).await.map_err(engine_error)?;
    Ok((StatusCode::OK, Json(run_json(&run))).into_response())
}

/// `GET /sync/recon`: the most recent runs, newest first.
async fn list(State(state): State<SyncState>) -> Response {
    respond(
        async {
            let runs = engine_of(&state)?
                .recent(RECENT_RUNS)
                .await
                .map_err(engine_error)?;
            let list: Vec<_> = runs.iter().map(run_json).collect();
            Ok(Json(json!({ "reconciliations": list })).into_response())
        }
        .await,
    )
}

/// `GET /sync/recon/{id}`.
async fn show(State(state): State<SyncState>, UrlPath(id): UrlPath<String>) -> Response {
    respond(
        async {
            let run = engine_of(&state)?.get(&id).await.map_err(engine_error)?;
            Ok(Json(run_json(&run)).into_response())
        }
        .await,
    )
}

/// `POST /sync/recon/{id}?_action=cancel|allowDeletes`.
async fn run_action(
    State(state): State<SyncState>,
    UrlPath(id): UrlPath<String>,
    Query(params): Params,
) -> Response {
    respond(
        async {
            let engine = engine_of(&state)?;
            let run = match param(&params, "_action") {
                Some("cancel") => engine.cancel(&id).await,
                Some("allowDeletes") => engine.allow_deletes(&id).await,
                _ => {
                    return Err(ScimError::invalid_value(
                        "_action must be cancel or allowDeletes",
                    ))
                }
            };
            Ok(Json(run_json(&run.map_err(engine_error)?)).into_response())
        }
        .await,
    )
}

/// `GET /sync/recon/{id}/audit[?after=SEQ][&count=N]`.
async fn audit(
    State(state): State<SyncState>,
    UrlPath(id): UrlPath<String>,
    Query(params): Params,
) -> Response {
    respond(
        async {
            let engine = engine_of(&state)?;
            let number = |name: &str, default: i64| -> Result<i64, ScimError> {
                match param(&params, name) {
                    None => Ok(default),
                    Some(v) => v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                        ScimError::invalid_value(format!("{name} must be a non-negative integer"))
                    }),
                }
            };
            let after = number("after", 0)?;
            let count = (number("count", AUDIT_PAGE as i64)? as usize).clamp(1, AUDIT_PAGE_MAX);
            let entries = engine
                .audit(&id, after, count)
                .await
                .map_err(engine_error)?;
            Ok(Json(audit_json(&entries, count)).into_response())
        }
        .await,
    )
}
