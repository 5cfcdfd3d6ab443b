//! Object sets: where a mapping reads its sources and targets and writes its
//! changes. scimd's own store (implemented by scimd over its service layer, so
//! validation, scripts and the change feed apply) and remote SCIM providers
//! ([`crate::remote::RemoteSet`]) look the same to a run.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};
use scim_sync::config::ObjectKind;
use scim_sync::ops::PatchOp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why an object operation failed; what a run does next depends on which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// 409: an object with this unique value exists (a create finds and links it).
    #[error("{0}")]
    Conflict(String),
    /// 403, or credentials refused: the run stops, every further call would fail.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The changes since a mark are no longer kept: read everything instead.
    #[error("{0}")]
    Gone(String),
    /// Anything else: recorded for the object, the run goes on.
    #[error("{0}")]
    Failed(String),
}

/// Where an object set's changes are read from next (stored with the run that
/// took it, so the next live sync starts there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Mark {
    /// A position of scimd's change feed (None: the feed was empty).
    Feed { position: Option<String> },
    /// A remote's clock reading: objects with `meta.lastModified` from then on.
    Time { at: DateTime<Utc> },
}

/// An object as a recon lists it first: its id and `meta.version` (if shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: String,
    pub version: Option<String>,
}

/// The objects of one kind that changed since a mark.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changed {
    /// Objects created or modified, as they are now.
    pub changed: Vec<Value>,
    /// Ids of objects deleted (only sets with a change feed know them).
    pub deleted: Vec<String>,
}

#[async_trait]
pub trait ObjectSet: Send + Sync {
    /// Every object of `kind` (matching `filter`, a SCIM filter, when given),
    /// with only `attributes` (top-level names; `id` always) unless it is empty.
    async fn list(
        &self,
        kind: ObjectKind,
        filter: Option<&str>,
        attributes: &[String],
    ) -> Result<Vec<Value>, ObjectError>;

    /// The object, or None when there is none with this id.
    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Option<Value>, ObjectError>;

    /// Create; the object as stored (with its `id`) comes back.
    async fn create(&self, kind: ObjectKind, doc: &Value) -> Result<Value, ObjectError>;

    /// Create each of `docs`: one result per document, in their order, each with
    /// at least the new `id`. A set that can send many in one request (a remote
    /// with Bulk) does; by default they are created one by one, all at once.
    async fn create_many(
        &self,
        kind: ObjectKind,
        docs: &[Value],
    ) -> Vec<Result<Value, ObjectError>> {
        create_each(self, kind, docs).await
    }

    /// Every object of `kind` as its id and `meta.version` only: what a recon
    /// compares with the links' stamps before it reads anything whole.
    async fn versions(&self, kind: ObjectKind) -> Result<Vec<Listed>, ObjectError> {
        let docs = self.list(kind, None, &["meta.version".to_string()]).await?;
        Ok(docs
            .iter()
            .filter_map(|d| {
                Some(Listed {
                    id: id_of(d)?.to_string(),
                    version: scim_sync::links::version_of(d).map(str::to_string),
                })
            })
            .collect())
    }

    /// Objects of `kind` with these ids (those that exist), with only
    /// `attributes` unless it is empty: a few searches by id, not a request each.
    async fn get_many(
        &self,
        kind: ObjectKind,
        ids: &[String],
        attributes: &[String],
    ) -> Result<Vec<Value>, ObjectError> {
        let filters: Vec<String> = ids.chunks(IDS_PER_SEARCH).map(id_filter).collect();
        let parts: Vec<Vec<Value>> = futures_util::stream::iter(filters)
            .map(|f| async move { self.list(kind, Some(&f), attributes).await })
            .buffered(4)
            .try_collect()
            .await?;
        Ok(parts.concat())
    }

    /// Apply these operations (PATCH, or PUT of the result where the set is
    /// configured so); the object's version afterwards, when the set says.
    async fn update(
        &self,
        kind: ObjectKind,
        id: &str,
        ops: &[PatchOp],
    ) -> Result<Option<String>, ObjectError>;

    async fn delete(&self, kind: ObjectKind, id: &str) -> Result<(), ObjectError>;

    /// Where changes are read from after now.
    async fn mark(&self) -> Result<Mark, ObjectError>;

    /// What changed of `kind` since `mark` (a mark of this set).
    async fn changed_since(&self, kind: ObjectKind, mark: &Mark) -> Result<Changed, ObjectError>;
}

/// Ids per search of `get_many`: the filter stays well inside a URL's limits.
const IDS_PER_SEARCH: usize = 40;

/// A filter matching objects with any of these ids.
fn id_filter(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("id eq {}", quote(id)))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// `docs` created one request each, all at once.
pub(crate) async fn create_each<S: ObjectSet + ?Sized>(
    set: &S,
    kind: ObjectKind,
    docs: &[Value],
) -> Vec<Result<Value, ObjectError>> {
    futures_util::future::join_all(docs.iter().map(|d| set.create(kind, d))).await
}

/// A SCIM filter literal: the value quoted, `"` and `\` escaped.
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The `id` of an object.
pub(crate) fn id_of(doc: &Value) -> Option<&str> {
    doc.get("id").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_quotes_and_backslashes() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn marks_round_trip_as_json() {
        let m = Mark::Feed {
            position: Some("s:9".into()),
        };
        let text = serde_json::to_string(&m).expect("json");
        assert_eq!(text, r#"{"type":"feed","position":"s:9"}"#);
        assert_eq!(serde_json::from_str::<Mark>(&text).expect("back"), m);
    }
}
