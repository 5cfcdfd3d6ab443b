//! What the service layer hands to and gets from a store.

use chrono::{DateTime, Utc};
use scim_proto::filter::{AttrPath, Filter};
use scim_proto::schema::ResourceTypeDef;
use serde_json::Value;
use std::fmt;

/// A resource as stored: the canonical document (with `id`, `meta`) and its version.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    pub id: String,
    pub rtype: String,
    pub doc: Value,
    pub version: i64,
}

/// A group member row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    /// "User" or "Group".
    pub kind: String,
}

/// A member with what a response shows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub id: String,
    pub kind: String,
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

/// One resource write (create or replace). `doc` is complete: id and meta are set.
#[derive(Debug, Clone)]
pub struct Write {
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
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    Ascending,
    Descending,
}

/// A validated search over one resource type.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub filter: Option<Filter>,
    pub sort_by: Option<AttrPath>,
    pub sort_order: SortOrder,
    /// 1-based, as in SCIM.
    pub start_index: u64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub total: u64,
    pub resources: Vec<StoredResource>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NotFound,
    /// The unique key is taken by another resource.
    Uniqueness,
    /// `If-Match` version did not match.
    VersionMismatch,
    /// The query could not be compiled (bad attribute for this backend, …).
    Query(scim_proto::ScimError),
    Backend(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound => f.write_str("not found"),
            StoreError::Uniqueness => f.write_str("unique value already taken"),
            StoreError::VersionMismatch => f.write_str("version mismatch"),
            StoreError::Query(e) => write!(f, "query: {e}"),
            StoreError::Backend(e) => write!(f, "storage backend: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;

/// The storage operations the service needs; one implementation per backend.
/// Every write is one transaction and durable when the call returns.
pub trait Store: Send + Sync {
    fn create(&self, rt: &ResourceTypeDef, write: Write) -> StoreResult<StoredResource>;

    fn get(&self, rt: &ResourceTypeDef, id: &str) -> StoreResult<StoredResource>;

    /// Replace the document; `if_version` makes it conditional (ETag If-Match).
    fn replace(
        &self,
        rt: &ResourceTypeDef,
        write: Write,
        if_version: Option<i64>,
    ) -> StoreResult<StoredResource>;

    /// Delete the resource and every membership row naming it.
    fn delete(&self, rt: &ResourceTypeDef, id: &str, if_version: Option<i64>) -> StoreResult<()>;

    fn search(&self, rt: &ResourceTypeDef, query: &Query) -> StoreResult<Page>;

    /// Members of a group; display names joined in the same query when asked.
    fn members(&self, group_id: &str, with_display: bool) -> StoreResult<Vec<MemberView>>;

    /// Groups that contain `member_id` directly or through nested groups, with
    /// their display names (RFC 7643 §4.1.2 `groups`, type direct/indirect).
    fn groups_of(&self, member_id: &str) -> StoreResult<Vec<GroupRef>>;

    /// Which of these ids are members of the group.
    fn members_among(&self, group_id: &str, ids: &[String]) -> StoreResult<Vec<String>>;

    /// Which of these ids exist, and as what resource type.
    fn existing(&self, ids: &[String]) -> StoreResult<Vec<Member>>;
}

/// Timestamps in columns and in the index: UTC, fixed width, microseconds, so that
/// text order is time order on every backend.
pub fn db_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}
