//! The storage capabilities the service and the CLI use, one narrow trait each,
//! and `Store`, all of them together (what a backend implements and what
//! `Arc<dyn Store>` callers hold). Every write is one transaction and durable when
//! the call returns.

use crate::sync::{AuditEntry, AuditRecord, LinkRow, LinkSide, RunRecord, RunStart, RunUpdate};
use crate::{
    Actor, ChangePage, ExportRecord, GroupRef, Member, MemberView, Page, Query, ResourceWrite,
    ScriptRecord, StoreResult, StoredResource, WriteQuery, WriteRecord,
};
use chrono::{DateTime, Utc};
use scim_proto::schema::custom::CustomAttribute;
use scim_proto::schema::ResourceTypeDef;

/// Resources: create, read, replace, delete and search documents of one type.
/// Reading a resource together with its groups needs the membership capability,
/// hence the supertrait.
pub trait ResourceStore: MembershipStore + Send + Sync {
    fn create(&self, rt: &ResourceTypeDef, write: ResourceWrite) -> StoreResult<StoredResource>;

    /// Create several resources in order, each succeeding or failing on its own,
    /// durable together when the call returns (one commit where the backend can:
    /// Bulk loads pay one fsync per request, not per resource). After
    /// `max_failures` failures the remaining items are not attempted, so the answer
    /// may be shorter than `items`.
    fn create_many(
        &self,
        items: Vec<(ResourceTypeDef, ResourceWrite)>,
        max_failures: usize,
    ) -> Vec<StoreResult<StoredResource>> {
        let mut out = Vec::with_capacity(items.len());
        let mut failures = 0;
        for (rt, w) in items {
            if failures >= max_failures {
                break;
            }
            let r = self.create(&rt, w);
            failures += usize::from(r.is_err());
            out.push(r);
        }
        out
    }

    fn get(&self, rt: &ResourceTypeDef, id: &str) -> StoreResult<StoredResource>;

    /// The resource and the groups it belongs to (`groups_of`), together: one
    /// round trip where the backend is across a network.
    fn get_with_groups(
        &self,
        rt: &ResourceTypeDef,
        id: &str,
    ) -> StoreResult<(StoredResource, Vec<GroupRef>)> {
        let found = self.get(rt, id)?;
        let groups = self.groups_of(id)?;
        Ok((found, groups))
    }

    /// The resource of this type whose unique key (lower-cased userName) is `key`:
    /// one lookup of the uniqueness index, for `userName eq` searches.
    fn find_unique(&self, rt: &ResourceTypeDef, key: &str) -> StoreResult<Option<StoredResource>>;

    /// `find_unique` and the groups of what it finds, together (see
    /// `get_with_groups`).
    fn find_unique_with_groups(
        &self,
        rt: &ResourceTypeDef,
        key: &str,
    ) -> StoreResult<Option<(StoredResource, Vec<GroupRef>)>> {
        match self.find_unique(rt, key)? {
            None => Ok(None),
            Some(found) => {
                let groups = self.groups_of(&found.id)?;
                Ok(Some((found, groups)))
            }
        }
    }

    /// Whether `get`, `find_unique` and `groups_of` are local, bounded and never wait behind slow
    /// queries, so an async caller may run them in place instead of handing them to
    /// a blocking thread (the hand-off cost more than the read on SQLite).
    fn cheap_point_reads(&self) -> bool {
        false
    }

    /// Whether the database answers and has every migration of this build
    /// applied (`/health/ready`); one cheap query.
    fn ready(&self) -> StoreResult<()>;

    /// Replace the document; `if_version` makes it conditional (ETag If-Match).
    fn replace(
        &self,
        rt: &ResourceTypeDef,
        write: ResourceWrite,
        if_version: Option<i64>,
    ) -> StoreResult<StoredResource>;

    /// Delete the resource and every membership row naming it; `at` stamps the
    /// tombstone in the change feed.
    fn delete(
        &self,
        rt: &ResourceTypeDef,
        id: &str,
        if_version: Option<i64>,
        at: DateTime<Utc>,
        actor: &Actor,
    ) -> StoreResult<()>;

    fn search(&self, rt: &ResourceTypeDef, query: &Query) -> StoreResult<Page>;

    /// Which of these ids are users or groups, and which (devices and unknown
    /// ids are left out: they cannot be members).
    fn existing(&self, ids: &[String]) -> StoreResult<Vec<Member>>;

    /// The stored password hash (PHC string) of a resource, if it has one: what
    /// a console login checks; never part of a document.
    fn password_hash(&self, id: &str) -> StoreResult<Option<String>>;

    /// At most `limit` (id, version) of the resources of `rtype` with an id
    /// after `after` (None: from the start), by id in code-point order (keyset
    /// paging): what a sync run compares, without reading the documents.
    fn versions(
        &self,
        rtype: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, i64)>>;
}

/// Group membership, stored relationally beside the documents.
pub trait MembershipStore: Send + Sync {
    /// Members of a group; display names joined in the same query when asked.
    fn members(&self, group_id: &str, with_display: bool) -> StoreResult<Vec<MemberView>>;

    /// Groups that contain `member_id` directly or through nested groups, with
    /// their display names (RFC 7643 §4.1.2 `groups`, type direct/indirect).
    fn groups_of(&self, member_id: &str) -> StoreResult<Vec<GroupRef>>;

    /// Which of these ids are members of the group.
    fn members_among(&self, group_id: &str, ids: &[String]) -> StoreResult<Vec<String>>;

    /// `limit` of a group's members from `offset` on, by member id and with
    /// their display, and how many members it has: a page of a large group
    /// without reading the others.
    fn members_page(
        &self,
        group_id: &str,
        offset: usize,
        limit: usize,
    ) -> StoreResult<(u64, Vec<MemberView>)>;
}

/// The change feed: one entry per committed write.
pub trait FeedStore: Send + Sync {
    /// Committed changes after position `after` (None: from the oldest retained),
    /// in commit order, at most `limit`. Every committed change appears exactly once
    /// across consecutive pages, whatever the commit order of concurrent writers.
    fn changes(&self, after: Option<&str>, limit: usize) -> StoreResult<ChangePage>;

    /// The position of the newest committed change (None: the feed holds none):
    /// `changes` after it returns only what commits later. One index probe, so a
    /// caller can mark "now" without reading the feed.
    fn feed_head(&self) -> StoreResult<Option<String>>;

    /// Drop feed entries older than `before`; a position inside the dropped range is
    /// then refused rather than silently skipping changes.
    fn prune_changes(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    /// The audit trail: the writes `q` selects, newest first, at most
    /// `q.limit` (capped at `MAX_AUDIT_ENTRIES`), with who made them. Kept as
    /// long as the feed keeps its entries.
    fn writes(&self, q: &WriteQuery) -> StoreResult<Vec<WriteRecord>>;
}

/// Custom user attributes registered by administrators (the schema's variable part).
pub trait SchemaStore: Send + Sync {
    /// Custom user attributes registered by administrators, in registration order.
    fn custom_attributes(&self) -> StoreResult<Vec<CustomAttribute>>;

    /// Register a custom attribute; `Uniqueness` if the name (case-insensitive) exists.
    fn add_custom_attribute(&self, attr: &CustomAttribute) -> StoreResult<()>;

    /// Forget a custom attribute definition (`NotFound` if unknown). Stored values
    /// are the caller's business.
    fn remove_custom_attribute(&self, name: &str) -> StoreResult<()>;
}

/// Interception scripts, shared by every scimd process on one database.
pub trait ScriptStore: Send + Sync {
    /// Every script, in ascending order, ties by name (case-insensitive).
    fn scripts(&self) -> StoreResult<Vec<ScriptRecord>>;

    /// The script of this name (case-insensitive); `NotFound` if unknown.
    fn script(&self, name: &str) -> StoreResult<ScriptRecord>;

    /// Store a new script; `Uniqueness` if the name (case-insensitive) exists.
    fn create_script(&self, script: &ScriptRecord) -> StoreResult<()>;

    /// Replace the script of `script.name` (`NotFound` if unknown): order,
    /// enabled, source, properties and `updated`; its last error is cleared,
    /// `created` kept.
    fn replace_script(&self, script: &ScriptRecord) -> StoreResult<()>;

    /// Forget a script (`NotFound` if unknown).
    fn remove_script(&self, name: &str) -> StoreResult<()>;

    /// A value that changes with every create, replace and remove (not with a
    /// recorded error): cheap enough to poll every second for hot reload.
    fn scripts_revision(&self) -> StoreResult<i64>;

    /// Keep `message` as the script's last error, at `at` (`NotFound` if unknown).
    fn record_script_error(&self, name: &str, message: &str, at: DateTime<Utc>) -> StoreResult<()>;
}

/// Moving a deployment between databases (`scimd export` / `scimd import`).
pub trait TransferStore: Send + Sync {
    /// Every resource with everything stored about it, from one consistent
    /// snapshot, handed to `sink` one at a time (streaming: memory stays flat).
    /// Returns how many were exported.
    fn export(&self, sink: &mut dyn FnMut(ExportRecord) -> StoreResult<()>) -> StoreResult<u64>;

    /// Store these records exactly as exported (ids, versions, timestamps, password
    /// hashes, member order), in one transaction; a record whose id exists replaces
    /// it, so an interrupted import can be run again.
    fn import(&self, batch: &[ExportRecord]) -> StoreResult<()>;
}

/// The sync engine's state: link sets, runs and their audit entries.
pub trait SyncStore: Send + Sync {
    /// Link `first_id` and `second_id` in `link_set`. Each id is linked at most
    /// once per side in a link set, and the newest link wins: a link either id
    /// already had is removed in the same transaction (a relinked object's old
    /// link is stale). Calls racing to link the same id never leave two links of
    /// it: they run in turn (SQLite) or all but one may fail with `Uniqueness`
    /// (PostgreSQL, where the keys, not a lock, decide).
    fn put_link(&self, link_set: &str, first_id: &str, second_id: &str) -> StoreResult<()> {
        self.put_links(link_set, &[LinkRow::new(first_id, second_id, None)])
    }

    /// `put_link` of each link in turn (with its stamp), in one transaction (a
    /// run records the links of a bulk of creates at once).
    fn put_links(&self, link_set: &str, links: &[LinkRow]) -> StoreResult<()>;

    /// Set the stamps of these links, by `first_id`, in one transaction; a link
    /// that is gone is left gone.
    fn stamp_links(&self, link_set: &str, stamps: &[(String, Option<String>)]) -> StoreResult<()>;

    /// Remove the link whose `side` id is `id`; whether there was one.
    fn remove_link(&self, link_set: &str, side: LinkSide, id: &str) -> StoreResult<bool>;

    /// The link whose `side` id is `id`.
    fn find_link(&self, link_set: &str, side: LinkSide, id: &str) -> StoreResult<Option<LinkRow>>;

    /// At most `limit` links of the set with `first_id` after `after` (None: from
    /// the start), ordered by `first_id` in code-point order (keyset paging: pass
    /// the last `first_id` of a page to get the next).
    fn links(&self, link_set: &str, after: Option<&str>, limit: usize)
        -> StoreResult<Vec<LinkRow>>;

    fn count_links(&self, link_set: &str) -> StoreResult<u64>;

    /// Start a run in state `ACTIVE` with empty progress and summaries (`{}`).
    /// While the mapping has a run in an open state (`OPEN_RUN_STATES`) the
    /// database refuses another, and the answer is that run. `Uniqueness` if the
    /// id is taken.
    fn create_run(
        &self,
        id: &str,
        mapping: &str,
        dry_run: bool,
        started: DateTime<Utc>,
    ) -> StoreResult<RunStart>;

    /// Record what an unfinished run reports; `NotFound` if the run is unknown or
    /// finished (a finished run's record no longer changes).
    fn update_run(&self, id: &str, update: &RunUpdate) -> StoreResult<()>;

    /// Take or renew the lease of an ACTIVE run for `owner` until `until`: granted
    /// (true) when the run has no lease, `owner` holds it, or it ran out before
    /// `now`. One process at a time executes a run; a process that died leaves a
    /// lease that runs out, and the run is taken over. False for a run that is
    /// not ACTIVE (waiting, finished or unknown).
    fn claim_run(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Give up `owner`'s lease of the run (it may be claimed at once).
    fn release_run(&self, id: &str, owner: &str) -> StoreResult<()>;

    /// End an unfinished run in `state` (SUCCESS, FAILED, CANCELED) at `ended`,
    /// which frees its mapping; `NotFound` if unknown or already finished.
    fn finish_run(&self, id: &str, state: &str, ended: DateTime<Utc>) -> StoreResult<()>;

    /// `NotFound` if unknown.
    fn get_run(&self, id: &str) -> StoreResult<RunRecord>;

    /// The most recent `limit` runs (of one mapping, or of all), newest first.
    fn recent_runs(&self, mapping: Option<&str>, limit: usize) -> StoreResult<Vec<RunRecord>>;

    /// The mapping's run in an open state, if any (at most one: see `create_run`).
    fn open_run(&self, mapping: &str) -> StoreResult<Option<RunRecord>>;

    /// Append entries to a run's audit in one transaction: all of them or none.
    /// Returns the `seq` of the last (the run's entry count). `NotFound` if the
    /// run is unknown.
    fn append_audit(&self, run_id: &str, entries: &[AuditEntry]) -> StoreResult<i64>;

    /// At most `limit` audit entries of the run with `seq` after `after_seq`, in
    /// `seq` order.
    fn audit(&self, run_id: &str, after_seq: i64, limit: usize) -> StoreResult<Vec<AuditRecord>>;

    /// Delete runs that ended before `older_than`, with their audit entries (open
    /// runs are kept whatever their age); returns how many runs.
    fn prune_sync_runs(&self, older_than: DateTime<Utc>) -> StoreResult<u64>;
}

/// Every storage capability: what each backend provides.
pub trait Store:
    ResourceStore + MembershipStore + FeedStore + SchemaStore + ScriptStore + TransferStore + SyncStore
{
}

impl<T> Store for T where
    T: ResourceStore
        + MembershipStore
        + FeedStore
        + SchemaStore
        + ScriptStore
        + TransferStore
        + SyncStore
        + ?Sized
{
}
