//! A remote SCIM provider as an object set, through scim-client: paged
//! searches, PATCH (or PUT) in the connector's wire form, and retries of 429 and
//! 5xx with backoff (the client's). Also the connection test.

use crate::objects::{create_each, id_of, quote, Changed, Listed, Mark, ObjectError, ObjectSet};
use async_trait::async_trait;
use chrono::{TimeDelta, Utc};
use futures_util::TryStreamExt;
use scim_client::{
    BulkOperation, BulkResult, Client, ClientCredentials, Patch, Resources, RetryPolicy,
    SearchRequest,
};
use scim_proto::schema::SchemaRegistry;
use scim_sync::config::{Auth, Connector, ObjectKind, UpdateMethod};
use scim_sync::links::version_of;
use scim_sync::ops::{patch_request, PatchOp};
use scim_sync::secret::SecretLookup;
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How far back a live sync of a remote looks before its last mark: remotes
/// stamp `lastModified` with their own clock, often to the second.
pub const OVERLAP: TimeDelta = TimeDelta::seconds(60);

/// Searches that read a large object set at once, and from how many objects.
const READERS: u32 = 2;
const PARALLEL_FROM: u64 = 5000;

/// How long one request of the connection test may take.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one request of a run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Secrets from the process environment and files; a relative `$file` path is
/// relative to the sync directory.
#[derive(Debug, Clone)]
pub struct DirLookup {
    pub dir: PathBuf,
}

impl SecretLookup for DirLookup {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn file(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(self.dir.join(path)).map_err(|e| e.to_string())
    }
}

/// A client for `endpoint` with these credentials.
fn client(
    endpoint: &str,
    auth: &Auth,
    timeout: Duration,
    retry: RetryPolicy,
) -> scim_client::Result<Client> {
    let builder = Client::builder(endpoint)
        .timeout(timeout)
        .connect_timeout(TEST_TIMEOUT)
        .retry(retry);
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

/// One connector's test result, as the REST API and `--json` show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    pub name: String,
    pub enabled: bool,
    pub object_types: Vec<String>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Discover the remote (ServiceProviderConfig, ResourceTypes) and count its Users
/// with the connector's credentials. A failure is `ok: false` with a one-line
/// error that never holds a secret.
pub async fn test_connector(connector: &Connector, dir: &Path) -> TestResult {
    let mut result = TestResult {
        name: connector.name.clone(),
        enabled: connector.enabled,
        object_types: Vec::new(),
        ok: false,
        error: None,
    };
    let lookup = DirLookup {
        dir: dir.to_path_buf(),
    };
    let auth = match connector.resolve_auth(&lookup) {
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
    let client =
        client(endpoint, auth, TEST_TIMEOUT, RetryPolicy::none()).map_err(|e| e.to_string())?;
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

/// A remote provider as an object set.
pub struct RemoteSet {
    /// Whether the remote serves scimd's `/Changes` feed to these credentials
    /// (asked once).
    feed: std::sync::OnceLock<bool>,
    client: Client,
    auth: Auth,
    connector: Connector,
    registry: Arc<SchemaRegistry>,
}

impl RemoteSet {
    /// Connect as `connector` says, its secrets resolved through `lookup`; the
    /// registry checks documents built for PUT.
    pub fn new(
        connector: &Connector,
        lookup: &dyn SecretLookup,
        registry: Arc<SchemaRegistry>,
    ) -> Result<RemoteSet, String> {
        let auth = connector.resolve_auth(lookup)?;
        let client = client(
            &connector.endpoint,
            &auth,
            RUN_TIMEOUT,
            RetryPolicy::default(),
        )
        .map_err(|e| format!("connector '{}': {e}", connector.name))?;
        Ok(RemoteSet {
            feed: std::sync::OnceLock::new(),
            client,
            auth,
            connector: connector.clone(),
            registry,
        })
    }

    fn resources(&self, kind: ObjectKind) -> Resources<Value> {
        self.client.resources(endpoint(kind))
    }

    /// Whether the remote takes Bulk requests (its ServiceProviderConfig,
    /// read once by the client).
    async fn has_bulk(&self) -> bool {
        matches!(self.client.discover().await, Ok(caps) if caps.bulk.is_some())
    }

    /// What one bulk POST gave: the created object (at least its `id`), or the
    /// error as a single create would have given it.
    fn bulk_created(&self, r: Option<BulkResult>) -> Result<Value, ObjectError> {
        let Some(r) = r else {
            return Err(ObjectError::Failed(
                "the remote did not run the create".into(),
            ));
        };
        if let Some(e) = r.error() {
            return Err(self.error(&e));
        }
        let id = r.id().map(str::to_string);
        match (r.response, id) {
            (Some(doc), _) if doc.get("id").is_some() => Ok(doc),
            (_, Some(id)) => Ok(match r.version {
                Some(v) => serde_json::json!({ "id": id, "meta": { "version": v } }),
                None => serde_json::json!({ "id": id }),
            }),
            _ => Err(ObjectError::Failed(
                "the remote's bulk answer has no location".into(),
            )),
        }
    }

    /// A client error as the run sees it, never holding the secret.
    fn error(&self, e: &scim_client::Error) -> ObjectError {
        let text = redact(&one_line(&e.to_string()), &self.auth);
        match (e, e.status()) {
            (scim_client::Error::Auth { .. }, _) | (_, Some(401 | 403)) => {
                ObjectError::Forbidden(text)
            }
            (_, Some(409)) => ObjectError::Conflict(text),
            (_, Some(404)) => ObjectError::NotFound(text),
            (_, Some(410)) => ObjectError::Gone(text),
            _ => ObjectError::Failed(text),
        }
    }

    async fn put(
        &self,
        kind: ObjectKind,
        id: &str,
        ops: &[PatchOp],
    ) -> Result<Option<String>, ObjectError> {
        let res = self.resources(kind);
        let current = res.get(id).await.map_err(|e| self.error(&e))?;
        let rt = self
            .registry
            .resource_type(kind.resource_type())
            .ok_or_else(|| ObjectError::Failed(format!("no {} type", kind.resource_type())))?;
        let request = patch_request(ops, scim_sync::config::Quirks::Standard);
        let mut doc = scim_proto::patch::apply_patch(&self.registry, rt, &current, &request)
            .map_err(|e| ObjectError::Failed(format!("building the PUT: {}", e.detail)))?;
        if let Some(o) = doc.as_object_mut() {
            o.remove("meta");
        }
        res.replace(id, &doc, None)
            .await
            .map(|doc| version_of(&doc).map(str::to_string))
            .map_err(|e| self.error(&e))
    }
}

#[async_trait]
impl ObjectSet for RemoteSet {
    async fn list(
        &self,
        kind: ObjectKind,
        filter: Option<&str>,
        attributes: &[String],
    ) -> Result<Vec<Value>, ObjectError> {
        let res = self.resources(kind);
        let q = SearchRequest {
            attributes: attributes.to_vec(),
            count: Some(self.connector.page_size),
            ..SearchRequest::default()
        };
        let total = res.count(filter).await.map_err(|e| self.error(&e))?;
        // Large sets are read by a few searches at once: the remote renders one
        // page while this side decodes another.
        let ranges = if total >= PARALLEL_FROM {
            res.partitions(filter, total, READERS).await
        } else {
            vec![filter.map(str::to_string)]
        };
        let searches = ranges.into_iter().map(|filter| {
            res.search(SearchRequest {
                filter,
                ..q.clone()
            })
            .try_collect::<Vec<Value>>()
        });
        let parts = futures_util::future::try_join_all(searches)
            .await
            .map_err(|e| self.error(&e))?;
        Ok(parts.concat())
    }

    /// One cursor walk, not the ranges `list` reads at once: a page of ids and
    /// versions costs the remote a few milliseconds, a page inside a
    /// `meta.created` range about twice that, so parallel ranges only add work.
    async fn versions(&self, kind: ObjectKind) -> Result<Vec<Listed>, ObjectError> {
        let q = SearchRequest {
            attributes: vec!["meta.version".to_string()],
            count: Some(self.connector.page_size),
            ..SearchRequest::default()
        };
        self.resources(kind)
            .search(q)
            .map_err(|e| self.error(&e))
            .try_filter_map(|d| async move {
                Ok(id_of(&d).map(|id| Listed {
                    id: id.to_string(),
                    version: version_of(&d).map(str::to_string),
                }))
            })
            .try_collect()
            .await
    }

    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Option<Value>, ObjectError> {
        match self.resources(kind).get(id).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(self.error(&e)),
        }
    }

    async fn create(&self, kind: ObjectKind, doc: &Value) -> Result<Value, ObjectError> {
        self.resources(kind)
            .create(doc)
            .await
            .map_err(|e| self.error(&e))
    }

    /// One Bulk request per the remote's `maxOperations` instead of a POST per
    /// object, where the remote has Bulk.
    async fn create_many(
        &self,
        kind: ObjectKind,
        docs: &[Value],
    ) -> Vec<Result<Value, ObjectError>> {
        if docs.len() < 2 || !self.has_bulk().await {
            return create_each(self, kind, docs).await;
        }
        let ops = docs
            .iter()
            .enumerate()
            .map(|(i, d)| BulkOperation::post(endpoint(kind), format!("c{i}"), d.clone()))
            .collect();
        match self.client.bulk(ops, None).await {
            Ok(results) => {
                let mut by_id: std::collections::HashMap<String, BulkResult> = results
                    .into_iter()
                    .filter_map(|r| Some((r.bulk_id.clone()?, r)))
                    .collect();
                (0..docs.len())
                    .map(|i| self.bulk_created(by_id.remove(&format!("c{i}"))))
                    .collect()
            }
            Err(e) => {
                let e = self.error(&e);
                docs.iter().map(|_| Err(e.clone())).collect()
            }
        }
    }

    async fn update(
        &self,
        kind: ObjectKind,
        id: &str,
        ops: &[PatchOp],
    ) -> Result<Option<String>, ObjectError> {
        if self.connector.update_method == UpdateMethod::Put {
            return self.put(kind, id, ops).await;
        }
        let body = patch_request(ops, self.connector.quirks);
        let mut patch = Patch::new();
        for op in body["Operations"].as_array().into_iter().flatten() {
            patch = patch.operation(op.clone());
        }
        self.resources(kind)
            .patch(id, &patch, None)
            .await
            .map(|doc| doc.as_ref().and_then(version_of).map(str::to_string))
            .map_err(|e| self.error(&e))
    }

    async fn delete(&self, kind: ObjectKind, id: &str) -> Result<(), ObjectError> {
        match self.resources(kind).delete(id, None).await {
            Ok(()) => Ok(()),
            // Gone already: what a delete wants.
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(self.error(&e)),
        }
    }

    /// The end of the remote's change feed when it has one (a scimd), else the
    /// time.
    async fn mark(&self) -> Result<Mark, ObjectError> {
        let at = Utc::now();
        if self.feed.get() == Some(&false) {
            return Ok(Mark::Time { at });
        }
        match self.client.changes_head().await {
            Ok(position) => {
                let _ = self.feed.set(true);
                Ok(Mark::Feed {
                    position: Some(position),
                })
            }
            // No feed here, or not for these credentials: asked once.
            Err(e)
                if self.feed.get().is_none()
                    && e.status().is_some_and(|s| (400..500).contains(&s)) =>
            {
                let _ = self.feed.set(false);
                Ok(Mark::Time { at })
            }
            Err(e) => Err(self.error(&e)),
        }
    }

    async fn changed_since(&self, kind: ObjectKind, mark: &Mark) -> Result<Changed, ObjectError> {
        let at = match mark {
            Mark::Time { at } => at,
            Mark::Feed { position } => return self.feed_since(kind, position.clone()).await,
        };
        let since = (*at - OVERLAP).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let filter = format!("meta.lastModified ge {}", quote(&since));
        Ok(Changed {
            changed: self.list(kind, Some(&filter), &[]).await?,
            deleted: Vec::new(),
        })
    }
}

impl RemoteSet {
    /// What the remote's `/Changes` feed has of `kind` after `position`: the
    /// last change of each object decides (its document as the feed has it, or
    /// gone).
    async fn feed_since(
        &self,
        kind: ObjectKind,
        position: Option<String>,
    ) -> Result<Changed, ObjectError> {
        let changes: Vec<scim_client::Change> = self
            .client
            .changes(position)
            .try_collect()
            .await
            .map_err(|e| self.error(&e))?;
        let mut last: std::collections::HashMap<String, Option<Value>> =
            std::collections::HashMap::new();
        for c in changes
            .into_iter()
            .filter(|c| c.resource_type == kind.resource_type())
        {
            let doc = if c.is_delete() { None } else { c.resource };
            last.insert(c.id, doc);
        }
        let mut out = Changed::default();
        for (id, doc) in last {
            match doc {
                Some(d) => out.changed.push(d),
                None => out.deleted.push(id),
            }
        }
        Ok(out)
    }
}

/// The remote's endpoint of a kind.
fn endpoint(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::User => "/Users",
        ObjectKind::Group => "/Groups",
    }
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
    fn resource_types_have_sync_names() {
        assert_eq!(object_type("User"), Some("account"));
        assert_eq!(object_type("Group"), Some("group"));
        assert_eq!(object_type("FidoDevice"), None);
    }
}
