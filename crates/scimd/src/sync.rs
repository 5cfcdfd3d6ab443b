//! The sync engine inside scimd: connectors loaded from `--sync-dir` (every
//! `*.json` but `sync.json` is one), `sync.json` checked against them, and the
//! connection test (`POST /sync/system/{connector}?_action=test`, `scimd sync test`).

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use clap::{Args, Subcommand};
use scim_client::{Client, ClientCredentials, RetryPolicy};
use scim_proto::schema::SchemaRegistry;
use scim_proto::ScimError;
use scim_sync::config::{Auth, Connector, SyncConfig};
use scim_sync::secret::SecretLookup;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The mappings file in the sync directory; every other `*.json` is a connector.
const SYNC_FILE: &str = "sync.json";

/// How long one request of the connection test may take.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The connectors of a sync directory.
#[derive(Debug, Clone)]
pub(crate) struct Connectors {
    pub(crate) dir: PathBuf,
    pub(crate) list: Vec<Connector>,
}

impl Connectors {
    pub(crate) fn find(&self, name: &str) -> Option<&Connector> {
        self.list.iter().find(|c| c.name == name)
    }
}

/// The connectors of `dir`, and its `sync.json` (when there is one) parsed and
/// checked against them: a bad file fails with its file, mapping and field.
pub(crate) fn load(dir: &Path, registry: &SchemaRegistry) -> Result<Connectors, String> {
    let connectors = load_connectors(dir)?;
    let sync_path = dir.join(SYNC_FILE);
    if sync_path.exists() {
        let text = read(&sync_path)?;
        let config =
            SyncConfig::parse(SYNC_FILE, &text, registry).map_err(|e| format!("sync: {e}"))?;
        let known: Vec<&str> = connectors.list.iter().map(|c| c.name.as_str()).collect();
        config
            .check_connectors(SYNC_FILE, &known)
            .map_err(|e| format!("sync: {e}"))?;
    }
    Ok(connectors)
}

/// Every `*.json` file of `dir` but `sync.json`, parsed as a connector.
pub(crate) fn load_connectors(dir: &Path) -> Result<Connectors, String> {
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
    Ok(Connectors {
        dir: dir.to_path_buf(),
        list,
    })
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

/// Secrets from the process environment and files; a relative `$file` path is
/// relative to the sync directory.
struct DirLookup<'a> {
    dir: &'a Path,
}

impl SecretLookup for DirLookup<'_> {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn file(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(self.dir.join(path)).map_err(|e| e.to_string())
    }
}

/// One connector's test result, as the REST API and `--json` show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TestResult {
    pub(crate) name: String,
    pub(crate) enabled: bool,
    pub(crate) object_types: Vec<String>,
    pub(crate) ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// Discover the remote (ServiceProviderConfig, ResourceTypes) and count its Users
/// with the connector's credentials. A failure is `ok: false` with a one-line
/// error that never holds a secret.
pub(crate) async fn test_connector(connector: &Connector, dir: &Path) -> TestResult {
    let mut result = TestResult {
        name: connector.name.clone(),
        enabled: connector.enabled,
        object_types: Vec::new(),
        ok: false,
        error: None,
    };
    let auth = match connector.resolve_auth(&DirLookup { dir }) {
        Ok(a) => a,
        Err(e) => {
            result.error = Some(one_line(&e));
            return result;
        }
    };
    match probe(&connector.endpoint, &auth).await {
        Ok(types) => {
            result.object_types = types;
            result.ok = true;
        }
        Err(e) => result.error = Some(redact(&one_line(&e), &auth)),
    }
    result
}

/// The object types the remote serves, after a count=0 search of its Users.
async fn probe(endpoint: &str, auth: &Auth) -> Result<Vec<String>, String> {
    let client = client(endpoint, auth).map_err(|e| e.to_string())?;
    let caps = client.discover().await.map_err(|e| e.to_string())?;
    client
        .users()
        .count(None)
        .await
        .map_err(|e| format!("searching Users: {e}"))?;
    Ok(caps
        .resource_types
        .iter()
        .filter_map(|rt| object_type(&rt.name))
        .map(str::to_string)
        .collect())
}

/// The sync name of a SCIM resource type.
fn object_type(resource_type: &str) -> Option<&'static str> {
    match resource_type {
        "User" => Some("account"),
        "Group" => Some("group"),
        _ => None,
    }
}

fn client(endpoint: &str, auth: &Auth) -> scim_client::Result<Client> {
    let builder = Client::builder(endpoint)
        .timeout(TEST_TIMEOUT)
        .connect_timeout(TEST_TIMEOUT)
        .retry(RetryPolicy::none());
    let builder = match auth {
        Auth::OAuth {
            client_id,
            client_secret,
            token_endpoint,
        } => builder.client_credentials(
            ClientCredentials::new(client_id, client_secret.expose()).token_url(token_endpoint),
        ),
        Auth::Token(token) => builder.bearer_token(token.expose()),
        Auth::Basic { user, password } => builder.basic(user, password.expose()),
    };
    builder.build()
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The message with the credentials' secret masked, should a remote echo it.
fn redact(message: &str, auth: &Auth) -> String {
    let secret = match auth {
        Auth::OAuth { client_secret, .. } => client_secret.expose(),
        Auth::Token(token) => token.expose(),
        Auth::Basic { password, .. } => password.expose(),
    };
    if secret.is_empty() {
        message.to_string()
    } else {
        message.replace(secret, "***")
    }
}

/// `/sync/…` routes, protected like the admin API (admin scope).
pub(crate) fn routes(connectors: Arc<Connectors>, guard: scim_auth::Guard) -> Router {
    let protect = axum::middleware::from_fn_with_state(guard, scim_auth::protect);
    Router::new()
        .route(
            "/sync/system/{connector}",
            post(system_action).layer(protect),
        )
        .with_state(connectors)
}

/// `POST /sync/system/{connector}?_action=test`.
async fn system_action(
    State(connectors): State<Arc<Connectors>>,
    UrlPath(name): UrlPath<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let action = params
        .iter()
        .find(|(k, _)| k == "_action")
        .map(|(_, v)| v.as_str());
    if action != Some("test") {
        return scim_server::http::error_response(&ScimError::invalid_value(
            "_action must be test",
        ));
    }
    let Some(connector) = connectors.find(&name) else {
        return scim_server::http::error_response(&ScimError::not_found(format!(
            "no connector named '{name}'"
        )));
    };
    let result = test_connector(connector, &connectors.dir).await;
    (StatusCode::OK, axum::Json(vec![result])).into_response()
}

#[derive(Args, Debug)]
pub(crate) struct SyncArgs {
    #[command(subcommand)]
    command: SyncCommand,
}

#[derive(Subcommand, Debug)]
enum SyncCommand {
    /// Test a connector: discover the remote and search its Users.
    Test {
        /// The connector's name.
        connector: String,
        /// Directory of the connectors (and sync.json).
        #[arg(long, env = "SCIMD_SYNC_DIR")]
        sync_dir: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run_sync(args: SyncArgs) -> Result<(), String> {
    match args.command {
        SyncCommand::Test {
            connector,
            sync_dir,
            json,
        } => run_test(&connector, sync_dir, json),
    }
}

fn run_test(name: &str, sync_dir: Option<PathBuf>, json: bool) -> Result<(), String> {
    let dir = sync_dir.ok_or("no sync directory: give --sync-dir or SCIMD_SYNC_DIR")?;
    let connectors = load_connectors(&dir)?;
    let connector = connectors
        .find(name)
        .ok_or_else(|| format!("no connector named '{name}' in {}", dir.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let result = runtime.block_on(test_connector(connector, &dir));
    if json {
        let text = serde_json::to_string_pretty(&vec![&result])
            .map_err(|e| format!("cannot write JSON: {e}"))?;
        println!("{text}");
    } else {
        print!("{}", table(&result));
    }
    if result.ok {
        Ok(())
    } else {
        Err(format!("connector '{name}' failed its test"))
    }
}

fn table(r: &TestResult) -> String {
    let types = if r.object_types.is_empty() {
        "-".to_string()
    } else {
        r.object_types.join(",")
    };
    let rows = [
        ["NAME", "ENABLED", "OBJECT TYPES", "OK", "ERROR"].map(str::to_string),
        [
            r.name.clone(),
            r.enabled.to_string(),
            types,
            r.ok.to_string(),
            r.error.clone().unwrap_or_default(),
        ],
    ];
    let width = |i: usize| rows.iter().map(|row| row[i].len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..4).map(width).collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (cell, w) in row.iter().zip(&widths) {
                line.push_str(&format!("{cell:<w$}  "));
            }
            line.push_str(&row[4]);
            format!("{}\n", line.trim_end())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use scim_sync::secret::Secret;

    #[test]
    fn redact_masks_the_secret() {
        let auth = Auth::Token(Secret::new("hunter2"));
        assert_eq!(redact("bad token hunter2", &auth), "bad token ***");
    }

    #[test]
    fn table_aligns_its_columns() {
        let r = TestResult {
            name: "scim".into(),
            enabled: true,
            object_types: vec!["account".into(), "group".into()],
            ok: true,
            error: None,
        };
        assert_eq!(
            table(&r),
            "NAME  ENABLED  OBJECT TYPES   OK    ERROR\nscim  true     account,group  true\n"
        );
    }
}
