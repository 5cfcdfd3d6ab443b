//! What the service layer hands to and gets from a store.

use chrono::{DateTime, Utc};
use scim_proto::filter::{AttrPath, Filter};
use serde_json::Value;

/// A resource as stored: the canonical document (with `id`, `meta`) and its version.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    pub id: String,
    pub rtype: String,
    pub doc: Value,
    pub version: i64,
}

/// What a group member is (the `member_type` column, a member's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum MemberKind {
    User,
    Group,
}

impl MemberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::User => "User",
            MemberKind::Group => "Group",
        }
    }

    /// A stored or sent `type` (exact, as RFC 7643 §4.2 names them).
    pub fn parse(s: &str) -> Option<MemberKind> {
        match s {
            "User" => Some(MemberKind::User),
            "Group" => Some(MemberKind::Group),
            _ => None,
        }
    }

    /// The endpoint a member's `$ref` points into.
    pub fn endpoint(self) -> &'static str {
        match self {
            MemberKind::User => "/Users",
            MemberKind::Group => "/Groups",
        }
    }
}

#[cfg(feature = "sqlite")]
impl rusqlite::types::FromSql for MemberKind {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let s = v.as_str()?;
        MemberKind::parse(s).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(
                format!("stored member type '{s}' is not User or Group").into(),
            )
        })
    }
}

#[cfg(feature = "sqlite")]
impl rusqlite::ToSql for MemberKind {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
    }
}

#[cfg(feature = "postgres")]
impl<'a> postgres::types::FromSql<'a> for MemberKind {
    fn from_sql(
        ty: &postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let s = <&str as postgres::types::FromSql>::from_sql(ty, raw)?;
        MemberKind::parse(s)
            .ok_or_else(|| format!("stored member type '{s}' is not User or Group").into())
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        <&str as postgres::types::FromSql>::accepts(ty)
    }
}

/// A group member row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    pub id: String,
    pub kind: MemberKind,
}

/// A member with what a response shows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub id: String,
    pub kind: MemberKind,
    pub display: Option<String>,
}

/// A group a resource belongs to, directly or through nested groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub id: String,
    pub display: Option<String>,
    pub direct: bool,
}

/// Membership changes that ride along with a resource write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// Leave the member rows as they are.
    Keep,
    /// Make the member set exactly this.
    Replace(Vec<Member>),
    /// Add and remove only these (cost proportional to the change, not the group).
    Delta {
        add: Vec<Member>,
        remove: Vec<String>,
    },
}

/// Password hash handling on a write; the store never sees a clear-text password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretChange {
    Keep,
    Set(String),
}

impl SecretChange {
    /// The new hash, if the write sets one.
    pub fn new_hash(&self) -> Option<&str> {
        match self {
            SecretChange::Set(h) => Some(h),
            SecretChange::Keep => None,
        }
    }
}

/// Who made a write, recorded with its change (the audit trail).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Actor {
    /// The OAuth client id, an admin user (`admin:NAME`), or what wrote without
    /// a request (`import`, `sync`); None in bypass mode.
    pub principal: Option<String>,
    /// The request's id (`X-Request-Id`).
    pub request_id: Option<String>,
    /// The address the request came from.
    pub source_ip: Option<String>,
}

impl Actor {
    /// A write made by scimd itself (an import, the sync engine): no request.
    pub fn system(what: &str) -> Actor {
        Actor {
            principal: Some(what.to_string()),
            ..Actor::default()
        }
    }
}

/// A change-log row to write: what happened to which resource, when, by whom.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewChange<'a> {
    pub(crate) id: &'a str,
    pub(crate) rtype: &'a str,
    pub(crate) op: ChangeOp,
    pub(crate) version: i64,
    pub(crate) at: DateTime<Utc>,
    pub(crate) actor: &'a Actor,
}

/// What the audit trail lists: writes of one resource, of one principal,
/// and/or since a time; newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteQuery {
    pub resource: Option<String>,
    pub principal: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: usize,
}

/// One write in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteRecord {
    pub at: String,
    pub op: String,
    pub resource_type: String,
    pub resource_id: String,
    pub version: i64,
    pub principal: Option<String>,
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
}

/// Most entries one audit query returns.
pub const MAX_AUDIT_ENTRIES: usize = 1000;

/// One resource write (create or replace). `doc` is complete: id and meta are set.
#[derive(Debug, Clone)]
pub struct ResourceWrite {
    pub id: String,
    pub doc: Value,
    /// The value that must be unique per resource type (lower-cased userName for Users).
    pub unique_key: Option<String>,
    /// What member lists show for this resource (its displayName).
    pub display: Option<String>,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub secret: SecretChange,
    pub members: MemberChange,
    /// Who makes it.
    pub actor: Actor,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    Ascending,
    Descending,
}

/// Where a row stands in a search's order: the text form of its sort value
/// (`None` when it has none) and its id. Cursor paging (RFC 9865) continues from it,
/// so resources created or deleted during a walk never shift the pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub value: Option<String>,
    pub id: String,
}

/// A validated search over one resource type.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Cursor paging: only rows after this key (`start_index` is then ignored).
    pub after: Option<SortKey>,
    /// Cursor paging backwards: the `count` rows just before this key.
    pub before: Option<SortKey>,
    pub filter: Option<Filter>,
    pub sort_by: Option<AttrPath>,
    pub sort_order: SortOrder,
    /// 1-based, as in SCIM.
    pub start_index: u64,
    pub count: u64,
    /// The caller shows nothing of the documents but their `schemas` (a
    /// listing of ids and versions): the page parses only that of each.
    pub schemas_only: bool,
}

impl Query {
    /// Whether the filter finds its rows by equality lookups (a few rows whatever
    /// the directory's size), so the search need not wait behind scans.
    pub fn is_lookup(&self) -> bool {
        self.filter.as_ref().is_some_and(crate::sql::is_lookup)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub total: u64,
    pub resources: Vec<StoredResource>,
    /// The sort key of each resource, in the same order.
    pub keys: Vec<SortKey>,
}

/// What happened to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    Created,
    Updated,
    Deleted,
}

impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Created => "created",
            ChangeOp::Updated => "updated",
            ChangeOp::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeOp> {
        match s {
            "created" => Some(ChangeOp::Created),
            "updated" => Some(ChangeOp::Updated),
            "deleted" => Some(ChangeOp::Deleted),
            _ => None,
        }
    }
}

/// One committed write, as the change feed reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub op: ChangeOp,
    pub id: String,
    pub rtype: String,
    pub version: i64,
    /// When the write committed (the `db_time` text form).
    pub at: String,
    /// The document as written; `None` for a deletion (a tombstone).
    pub doc: Option<Value>,
}

/// A page of the change feed and the position after it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePage {
    pub changes: Vec<Change>,
    /// Backend position to continue from (opaque to callers).
    pub next: String,
    /// True when more changes were already committed past this page.
    pub more: bool,
}

/// What a store call can fail with; the service maps it to a SCIM error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The unique key is taken by another resource.
    #[error("unique value already taken")]
    Uniqueness,
    /// `If-Match` version did not match.
    #[error("version mismatch")]
    VersionMismatch,
    /// A change-feed position is malformed, or older than the retained changes.
    #[error("change feed position: {0}")]
    BadCursor(String),
    /// The query could not be compiled (bad attribute for this backend, …).
    #[error("query: {0}")]
    Query(#[source] scim_proto::ScimError),
    #[error("storage backend: {0}")]
    Backend(String),
    /// The database cannot be reached (or is restarting), or a write gave up:
    /// worth retrying a little later (503 with Retry-After). Nothing was written.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One resource as `scimd export` writes it and `scimd import` reads it: the
/// document plus the columns that are not in it. Index rows are not exported;
/// they are derived from the document again on import.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExportRecord {
    pub id: String,
    pub rtype: String,
    pub version: i64,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// Password hash (never a clear-text password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// A group's members, in the order the group lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
    pub doc: Value,
}

/// An interception script as stored (`scimd scripts …`, `/admin/scripts`): what
/// the operator manages, and the last error it caused at run time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScriptRecord {
    /// Unique regardless of case; kept as given.
    pub name: String,
    /// Scripts run in ascending order (ties: by name).
    pub order: i64,
    pub enabled: bool,
    pub source: String,
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// The last load or runtime error (cleared when the script is replaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<DateTime<Utc>>,
}

/// Timestamps in columns and in the index: UTC, fixed width, microseconds, so that
/// text order is time order on every backend.
/// How long one search (its page and its count) may hold a reader by default.
/// A filter that cannot be answered from an index in that time (a substring of
/// fewer than three characters at a million users, say) answers 400 tooMany
/// rather than keep a reader from the requests queued behind it.
pub const DEFAULT_SEARCH_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// Ready when the database has `applied` migration steps of this build's
/// `known` (more is a newer build's database: also ready, it is compatible).
pub fn migrations_applied(applied: i64, known: usize) -> crate::StoreResult<()> {
    if applied >= i64::try_from(known).unwrap_or(i64::MAX) {
        Ok(())
    } else {
        Err(crate::StoreError::Backend(format!(
            "{applied} of {known} migrations applied"
        )))
    }
}

/// Longest a PostgreSQL write transaction may take (`PostgresOptions`); a
/// foreign transaction holds the change feed back by at most this plus a margin.
pub const DEFAULT_MAX_WRITE_DURATION: std::time::Duration = std::time::Duration::from_secs(20);

/// The error of a search stopped at its budget (RFC 7644 §3.12 tooMany).
pub fn over_budget(budget: std::time::Duration) -> crate::StoreError {
    crate::StoreError::Query(scim_proto::ScimError::too_many(format!(
        "the search needs more than its budget of {} ms: use a more selective \
         filter (eq, sw, or co/ew with at least 3 characters that few values contain)",
        budget.as_millis()
    )))
}

pub fn db_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A `db_time` column value back as an instant.
pub fn parse_db_time(s: &str) -> StoreResult<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| StoreError::Backend(format!("stored time '{s}' does not parse: {e}")))
}

/// The write an imported record amounts to, for its index and member rows.
pub fn import_write(rec: &ExportRecord) -> ResourceWrite {
    ResourceWrite {
        id: rec.id.clone(),
        doc: rec.doc.clone(),
        unique_key: rec.unique_key.clone(),
        display: rec.display.clone(),
        created: rec.created,
        modified: rec.modified,
        secret: match &rec.secret {
            Some(h) => SecretChange::Set(h.clone()),
            None => SecretChange::Keep,
        },
        members: MemberChange::Replace(rec.members.clone()),
        actor: Actor::system("import"),
    }
}

/// One row of a page query: id, document text, version, sort key text.
/// (id, document, version, sort key, total of the matches when the page query counted them).
pub(crate) type PageRow = (String, String, i64, Option<String>, Option<i64>);

/// A search's total when the page tells it: a short first page, or a page whose
/// rows carry their count (`sql::search_sql`); `None`: run the count query.
pub(crate) fn page_total(q: &Query, rows: &[PageRow]) -> Option<i64> {
    total_from_page(q, rows.len()).or_else(|| rows.first().and_then(|r| r.4))
}

/// A stored document reduced to its `schemas`: the rest is skipped, not built.
fn schemas_of(doc: &str) -> Result<serde_json::Value, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Schemas {
        #[serde(default)]
        schemas: Option<serde_json::Value>,
    }
    let s: Schemas = serde_json::from_str(doc)?;
    let mut out = serde_json::Map::new();
    if let Some(v) = s.schemas {
        out.insert("schemas".into(), v);
    }
    Ok(serde_json::Value::Object(out))
}

/// A page from the rows of `sql::search_sql`'s page query (reversed back into
/// order when the query walked backwards).
pub(crate) fn assemble_page(
    rtype: &str,
    total: i64,
    mut rows: Vec<PageRow>,
    reversed: bool,
    schemas_only: bool,
) -> StoreResult<Page> {
    if reversed {
        rows.reverse();
    }
    let mut resources = Vec::with_capacity(rows.len());
    let mut keys = Vec::with_capacity(rows.len());
    for (id, doc, version, key, _) in rows {
        keys.push(SortKey {
            value: key,
            id: id.clone(),
        });
        let doc = if schemas_only {
            schemas_of(&doc)
        } else {
            serde_json::from_str(&doc)
        };
        resources.push(StoredResource {
            doc: doc.map_err(|e| {
                StoreError::Backend(format!("stored document is not valid JSON: {e}"))
            })?,
            id,
            rtype: rtype.to_string(),
            version,
        });
    }
    Ok(Page {
        total: u64::try_from(total).unwrap_or(0),
        resources,
        keys,
    })
}

/// The total of an index-paged search when the page itself shows it: a short page
/// (fewer rows than asked) that is not past the end ends the result set, so the
/// count query can be skipped — it costs as much as the page for an eq filter.
pub(crate) fn total_from_page(q: &Query, rows: usize) -> Option<i64> {
    let rows = rows as u64;
    let paged_by_index = q.after.is_none() && q.before.is_none();
    let short = q.count > 0 && rows < q.count;
    let not_past_end = rows > 0 || q.start_index <= 1;
    (paged_by_index && short && not_past_end)
        .then(|| i64::try_from(q.start_index.saturating_sub(1) + rows).unwrap_or(i64::MAX))
}

/// The columns of a script row (`statements::LIST_SCRIPTS`), as either backend
/// reads them: name, order, enabled, source, properties (JSON), created, updated,
/// last error, last error time.
pub(crate) type ScriptRow = (
    String,
    i64,
    bool,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

/// A script row as a record.
pub(crate) fn script_record(row: ScriptRow) -> StoreResult<ScriptRecord> {
    let (name, order, enabled, source, properties, created, updated, last_error, last_error_at) =
        row;
    Ok(ScriptRecord {
        name,
        order,
        enabled,
        source,
        properties: serde_json::from_str(&properties).map_err(|e| {
            StoreError::Backend(format!("stored script properties are not valid JSON: {e}"))
        })?,
        created: parse_db_time(&created)?,
        updated: parse_db_time(&updated)?,
        last_error,
        last_error_at: last_error_at.as_deref().map(parse_db_time).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(start_index: u64, count: u64) -> Query {
        Query {
            start_index,
            count,
            ..Query::default()
        }
    }

    #[test]
    fn a_short_page_tells_the_total() {
        assert_eq!(total_from_page(&q(1, 10), 3), Some(3));
        assert_eq!(total_from_page(&q(1, 10), 0), Some(0));
        assert_eq!(total_from_page(&q(21, 10), 4), Some(24));
        // A full page, a page past the end, count=0 and cursor pages need the count.
        assert_eq!(total_from_page(&q(1, 10), 10), None);
        assert_eq!(total_from_page(&q(50, 10), 0), None);
        assert_eq!(total_from_page(&q(1, 0), 0), None);
        let cursor = Query {
            after: Some(SortKey {
                value: None,
                id: "x".into(),
            }),
            ..q(1, 10)
        };
        assert_eq!(total_from_page(&cursor, 3), None);
    }
}
