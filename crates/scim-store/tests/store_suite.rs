//! One storage test suite, run against every backend: SQLite (a temporary file)
//! and PostgreSQL (a fresh schema in the database at `SCIMD_TEST_POSTGRES_URL`,
//! default `postgres://postgres@127.0.0.1:5432/scimd_test`).
//!
//! With `SCIMD_TEST_POSTGRES_URL` set (as `scripts/test.sh` does) the PostgreSQL
//! tests fail, loudly, when the server cannot be reached; without it they run on
//! the default server when it answers and are skipped with a notice otherwise
//! (`./scripts/ensure-postgres.sh` starts one). See `ScratchSchema::for_tests`.
//!
//! Besides the behaviour of each operation, a differential check runs random
//! documents and random filters through both backends' `search` and compares the
//! ids with the in-memory evaluator, and the order of sorted pages between backends.

// A test crate: a failed expectation should stop the test loudly.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestCaseError, TestRunner};
use scim_proto::filter::{
    matches, parse_attr_path, parse_filter, AttrPath, CompareOp, Filter, Literal,
};
use scim_proto::schema::{ResourceTypeDef, SchemaRegistry, SharedRegistry};
use scim_store::clients::{ClientRecord, ClientStore, SigningKeyRecord};
use scim_store::postgres::{PostgresOptions, PostgresStore, ScratchSchema};
use scim_store::sqlite::{SqliteClientStore, SqliteStore};
use scim_store::sync::{
    AuditEntry, AuditRecord, LinkRow, LinkSide, RunRecord, RunStart, RunUpdate,
};
use scim_store::{
    Actor, ChangeOp, ExportRecord, Member, MemberChange, MemberKind, Query, ResourceStore,
    ResourceWrite, ScriptRecord, ScriptStore, SecretChange, SortOrder, Store, StoreError,
    StoredResource, SyncStore,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A store of one backend and what must outlive it (temp dir, scratch schema).
struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    reg: Arc<SchemaRegistry>,
    _keep: Box<dyn std::any::Any + Send + Sync>,
}

fn shared(reg: &Arc<SchemaRegistry>) -> Arc<SharedRegistry> {
    Arc::new(SharedRegistry::new((**reg).clone()))
}

fn registry() -> Arc<SchemaRegistry> {
    Arc::new(SchemaRegistry::standard())
}

fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = registry();
    let store = SqliteStore::open(&dir.path().join("suite.db"), shared(&reg)).expect("open SQLite");
    Backend {
        name: "sqlite",
        store: Arc::new(store),
        reg,
        _keep: Box::new(dir),
    }
}

/// PostgreSQL's backend, or `None` when the test is skipped (see the file's head).
fn postgres() -> Option<Backend> {
    let schema = ScratchSchema::for_tests("store_suite")?;
    let reg = registry();
    let options = PostgresOptions {
        max_connections: 8,
        min_idle: 1,
        ..PostgresOptions::default()
    };
    let store = PostgresStore::open(&schema.url, shared(&reg), &options).expect("open PostgreSQL");
    Some(Backend {
        name: "postgres",
        store: Arc::new(store),
        reg,
        _keep: Box::new(schema),
    })
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $( #[test] fn $name() { super::$name(&super::sqlite()); } )*
        }
        mod postgres_backend {
            $( #[test] fn $name() {
                if let Some(b) = super::postgres() {
                    super::$name(&b);
                }
            } )*
        }
    };
}

on_every_backend!(
    create_get_replace_delete,
    user_names_are_unique_case_insensitively,
    stale_versions_are_refused,
    members_add_remove_replace_in_order,
    groups_of_follows_nesting_and_stops_at_cycles,
    members_among_and_existing,
    versions_page_by_id_without_documents,
    search_filters_sort_and_pages,
    change_feed_in_commit_order,
    export_then_import_is_lossless,
    unfiltered_totals_follow_every_write,
    concurrent_writers_lose_nothing,
    scripts_lifecycle,
    sync_links_hold_one_link_per_side,
    sync_concurrent_links_of_one_id_leave_one_link,
    sync_links_page_by_first_id,
    sync_runs_lifecycle,
    sync_run_leases_pass_only_when_free_or_run_out,
    sync_one_open_run_per_mapping_under_concurrent_creators,
    sync_audit_batches_are_atomic,
    sync_runs_are_pruned_with_their_audit,
    substring_search_follows_every_write,
    the_feed_shows_each_version_as_written,
);

// ---------------------------------------------------------------- helpers

fn script(name: &str, order: i64, source: &str) -> ScriptRecord {
    let t = now();
    ScriptRecord {
        name: name.into(),
        order,
        enabled: true,
        source: source.into(),
        properties: [("url".to_string(), "https://x".to_string())].into(),
        created: t,
        updated: t,
        last_error: None,
        last_error_at: None,
    }
}

fn scripts_lifecycle(b: &Backend) {
    // The store as the service holds it: `Arc<dyn Store>` upcast to the capability.
    let s: Arc<dyn ScriptStore> = b.store.clone();
    let n = b.name;
    assert_eq!(s.scripts().expect("list"), vec![], "{n}");
    let r0 = s.scripts_revision().expect("revision");

    let notify = script("Notify", 10, "function init(c) return true end");
    let mut attach = script("attach", 5, "-- attach");
    attach.enabled = false;
    attach.properties.clear();
    let tie = script("Alpha", 10, "-- tie");
    for sc in [&notify, &attach, &tie] {
        s.create_script(sc).expect("create");
    }
    let r1 = s.scripts_revision().expect("revision");
    assert_ne!(r0, r1, "{n}: a create changes the revision");
    // Ascending order, ties by name.
    let names: Vec<String> = s
        .scripts()
        .expect("list")
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert_eq!(names, ["attach", "Alpha", "Notify"], "{n}");
    assert_eq!(
        s.script("notify").expect("get"),
        notify,
        "{n}: case-insensitive get, lossless"
    );
    assert_eq!(s.script("ATTACH").expect("get"), attach, "{n}");
    assert_eq!(s.script("nope"), Err(StoreError::NotFound), "{n}");
    assert_eq!(
        s.create_script(&script("NOTIFY", 1, "--")),
        Err(StoreError::Uniqueness),
        "{n}: names are unique regardless of case"
    );
    assert_eq!(
        s.scripts_revision().expect("revision"),
        r1,
        "{n}: a refused write changes nothing"
    );

    // Errors are kept per script and do not change the revision.
    let at = now();
    s.record_script_error("notify", "line 3: boom", at)
        .expect("record");
    let got = s.script("Notify").expect("get");
    assert_eq!(got.last_error.as_deref(), Some("line 3: boom"), "{n}");
    assert_eq!(got.last_error_at, Some(at), "{n}");
    assert_eq!(s.scripts_revision().expect("revision"), r1, "{n}");
    assert_eq!(
        s.record_script_error("nope", "x", at),
        Err(StoreError::NotFound),
        "{n}"
    );

    // Replace keeps `created`, clears the error and bumps the revision.
    let mut changed = notify.clone();
    changed.order = 1;
    changed.enabled = false;
    changed.source = "-- v2".into();
    changed.properties.insert("k".into(), "v".into());
    changed.updated = at + TimeDelta::seconds(1);
    changed.created = at + TimeDelta::days(3);
    s.replace_script(&changed).expect("replace");
    let got = s.script("notify").expect("get");
    assert_eq!(
        got,
        ScriptRecord {
            created: notify.created,
            ..changed.clone()
        },
        "{n}"
    );
    let r2 = s.scripts_revision().expect("revision");
    assert_ne!(r2, r1, "{n}");
    let names: Vec<String> = s
        .scripts()
        .expect("list")
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert_eq!(names, ["Notify", "attach", "Alpha"], "{n}");
    assert_eq!(
        s.replace_script(&script("nope", 1, "--")),
        Err(StoreError::NotFound),
        "{n}"
    );

    s.remove_script("ALPHA").expect("remove");
    assert_eq!(s.remove_script("alpha"), Err(StoreError::NotFound), "{n}");
    let r3 = s.scripts_revision().expect("revision");
    assert_ne!(r3, r2, "{n}");
    assert_eq!(s.scripts().expect("list").len(), 2, "{n}");
}

impl Backend {
    fn rt(&self, name: &str) -> ResourceTypeDef {
        self.reg
            .resource_type(name)
            .cloned()
            .expect("resource type")
    }

    fn user(&self, name: &str) -> StoredResource {
        self.user_doc(name, json!({}))
            .unwrap_or_else(|e| panic!("{}: create user {name}: {e}", self.name))
    }

    fn user_doc(&self, name: &str, extra: Value) -> Result<StoredResource, StoreError> {
        self.user_with_id(&uuid::Uuid::new_v4().to_string(), name, extra)
    }

    fn user_with_id(
        &self,
        id: &str,
        name: &str,
        extra: Value,
    ) -> Result<StoredResource, StoreError> {
        let id = id.to_string();
        let t = now();
        let mut doc = json!({
            "schemas": [USER], "id": id, "userName": name,
            "meta": {"resourceType": "User", "created": rfc3339(t), "lastModified": rfc3339(t)}
        });
        if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                d.insert(k.clone(), v.clone());
            }
        }
        self.store.create(
            &self.rt("User"),
            ResourceWrite {
                id,
                display: Some(name.to_string()),
                unique_key: Some(name.to_lowercase()),
                doc,
                created: t,
                modified: t,
                secret: SecretChange::Keep,
                members: MemberChange::Keep,
                actor: Default::default(),
            },
        )
    }

    fn group(&self, name: &str, members: &[&str]) -> StoredResource {
        let id = uuid::Uuid::new_v4().to_string();
        let t = now();
        let doc = json!({
            "schemas": [GROUP], "id": id, "displayName": name,
            "meta": {"resourceType": "Group", "created": rfc3339(t), "lastModified": rfc3339(t)}
        });
        self.store
            .create(
                &self.rt("Group"),
                ResourceWrite {
                    id,
                    display: Some(name.to_string()),
                    unique_key: None,
                    doc,
                    created: t,
                    modified: t,
                    secret: SecretChange::Keep,
                    members: MemberChange::Replace(self.as_members(members)),
                    actor: Default::default(),
                },
            )
            .unwrap_or_else(|e| panic!("{}: create group {name}: {e}", self.name))
    }

    fn as_members(&self, ids: &[&str]) -> Vec<Member> {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let found = self.store.existing(&ids).expect("existing");
        ids.iter()
            .map(|id| Member {
                id: id.clone(),
                kind: found
                    .iter()
                    .find(|m| &m.id == id)
                    .map_or(MemberKind::User, |m| m.kind),
            })
            .collect()
    }

    /// Rewrite a resource with `change` applied to its document.
    fn update(
        &self,
        r: &StoredResource,
        if_version: Option<i64>,
        change: impl FnOnce(&mut Value),
        members: MemberChange,
    ) -> Result<StoredResource, StoreError> {
        let mut doc = r.doc.clone();
        change(&mut doc);
        let t = now();
        doc["meta"]["lastModified"] = json!(rfc3339(t));
        let unique_key = doc["userName"].as_str().map(str::to_lowercase);
        let display = doc["displayName"]
            .as_str()
            .or(doc["userName"].as_str())
            .map(str::to_string);
        self.store.replace(
            &self.rt(&r.rtype),
            ResourceWrite {
                id: r.id.clone(),
                doc,
                unique_key,
                display,
                created: t,
                modified: t,
                secret: SecretChange::Keep,
                members,
                actor: Default::default(),
            },
            if_version,
        )
    }

    fn member_ids(&self, group: &str) -> Vec<String> {
        self.store
            .members(group, false)
            .expect("members")
            .into_iter()
            .map(|m| m.id)
            .collect()
    }

    fn search(
        &self,
        rt: &str,
        filter: Option<&str>,
        sort: Option<&str>,
        order: SortOrder,
        start: u64,
        count: u64,
    ) -> (u64, Vec<String>) {
        let q = Query {
            filter: filter.map(|f| parse_filter(f).expect("filter")),
            sort_by: sort.map(|p| parse_attr_path(p).expect("sort path")),
            sort_order: order,
            start_index: start,
            count,
            ..Query::default()
        };
        let page = self
            .store
            .search(&self.rt(rt), &q)
            .unwrap_or_else(|e| panic!("{}: search {filter:?}: {e}", self.name));
        (
            page.total,
            page.resources
                .into_iter()
                .map(|r| {
                    r.doc["userName"]
                        .as_str()
                        .or(r.doc["displayName"].as_str())
                        .unwrap_or_default()
                        .to_string()
                })
                .collect(),
        )
    }
}

/// Millisecond timestamps, strictly increasing across calls, so "creation order"
/// in the tests is never a tie between two writes in the same millisecond.
fn now() -> DateTime<Utc> {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST_MS: AtomicI64 = AtomicI64::new(0);
    let ms = Utc::now().timestamp_millis();
    let prev = LAST_MS.fetch_max(ms, Ordering::SeqCst);
    let ms = if prev >= ms {
        LAST_MS.fetch_add(1, Ordering::SeqCst) + 1
    } else {
        ms
    };
    DateTime::from_timestamp_millis(ms).unwrap_or_else(Utc::now)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn ids(v: &[&StoredResource]) -> Vec<String> {
    v.iter().map(|r| r.id.clone()).collect()
}

// ---------------------------------------------------------------- the suite

fn create_get_replace_delete(b: &Backend) {
    let users = b.rt("User");
    let u = b.user("bjensen");
    assert_eq!(u.version, 1);
    let got = b.store.get(&users, &u.id).expect("get");
    assert_eq!(got, u, "{}", b.name);
    // Another type's endpoint does not find it.
    assert_eq!(
        b.store.get(&b.rt("Group"), &u.id),
        Err(StoreError::NotFound)
    );

    let v2 = b
        .update(
            &u,
            None,
            |d| d["displayName"] = json!("Babs"),
            MemberChange::Keep,
        )
        .expect("replace");
    assert_eq!(v2.version, 2);
    let got = b.store.get(&users, &u.id).expect("get");
    assert_eq!(got.doc["displayName"], "Babs");
    assert_eq!(got.version, 2);

    let mut gone = u.clone();
    gone.id = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        b.update(&gone, None, |_| {}, MemberChange::Keep),
        Err(StoreError::NotFound)
    );
    b.store
        .delete(&users, &u.id, None, now(), &Actor::default())
        .expect("delete");
    assert_eq!(b.store.get(&users, &u.id), Err(StoreError::NotFound));
    assert_eq!(
        b.store
            .delete(&users, &u.id, None, now(), &Actor::default()),
        Err(StoreError::NotFound)
    );
}

fn user_names_are_unique_case_insensitively(b: &Backend) {
    let users = b.rt("User");
    let a = b.user("Alice");
    assert_eq!(
        b.user_doc("ALICE", json!({})).err(),
        Some(StoreError::Uniqueness)
    );
    let other = b.user("bob");
    assert_eq!(
        b.update(
            &other,
            None,
            |d| d["userName"] = json!("alice"),
            MemberChange::Keep
        )
        .err(),
        Some(StoreError::Uniqueness)
    );
    // The failed write changed nothing.
    assert_eq!(b.store.get(&users, &other.id).expect("get").version, 1);
    // Groups have no unique key: equal display names are fine.
    b.group("ops", &[]);
    b.group("ops", &[]);
    // Once deleted, the name is free again.
    b.store
        .delete(&users, &a.id, None, now(), &Actor::default())
        .expect("delete");
    b.user("alice");
}

fn stale_versions_are_refused(b: &Backend) {
    let users = b.rt("User");
    let u = b.user("versioned");
    let v2 = b
        .update(
            &u,
            Some(1),
            |d| d["nickName"] = json!("one"),
            MemberChange::Keep,
        )
        .expect("v1 → v2");
    assert_eq!(v2.version, 2);
    assert_eq!(
        b.update(
            &u,
            Some(1),
            |d| d["nickName"] = json!("lost"),
            MemberChange::Keep
        ),
        Err(StoreError::VersionMismatch)
    );
    assert_eq!(
        b.store.get(&users, &u.id).expect("get").doc["nickName"],
        "one"
    );
    assert_eq!(
        b.store
            .delete(&users, &u.id, Some(1), now(), &Actor::default()),
        Err(StoreError::VersionMismatch)
    );
    b.store
        .delete(&users, &u.id, Some(2), now(), &Actor::default())
        .expect("delete at v2");
}

fn members_add_remove_replace_in_order(b: &Backend) {
    let groups = b.rt("Group");
    let (x, y, z) = (b.user("x"), b.user("y"), b.user("z"));
    let g = b.group("team", &[&y.id, &x.id]);
    assert_eq!(b.member_ids(&g.id), ids(&[&y, &x]));
    let shown = b.store.members(&g.id, true).expect("members");
    assert_eq!(shown[0].display.as_deref(), Some("y"));
    assert_eq!(shown[0].kind, MemberKind::User);
    assert_eq!(
        b.store.members(&g.id, false).expect("members")[0].display,
        None
    );

    // Delta: an already present member keeps its place, new ones go last.
    let g = b
        .update(
            &g,
            None,
            |_| {},
            MemberChange::Delta {
                add: b.as_members(&[&z.id, &y.id]),
                remove: vec![x.id.clone()],
            },
        )
        .expect("delta");
    assert_eq!(b.member_ids(&g.id), ids(&[&y, &z]));
    let g = b
        .update(
            &g,
            None,
            |_| {},
            MemberChange::Delta {
                add: b.as_members(&[&x.id]),
                remove: vec![],
            },
        )
        .expect("delta add");
    assert_eq!(b.member_ids(&g.id), ids(&[&y, &z, &x]));
    let g = b
        .update(
            &g,
            None,
            |_| {},
            MemberChange::Replace(b.as_members(&[&z.id, &y.id])),
        )
        .expect("replace members");
    assert_eq!(b.member_ids(&g.id), ids(&[&z, &y]));
    // Keep leaves the rows alone.
    let g = b
        .update(
            &g,
            None,
            |d| d["displayName"] = json!("team2"),
            MemberChange::Keep,
        )
        .expect("keep");
    assert_eq!(b.member_ids(&g.id), ids(&[&z, &y]));
    // Deleting a user removes it from its groups; deleting the group its rows.
    b.store
        .delete(&b.rt("User"), &z.id, None, now(), &Actor::default())
        .expect("delete user");
    assert_eq!(b.member_ids(&g.id), ids(&[&y]));
    b.store
        .delete(&groups, &g.id, None, now(), &Actor::default())
        .expect("delete group");
    assert!(b.member_ids(&g.id).is_empty());
    assert!(b.store.groups_of(&y.id).expect("groups_of").is_empty());
}

fn groups_of_follows_nesting_and_stops_at_cycles(b: &Backend) {
    let u = b.user("nested");
    let g1 = b.group("g1", &[&u.id]);
    let g2 = b.group("g2", &[&g1.id]);
    let g3 = b.group("g3", &[&g2.id, &u.id]);
    let got = b.store.groups_of(&u.id).expect("groups_of");
    let shown: Vec<(String, bool)> = got
        .iter()
        .map(|g| (g.display.clone().unwrap_or_default(), g.direct))
        .collect();
    assert_eq!(
        shown,
        vec![
            ("g1".into(), true),
            ("g3".into(), true),
            ("g2".into(), false)
        ],
        "{}",
        b.name
    );
    // A cycle g1 → g2 → g3 → g1 ends, and a group is not its own group.
    let g1 = b
        .update(
            &g1,
            None,
            |_| {},
            MemberChange::Delta {
                add: b.as_members(&[&g3.id]),
                remove: vec![],
            },
        )
        .expect("cycle");
    let of_g1: Vec<String> = b
        .store
        .groups_of(&g1.id)
        .expect("groups_of")
        .into_iter()
        .map(|g| g.display.unwrap_or_default())
        .collect();
    assert_eq!(of_g1, vec!["g2", "g3"]);
    assert_eq!(b.store.groups_of(&u.id).expect("groups_of").len(), 3);
    // get_with_groups answers as get + groups_of, for a member of groups, for a
    // group, for a resource in no group, and NotFound for none.
    let alone = b.user("alone");
    let user = b.rt("User");
    for (rt, id) in [(&user, &u.id), (&b.rt("Group"), &g1.id), (&user, &alone.id)] {
        let (found, groups) = b.store.get_with_groups(rt, id).expect("get_with_groups");
        assert_eq!(found, b.store.get(rt, id).expect("get"), "{}", b.name);
        assert_eq!(
            groups,
            b.store.groups_of(id).expect("groups_of"),
            "{}",
            b.name
        );
    }
    let missing = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        b.store.get_with_groups(&user, &missing).map(|_| ()),
        Err(StoreError::NotFound)
    );
    for name in ["nested", "alone"] {
        let (found, groups) = b
            .store
            .find_unique_with_groups(&user, name)
            .expect("find_unique_with_groups")
            .expect("found");
        assert_eq!(
            Some(&found),
            b.store.find_unique(&user, name).expect("find").as_ref()
        );
        assert_eq!(
            groups,
            b.store.groups_of(&found.id).expect("groups_of"),
            "{}",
            b.name
        );
    }
    assert_eq!(
        b.store
            .find_unique_with_groups(&user, "nobody")
            .expect("find"),
        None
    );
}

fn members_among_and_existing(b: &Backend) {
    let (a, c) = (b.user("among-a"), b.user("among-c"));
    let g = b.group("among", &[&a.id, &c.id]);
    let missing = uuid::Uuid::new_v4().to_string();
    let asked = vec![c.id.clone(), missing.clone(), a.id.clone()];
    assert_eq!(
        b.store.members_among(&g.id, &asked).expect("members_among"),
        vec![c.id.clone(), a.id.clone()]
    );
    assert!(b.store.members_among(&g.id, &[]).expect("empty").is_empty());
    // Pages of the members, in order, with the whole count.
    let mut all = b.store.members(&g.id, true).expect("members");
    all.sort_by(|x, y| x.id.cmp(&y.id));
    let (total, first) = b.store.members_page(&g.id, 0, 1).expect("first page");
    let (_, second) = b.store.members_page(&g.id, 1, 5).expect("second page");
    assert_eq!(total, 2);
    assert_eq!([first, second].concat(), all);
    let (_, past) = b.store.members_page(&g.id, 2, 5).expect("past the end");
    assert!(past.is_empty());
    let found = b
        .store
        .existing(&[g.id.clone(), missing, a.id.clone()])
        .expect("existing");
    assert_eq!(
        found,
        vec![
            Member {
                id: g.id.clone(),
                kind: MemberKind::Group
            },
            Member {
                id: a.id.clone(),
                kind: MemberKind::User
            }
        ]
    );
}

fn versions_page_by_id_without_documents(b: &Backend) {
    let mut users: Vec<StoredResource> = (0..5).map(|i| b.user(&format!("ver{i}"))).collect();
    b.group("ver-group", &[]);
    users[2] = b
        .update(
            &users[2],
            None,
            |d| d["nickName"] = json!("two"),
            MemberChange::Keep,
        )
        .expect("update");
    users.sort_by(|x, y| x.id.cmp(&y.id));
    let expected: Vec<(String, i64)> = users.iter().map(|u| (u.id.clone(), u.version)).collect();
    let first = b.store.versions("User", None, 3).expect("first page");
    let rest = b
        .store
        .versions("User", Some(&first[2].0), 3)
        .expect("next page");
    assert_eq!([first, rest].concat(), expected, "{}", b.name);
    assert!(expected.iter().any(|(_, v)| *v == 2));
    assert_eq!(b.store.password_hash(&users[0].id).expect("hash"), None);
    assert_eq!(b.store.password_hash("no-such-id").expect("hash"), None);
}

fn search_filters_sort_and_pages(b: &Backend) {
    for (name, family, email, active, emp) in [
        ("alice", "Adams", "alice@example.com", true, "1001"),
        ("Bob", "brown", "bob@corp.example.org", false, "1002"),
        ("carol", "Chen", "carol@example.com", true, "2001"),
        ("Émile", "Zola", "emile@example.fr", true, "3001"),
        ("dave", "", "DAVE@example.com", false, "0999"),
    ] {
        b.user_doc(
            name,
            json!({
                "schemas": [USER, ENTERPRISE],
                "name": {"familyName": family},
                "active": active,
                "emails": [{"value": "second@x.org"}, {"value": email, "type": "work", "primary": true}],
                ENTERPRISE: {"employeeNumber": emp}
            }),
        )
        .expect("seed");
    }
    b.group("Alice fans", &[]);
    let asc = SortOrder::Ascending;
    let all = |f: &str| {
        let (n, mut v) = b.search("User", Some(f), None, SortOrder::Ascending, 1, 100);
        assert_eq!(n as usize, v.len());
        v.sort();
        v
    };
    assert_eq!(all(r#"userName eq "ALICE""#), vec!["alice"]);
    assert_eq!(all(r#"userName sw "é""#), vec!["Émile"]);
    assert_eq!(
        all(r#"emails co "EXAMPLE.COM""#),
        vec!["alice", "carol", "dave"]
    );
    assert_eq!(
        all(r#"emails[type eq "work" and value ew ".org"]"#),
        vec!["Bob"]
    );
    assert_eq!(
        all(r#"active eq false and not (name.familyName pr)"#),
        vec!["dave"]
    );
    assert_eq!(
        all(&format!(r#"{ENTERPRISE}:employeeNumber ge "2000""#)),
        vec!["carol", "Émile"]
    );
    assert_eq!(
        all(r#"meta.resourceType eq "User" and userName gt "c""#),
        vec!["carol", "dave", "Émile"]
    );
    assert_eq!(all(r#"userName lt "b""#), vec!["alice"]);
    // Sorting: case-insensitive userName by code point of the folded form; missing
    // values last; multi-valued by the primary value; descending.
    assert_eq!(
        b.search("User", None, Some("userName"), asc.clone(), 1, 10)
            .1,
        vec!["alice", "Bob", "carol", "dave", "Émile"]
    );
    assert_eq!(
        b.search(
            "User",
            None,
            Some("name.familyName"),
            SortOrder::Descending,
            1,
            10
        )
        .1,
        vec!["Émile", "carol", "Bob", "alice", "dave"]
    );
    assert_eq!(
        b.search("User", None, Some("emails"), asc.clone(), 1, 10).1,
        vec!["alice", "Bob", "carol", "dave", "Émile"]
    );
    // Paging: totals stay whole; count 0 gives the total only; past the end is empty.
    let (total, page) = b.search("User", None, Some("userName"), asc.clone(), 2, 2);
    assert_eq!(
        (total, page),
        (5, vec!["Bob".to_string(), "carol".to_string()])
    );
    assert_eq!(b.search("User", None, None, asc.clone(), 1, 0), (5, vec![]));
    assert_eq!(b.search("User", None, None, asc.clone(), 9, 5), (5, vec![]));
    // Without sortBy: creation order.
    assert_eq!(
        b.search("User", None, None, asc.clone(), 1, 3).1,
        vec!["alice", "Bob", "carol"]
    );
    assert_eq!(
        b.search("Group", Some(r#"displayName co "fans""#), None, asc, 1, 3),
        (1, vec!["Alice fans".to_string()])
    );
    // A filter the compiler refuses is a query error, not a backend error.
    let q = Query {
        filter: Some(parse_filter(r#"active gt true"#).expect("parse")),
        count: 10,
        start_index: 1,
        ..Query::default()
    };
    assert!(matches!(
        b.store.search(&b.rt("User"), &q),
        Err(StoreError::Query(_))
    ));
}

fn change_feed_in_commit_order(b: &Backend) {
    let users = b.rt("User");
    assert_eq!(b.store.feed_head().expect("head of an empty feed"), None);
    let u = b.user("fed");
    let u2 = b
        .update(&u, None, |d| d["nickName"] = json!("f"), MemberChange::Keep)
        .expect("update");
    b.store
        .delete(&users, &u.id, Some(u2.version), now(), &Actor::default())
        .expect("delete");
    // PostgreSQL hands out a change once no older transaction is still running
    // anywhere on the server (other tests' included): wait for that.
    let settled = |after: Option<&str>, limit: usize, want: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let page = b.store.changes(after, limit).expect("changes");
            if page.changes.len() >= want || std::time::Instant::now() > deadline {
                return page;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    // All three settled first: only then must a page of two say there is more.
    assert_eq!(settled(None, 10, 3).changes.len(), 3);
    let page = b.store.changes(None, 2).expect("changes");
    assert_eq!(page.changes.len(), 2);
    assert!(page.more);
    assert_eq!(page.changes[0].op, ChangeOp::Created);
    assert_eq!(page.changes[1].op, ChangeOp::Updated);
    assert_eq!(page.changes[1].version, 2);
    assert_eq!(
        page.changes[1].doc.as_ref().map(|d| d["nickName"].clone()),
        Some(json!("f"))
    );
    let rest = settled(Some(&page.next), 10, 1);
    assert_eq!(rest.changes.len(), 1);
    assert!(!rest.more);
    assert_eq!(rest.changes[0].op, ChangeOp::Deleted);
    assert_eq!(rest.changes[0].doc, None);
    let empty = b.store.changes(Some(&rest.next), 10).expect("changes");
    assert!(empty.changes.is_empty());
    assert_eq!(empty.next, rest.next);
    // The head is the newest change: reading after it gives nothing.
    assert_eq!(b.store.feed_head().expect("head"), Some(rest.next.clone()));
    assert!(matches!(
        b.store.changes(Some("garbage"), 10),
        Err(StoreError::BadCursor(_))
    ));
    // Pruning everything: the old position is refused, the latest still works.
    let pruned = b
        .store
        .prune_changes(Utc::now() + TimeDelta::days(1))
        .expect("prune");
    assert_eq!(pruned, 3);
    assert!(matches!(
        b.store.changes(Some(&page.next), 10),
        Err(StoreError::BadCursor(_))
    ));
    assert!(b
        .store
        .changes(Some(&rest.next), 10)
        .expect("after prune")
        .changes
        .is_empty());
}

/// An unfiltered list's total is the maintained per-type count: it follows
/// creates, bulk creates and deletes, whatever the page.
fn unfiltered_totals_follow_every_write(b: &Backend) {
    let total = |rt: &str| {
        let (n, _) = b.search(rt, None, None, SortOrder::Ascending, 1, 0);
        let (paged, _) = b.search(rt, None, Some("meta.created"), SortOrder::Ascending, 2, 1);
        assert_eq!(n, paged, "{}: {rt}", b.name);
        n
    };
    assert_eq!((total("User"), total("Group")), (0, 0));
    let users: Vec<StoredResource> = (0..4).map(|i| b.user(&format!("count{i}"))).collect();
    b.group("counted", &[&users[0].id]);
    assert_eq!((total("User"), total("Group")), (4, 1));
    b.store
        .delete(&b.rt("User"), &users[1].id, None, now(), &Actor::default())
        .expect("delete");
    assert_eq!(total("User"), 3);
    // A failed create (taken userName) counts nothing.
    assert!(b.user_doc("count0", json!({})).is_err());
    assert_eq!(total("User"), 3);
    // The filtered count still counts the rows.
    let (n, _) = b.search(
        "User",
        Some(r#"userName sw "count""#),
        None,
        SortOrder::Ascending,
        1,
        0,
    );
    assert_eq!(n, 3, "{}", b.name);
}

fn export_all(store: &dyn Store) -> Vec<ExportRecord> {
    let mut out = Vec::new();
    let n = store
        .export(&mut |r| {
            out.push(r);
            Ok(())
        })
        .expect("export");
    assert_eq!(n as usize, out.len());
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

fn export_then_import_is_lossless(b: &Backend) {
    let u = b.user("exported");
    let hashed = b
        .store
        .replace(
            &b.rt("User"),
            ResourceWrite {
                id: u.id.clone(),
                doc: u.doc.clone(),
                unique_key: Some("exported".into()),
                display: Some("exported".into()),
                created: now(),
                modified: now(),
                secret: SecretChange::Set("$argon2id$v=19$fake".into()),
                members: MemberChange::Keep,
                actor: Default::default(),
            },
            None,
        )
        .expect("set secret");
    assert_eq!(hashed.version, 2);
    let others: Vec<StoredResource> = (0..5).map(|i| b.user(&format!("ex{i}"))).collect();
    let inner = b.group("inner", &[&others[3].id, &others[1].id]);
    b.group("outer", &[&inner.id, &u.id, &others[0].id]);
    let before = export_all(b.store.as_ref());
    assert_eq!(before.len(), 8);
    let rec = before.iter().find(|r| r.id == u.id).expect("exported user");
    assert_eq!(rec.secret.as_deref(), Some("$argon2id$v=19$fake"));
    assert_eq!(rec.version, 2);

    // Into each backend, in small batches; twice (an interrupted import re-run).
    for target in std::iter::once(sqlite()).chain(postgres()) {
        for _ in 0..2 {
            for chunk in before.chunks(3) {
                target.store.import(chunk).expect("import");
            }
        }
        let after = export_all(target.store.as_ref());
        assert_eq!(after, before, "{} → {}", b.name, target.name);
        // Imported twice, counted once.
        let total = |rt: &str| target.search(rt, None, None, SortOrder::Ascending, 1, 0).0;
        assert_eq!((total("User"), total("Group")), (6, 2), "{}", target.name);
        // Everything derived is rebuilt: searches, members, groups.
        assert_eq!(
            target.search(
                "User",
                Some(r#"userName eq "EX3""#),
                None,
                SortOrder::Ascending,
                1,
                5
            ),
            (1, vec!["ex3".to_string()])
        );
        assert_eq!(target.member_ids(&inner.id), ids(&[&others[3], &others[1]]));
        assert_eq!(
            target.store.groups_of(&others[3].id).expect("groups").len(),
            2
        );
        assert_eq!(
            target.user_doc("EXPORTED", json!({})).err(),
            Some(StoreError::Uniqueness)
        );
    }
}

fn concurrent_writers_lose_nothing(b: &Backend) {
    let users = b.rt("User");
    // Same userName from many threads: exactly one create succeeds.
    let results: Vec<Result<StoredResource, StoreError>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                s.spawn(move || b.user_doc(if i % 2 == 0 { "Racer" } else { "racer" }, json!({})))
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results
        .iter()
        .all(|r| r.is_ok() || r.as_ref().err() == Some(&StoreError::Uniqueness)));

    // Read-modify-write with version checks: every increment lands.
    let counter = b
        .user_doc("counter", json!({"nickName": "0"}))
        .expect("counter");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..5 {
                    loop {
                        let cur = b.store.get(&users, &counter.id).expect("get");
                        let n: u64 = cur.doc["nickName"]
                            .as_str()
                            .and_then(|v| v.parse().ok())
                            .expect("n");
                        match b.update(
                            &cur,
                            Some(cur.version),
                            |d| d["nickName"] = json!((n + 1).to_string()),
                            MemberChange::Keep,
                        ) {
                            Ok(_) => break,
                            Err(StoreError::VersionMismatch) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            });
        }
    });
    let done = b.store.get(&users, &counter.id).expect("get");
    assert_eq!(done.doc["nickName"], "20");
    assert_eq!(done.version, 21);

    // Member deltas to one group from many threads: none lost.
    let group = b.group("crowd", &[]);
    let members: Vec<StoredResource> = (0..24).map(|i| b.user(&format!("crowd{i}"))).collect();
    std::thread::scope(|s| {
        for chunk in members.chunks(6) {
            let group = &group;
            s.spawn(move || {
                for m in chunk {
                    loop {
                        let cur = b.store.get(&b.rt("Group"), &group.id).expect("get");
                        let add = MemberChange::Delta {
                            add: vec![Member {
                                id: m.id.clone(),
                                kind: MemberKind::User,
                            }],
                            remove: vec![],
                        };
                        match b.update(&cur, Some(cur.version), |_| {}, add) {
                            Ok(_) => break,
                            Err(StoreError::VersionMismatch) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            });
        }
    });
    let got: BTreeSet<String> = b.member_ids(&group.id).into_iter().collect();
    let want: BTreeSet<String> = members.iter().map(|m| m.id.clone()).collect();
    assert_eq!(got, want);
}

// ---------------------------------------------------------------- differential

/// Strings that collide under case folding, are prefixes / suffixes of each other,
/// or hold LIKE metacharacters and the largest code point.
const WORDS: &[&str] = &[
    "alice",
    "Alice",
    "ALICE",
    "al",
    "ice",
    "bob",
    "École",
    "école",
    "éc",
    "STRASSE",
    "straße",
    "ΣΑΣ",
    "σας",
    "x_y%z",
    "_",
    "a@x.org",
    "A@X.ORG",
    "@x.org",
    "ORG",
    "work",
    "Work",
    "",
    "ab",
    "abc",
    "zoë",
    "\u{10FFFF}",
    "a\u{10FFFF}",
    "İstanbul",
];

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(WORDS).prop_map(str::to_string)
}

fn base_time(k: u32) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
        .expect("constant")
        .with_timezone(&Utc)
        + TimeDelta::microseconds(i64::from(k) * 250_000)
}

fn email() -> impl Strategy<Value = Value> {
    (
        prop::option::of(word()),
        prop::option::of(prop::sample::select(&["work", "Work", "home", ""][..])),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(v, t, p)| {
            let mut m = Map::new();
            if let Some(v) = v {
                m.insert("value".into(), json!(v));
            }
            if let Some(t) = t {
                m.insert("type".into(), json!(t));
            }
            if let Some(p) = p {
                m.insert("primary".into(), json!(p));
            }
            if m.is_empty() {
                m.insert("value".into(), json!("z"));
            }
            Value::Object(m)
        })
}

/// A user document and its created / lastModified instants.
fn user_doc() -> impl Strategy<Value = (Value, u32, u32)> {
    (
        (word(), prop::option::of(word()), prop::option::of(word())),
        (
            prop::option::of(any::<bool>()),
            prop::collection::vec(email(), 0..3),
        ),
        (prop::option::of(word()), 0u32..8, 0u32..8),
    )
        .prop_map(|((name, given, nick), (active, emails), (emp, c, m))| {
            let mut d = Map::new();
            d.insert("schemas".into(), json!([USER, ENTERPRISE]));
            d.insert("userName".into(), json!(name));
            if let Some(g) = given {
                d.insert("name".into(), json!({"givenName": g}));
            }
            if let Some(n) = nick {
                d.insert("nickName".into(), json!(n));
            }
            if let Some(a) = active {
                d.insert("active".into(), json!(a));
            }
            if !emails.is_empty() {
                d.insert("emails".into(), Value::Array(emails));
            }
            if let Some(e) = emp {
                d.insert(ENTERPRISE.into(), json!({"employeeNumber": e}));
            }
            (Value::Object(d), c, c + m)
        })
}

fn path(s: &str) -> AttrPath {
    parse_attr_path(s).expect("path")
}

fn leaf() -> impl Strategy<Value = Filter> {
    const PATHS: &[&str] = &[
        "userName",
        "nickName",
        "name.givenName",
        "emails",
        "emails.value",
        "emails.type",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    ];
    const OPS: &[CompareOp] = &[
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Lt,
        CompareOp::Ge,
        CompareOp::Le,
    ];
    prop_oneof![
        5 => (prop::sample::select(PATHS), prop::sample::select(OPS), word(), any::<bool>())
            .prop_map(|(p, op, w, upper)| Filter::Compare {
                path: path(p),
                op,
                value: Literal::String(if upper { w.to_uppercase() } else { w }),
            }),
        1 => (prop::sample::select(&["active", "emails.primary"][..]), any::<bool>())
            .prop_map(|(p, v)| Filter::Compare { path: path(p), op: CompareOp::Eq, value: Literal::Bool(v) }),
        1 => prop::sample::select(PATHS).prop_map(|p| Filter::Present(path(p))),
        1 => (prop::sample::select(&[CompareOp::Gt, CompareOp::Le, CompareOp::Eq][..]), 0u32..16)
            .prop_map(|(op, k)| Filter::Compare {
                path: path("meta.lastModified"),
                op,
                value: Literal::String(scim_store::db_time(base_time(k))),
            }),
        1 => (prop::sample::select(&["work", "Work", ""][..]), word())
            .prop_map(|(t, v)| Filter::ValuePath {
                path: path("emails"),
                filter: Box::new(Filter::And(
                    Box::new(Filter::Compare { path: path("type"), op: CompareOp::Eq, value: Literal::String(t.into()) }),
                    Box::new(Filter::Compare { path: path("value"), op: CompareOp::Sw, value: Literal::String(v) }),
                )),
            }),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    leaf().boxed().prop_recursive(3, 10, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
}

const SORTS: &[&str] = &[
    "userName",
    "nickName",
    "emails",
    "emails.type",
    "active",
    "meta.lastModified",
    "id",
];

/// For random users and filters: each backend's search selects exactly the ids the
/// evaluator matches, and sorted pages come back in the same order from both.
#[test]
fn backends_agree_with_the_evaluator_and_each_other() {
    let Some(pg) = postgres() else {
        return;
    };
    let lite = sqlite();
    let reg = lite.reg.clone();
    let rt = lite.rt("User");
    let mut runner = TestRunner::new(PropConfig {
        cases: 24,
        ..PropConfig::default()
    });
    let case = (
        prop::collection::vec(user_doc(), 1..25),
        prop::collection::vec(filter(), 12),
        prop::sample::select(SORTS),
        any::<bool>(),
    );
    let result = runner.run(&case, |(docs, filters, sort, descending)| {
        // Fresh contents for this case, same ids on both backends.
        for b in [&lite, &pg] {
            for r in export_all(b.store.as_ref()) {
                b.store
                    .delete(&rt, &r.id, None, now(), &Actor::default())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
        }
        let mut stored = Vec::new();
        for (n, (mut doc, c, m)) in docs.into_iter().enumerate() {
            let id = if n % 2 == 0 {
                format!("id{n:02}")
            } else {
                format!("ID{n:02}")
            };
            doc["id"] = json!(id);
            doc["meta"] = json!({
                "resourceType": "User",
                "created": scim_store::db_time(base_time(c)),
                "lastModified": scim_store::db_time(base_time(m)),
            });
            for b in [&lite, &pg] {
                b.store
                    .create(
                        &rt,
                        ResourceWrite {
                            id: id.clone(),
                            doc: doc.clone(),
                            unique_key: None,
                            display: None,
                            created: base_time(c),
                            modified: base_time(m),
                            secret: SecretChange::Keep,
                            members: MemberChange::Keep,
                            actor: Default::default(),
                        },
                    )
                    .map_err(|e| TestCaseError::fail(format!("{}: {e}", b.name)))?;
            }
            stored.push(doc);
        }
        for f in &filters {
            let q = Query {
                filter: Some(f.clone()),
                sort_by: Some(path(sort)),
                sort_order: if descending {
                    SortOrder::Descending
                } else {
                    SortOrder::Ascending
                },
                start_index: 1,
                count: 1000,
                ..Query::default()
            };
            let lite_page = lite.store.search(&rt, &q);
            let pg_page = pg.store.search(&rt, &q);
            match (lite_page, pg_page) {
                (Err(StoreError::Query(_)), Err(StoreError::Query(_))) => continue,
                (Ok(l), Ok(p)) => {
                    let order = |page: &scim_store::Page| {
                        page.resources
                            .iter()
                            .map(|r| r.id.clone())
                            .collect::<Vec<_>>()
                    };
                    let want: BTreeSet<String> = stored
                        .iter()
                        .filter(|d| matches(f, d, &reg, &rt))
                        .map(|d| d["id"].as_str().unwrap_or_default().to_string())
                        .collect();
                    let got: BTreeSet<String> = order(&p).into_iter().collect();
                    prop_assert_eq!(&got, &want, "postgres vs evaluator, filter {}", f);
                    prop_assert_eq!(p.total as usize, want.len());
                    prop_assert_eq!(
                        order(&p),
                        order(&l),
                        "page order, filter {} sortBy {} desc {}",
                        f,
                        sort,
                        descending
                    );
                }
                (l, p) => {
                    return Err(TestCaseError::fail(format!(
                        "filter {f}: sqlite {:?} vs postgres {:?}",
                        l.map(|x| x.total),
                        p.map(|x| x.total)
                    )));
                }
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------- client store

fn client_store_lifecycle(s: &dyn ClientStore, name: &str) {
    let t = |secs: i64| {
        DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
            .expect("constant")
            .with_timezone(&Utc)
            + TimeDelta::seconds(secs)
    };
    let client = ClientRecord {
        id: "c1".into(),
        name: "n".into(),
        secret_hash: "h1".into(),
        scopes: vec!["a".into(), "b".into()],
        created: t(0),
        expires: Some(t(100)),
        disabled: false,
        locked_until: None,
        origin: "cli".into(),
    };
    s.create_client(&client).expect("create");
    assert_eq!(
        s.create_client(&client),
        Err(StoreError::Uniqueness),
        "{name}"
    );
    assert_eq!(s.get_client("c1").expect("get"), Some(client.clone()));
    s.set_client_disabled("c1", true).expect("disable");
    assert_eq!(s.set_client_disabled("zz", true), Err(StoreError::NotFound));
    s.rotate_secret("c1", "h2").expect("rotate");
    let c = s.get_client("c1").expect("get").expect("some");
    assert_eq!((c.secret_hash.as_str(), c.disabled), ("h2", true));
    // A ticket is redeemed once; its record goes when it has expired.
    assert!(s.redeem_ticket("j1", t(100)).expect("redeem"), "{name}");
    assert!(!s.redeem_ticket("j1", t(100)).expect("again"), "{name}");
    assert!(s.redeem_ticket("j2", t(300)).expect("redeem"), "{name}");
    let mut dynamic = client.clone();
    dynamic.id = "d".into();
    dynamic.origin = "dynamic".into();
    s.create_client(&dynamic).expect("create");
    assert_eq!(s.delete_expired_dynamic_clients(t(200)).expect("prune"), 1);
    assert_eq!(s.list_clients().expect("list").len(), 1);
    // j1 expired at 100 and is forgotten; j2 is still spent.
    assert!(
        s.redeem_ticket("j1", t(400))
            .expect("expired record pruned"),
        "{name}"
    );
    assert!(
        !s.redeem_ticket("j2", t(300)).expect("still spent"),
        "{name}"
    );
    s.delete_client("c1").expect("delete");
    assert_eq!(s.delete_client("c1"), Err(StoreError::NotFound));
    let key = |kid: &str, at: i64| SigningKeyRecord {
        kid: kid.into(),
        alg: "EdDSA".into(),
        private_key: vec![1, 2, 3, 0, 255],
        public_jwk: "{}".into(),
        created: t(at),
        retired: None,
    };
    s.add_signing_key(&key("k1", 0)).expect("add");
    s.add_signing_key(&key("k2", 10)).expect("add");
    assert_eq!(
        s.retire_signing_keys_except("k2", t(20)).expect("retire"),
        1
    );
    let keys = s.signing_keys().expect("keys");
    assert_eq!(keys[0], key("k2", 10));
    assert_eq!(keys[1].retired, Some(t(20)));
    s.delete_signing_key("k1").expect("delete");
    assert_eq!(s.signing_keys().expect("keys").len(), 1);
    let a = s.server_secret("hmac", b"first").expect("secret");
    let b = s.server_secret("hmac", b"second").expect("secret");
    assert_eq!((a.as_slice(), b.as_slice()), (&b"first"[..], &b"first"[..]));
}

#[test]
fn client_store_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SqliteClientStore::open(&dir.path().join("c.db")).expect("open");
    client_store_lifecycle(&s, "sqlite");
}

#[test]
fn client_store_on_postgres() {
    let Some(b) = postgres() else {
        return;
    };
    let schema = b
        ._keep
        .downcast_ref::<ScratchSchema>()
        .expect("scratch schema");
    let s = PostgresStore::open(&schema.url, shared(&b.reg), &PostgresOptions::default())
        .expect("open");
    client_store_lifecycle(&s, "postgres");
}

/// Under a steady load of concurrent writers and readers the WAL never gets fully
/// copied back between two commits, so it would grow without end (11 GB while
/// loading 1M users); the writer starts it over once it passes the limit.
#[test]
fn sqlite_wal_stays_bounded_under_concurrent_writes_and_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wal.db");
    let reg = registry();
    let store =
        Arc::new(SqliteStore::open_with_wal_limit(&path, shared(&reg), 256).expect("open SQLite"));
    let b = Backend {
        name: "sqlite",
        store: store.clone(),
        reg,
        _keep: Box::new(()),
    };
    let wal = path.with_extension("db-wal");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, stop, rt) = (store.clone(), stop.clone(), b.rt("User"));
        std::thread::spawn(move || {
            let q = Query {
                count: 5,
                start_index: 1,
                ..Query::default()
            };
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store.search(&rt, &q).expect("search");
            }
        })
    };
    let mut largest = 0;
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let b = &b;
                scope.spawn(move || {
                    for i in 0..1_000 {
                        b.user_doc(&format!("wal{w}x{i}"), json!({}))
                            .expect("create");
                    }
                })
            })
            .collect();
        while writers.iter().any(|h| !h.is_finished()) {
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().expect("reader");
    // The file keeps its high-water mark. 256 frames of 4 KiB is 1 MiB, plus what
    // is written between two checkpointer passes and while a restart waits for
    // readers: ~17 MiB here, where without restarts these 4,000 creations grow the
    // WAL past 100 MiB.
    assert!(largest < 40 << 20, "the WAL reached {largest} bytes");
    let written = b
        .store
        .search(
            &b.rt("User"),
            &Query {
                count: 0,
                start_index: 1,
                ..Query::default()
            },
        )
        .expect("count")
        .total;
    assert_eq!(written, 4_000);
}

// ---------------------------------------------------------------- sync

fn link(first: &str, second: &str) -> LinkRow {
    LinkRow::new(first, second, None)
}

fn audit_entry(source_id: &str) -> AuditEntry {
    AuditEntry {
        situation: "UNLINKED".into(),
        action: "LINK".into(),
        status: "SUCCESS".into(),
        source_id: Some(source_id.into()),
        target_id: None,
        error: None,
    }
}

fn started(start: RunStart) -> RunRecord {
    match start {
        RunStart::Started(run) => run,
        RunStart::AlreadyOpen(run) => panic!("expected a new run, found open run {run:?}"),
    }
}

/// A run of `mapping` that has started and ended at `ended`.
fn finished_run(s: &dyn SyncStore, id: &str, mapping: &str, ended: DateTime<Utc>) {
    started(s.create_run(id, mapping, false, ended).expect("create"));
    s.finish_run(id, "SUCCESS", ended).expect("finish");
}

fn sync_links_hold_one_link_per_side(b: &Backend) {
    let s: Arc<dyn SyncStore> = b.store.clone();
    let n = b.name;
    let find = |side, id| s.find_link("users", side, id).expect("find");
    s.put_link("users", "a", "x").expect("put");
    s.put_link("other", "a", "x").expect("put in another set");
    assert_eq!(find(LinkSide::First, "a"), Some(link("a", "x")), "{n}");
    assert_eq!(find(LinkSide::Second, "x"), Some(link("a", "x")), "{n}");

    // Relinking the first side replaces its link: `x` is free again.
    s.put_link("users", "a", "y").expect("relink first");
    assert_eq!(find(LinkSide::First, "a"), Some(link("a", "y")), "{n}");
    assert_eq!(find(LinkSide::Second, "x"), None, "{n}");
    // Relinking the second side replaces its link too: `a` loses `y`.
    s.put_link("users", "b", "y").expect("relink second");
    assert_eq!(find(LinkSide::Second, "y"), Some(link("b", "y")), "{n}");
    assert_eq!(find(LinkSide::First, "a"), None, "{n}");
    // Linking two already linked ids drops both old links.
    s.put_link("users", "c", "z").expect("put");
    s.put_link("users", "b", "z").expect("cross");
    assert_eq!(
        s.links("users", None, 10).expect("list"),
        vec![link("b", "z")],
        "{n}"
    );
    assert_eq!(s.count_links("users").expect("count"), 1, "{n}");
    // Other link sets are untouched.
    assert_eq!(
        s.links("other", None, 10).expect("list"),
        vec![link("a", "x")],
        "{n}"
    );

    assert!(
        s.remove_link("users", LinkSide::Second, "z")
            .expect("remove"),
        "{n}"
    );
    assert!(
        !s.remove_link("users", LinkSide::Second, "z")
            .expect("again"),
        "{n}"
    );
    assert!(
        s.remove_link("other", LinkSide::First, "a")
            .expect("remove"),
        "{n}"
    );
    assert_eq!(s.count_links("users").expect("count"), 0, "{n}");
    assert_eq!(s.count_links("other").expect("count"), 0, "{n}");

    // Several at once apply in turn, as one put_link after another would.
    let stamped = |a: &str, b: &str| LinkRow::new(a, b, Some(format!("{a}{b}")));
    s.put_links(
        "users",
        &[stamped("a", "x"), stamped("b", "y"), stamped("a", "z")],
    )
    .expect("put several");
    assert_eq!(
        s.links("users", None, 10).expect("list"),
        vec![stamped("a", "z"), stamped("b", "y")],
        "{n}"
    );

    // Stamps change by first id; one of a link that is gone is dropped; a new
    // link of an id starts without the old link's stamp.
    s.stamp_links(
        "users",
        &[
            ("a".into(), None),
            ("b".into(), Some("b2".into())),
            ("gone".into(), Some("g".into())),
        ],
    )
    .expect("stamp");
    assert_eq!(
        s.links("users", None, 10).expect("list"),
        vec![link("a", "z"), LinkRow::new("b", "y", Some("b2".into()))],
        "{n}"
    );
    s.put_link("users", "b", "w").expect("relink");
    assert_eq!(
        s.find_link("users", LinkSide::First, "b").expect("find"),
        Some(link("b", "w")),
        "{n}"
    );
    assert_eq!(s.count_links("users").expect("count"), 2, "{n}");
}

fn sync_concurrent_links_of_one_id_leave_one_link(b: &Backend) {
    let s: Arc<dyn SyncStore> = b.store.clone();
    let n = b.name;
    for round in 0..5 {
        let first = format!("a{round}");
        let barrier = std::sync::Barrier::new(6);
        let results: Vec<Result<(), StoreError>> = std::thread::scope(|scope| {
            let hs: Vec<_> = (0..6)
                .map(|i| {
                    let (s, barrier, first) = (&s, &barrier, &first);
                    scope.spawn(move || {
                        barrier.wait();
                        s.put_link("race", first, &format!("x{round}-{i}"))
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().expect("thread")).collect()
        });
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Ok(()) | Err(StoreError::Uniqueness))),
            "{n}: {results:?}"
        );
        assert!(results.iter().any(Result::is_ok), "{n}: {results:?}");
        let linked = s.find_link("race", LinkSide::First, &first).expect("find");
        let second = linked.map(|l| l.second_id).expect("one link");
        assert_eq!(
            s.find_link("race", LinkSide::Second, &second)
                .expect("find"),
            Some(link(&first, &second)),
            "{n}"
        );
    }
    assert_eq!(s.count_links("race").expect("count"), 5, "{n}");
}

fn sync_links_page_by_first_id(b: &Backend) {
    let s: Arc<dyn SyncStore> = b.store.clone();
    let n = b.name;
    // Upper case, lower case and non-ASCII ids: pages follow code-point order
    // on both backends (whatever PostgreSQL's database collation says).
    let mut firsts: Vec<String> = (0..9)
        .flat_map(|i| [format!("U{i}"), format!("l{i}"), format!("é{i}")])
        .collect();
    for f in &firsts {
        s.put_link("page", f, &format!("second-{f}")).expect("put");
    }
    s.put_link("elsewhere", "A", "B").expect("put");
    firsts.sort();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = s.links("page", after.as_deref(), 10).expect("page");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10, "{n}");
        after = page.last().map(|l| l.first_id.clone());
        seen.extend(page);
        pages += 1;
    }
    let expected: Vec<LinkRow> = firsts
        .iter()
        .map(|f| link(f, &format!("second-{f}")))
        .collect();
    assert_eq!(seen, expected, "{n}");
    assert_eq!(pages, 3, "{n}");
    assert_eq!(s.count_links("page").expect("count"), 27, "{n}");
}

fn sync_runs_lifecycle(b: &Backend) {
    let s: Arc<dyn SyncStore> = b.store.clone();
    let n = b.name;
    let t0 = now();
    let run = started(s.create_run("r1", "users-out", true, t0).expect("create"));
    assert_eq!(
        (
            run.state.as_str(),
            run.dry_run,
            run.progress.as_str(),
            run.ended
        ),
        ("ACTIVE", true, "{}", None),
        "{n}"
    );
    assert_eq!(s.get_run("r1").expect("get"), run, "{n}");

    let update = RunUpdate {
        state: "WAITING".into(),
        stage: "target".into(),
        progress: r#"{"source":{"processed":3,"total":9}}"#.into(),
        summaries: r#"{"situations":{"UNLINKED":3}}"#.into(),
        cursor: Some(r#"{"after":"u3"}"#.into()),
    };
    s.update_run("r1", &update).expect("update");
    let waiting = s.get_run("r1").expect("get");
    assert_eq!(
        (waiting.state, waiting.stage, waiting.cursor),
        (
            update.state.clone(),
            update.stage.clone(),
            update.cursor.clone()
        ),
        "{n}"
    );
    // A WAITING run holds its mapping as an ACTIVE one does.
    let blocked = s
        .create_run("r2", "users-out", false, now())
        .expect("create");
    assert!(
        matches!(&blocked, RunStart::AlreadyOpen(r) if r.id == "r1"),
        "{n}: {blocked:?}"
    );
    assert_eq!(s.get_run("r2"), Err(StoreError::NotFound), "{n}");
    assert_eq!(
        s.create_run("r1", "groups-out", false, now()),
        Err(StoreError::Uniqueness),
        "{n}"
    );

    let t1 = now();
    s.finish_run("r1", "SUCCESS", t1).expect("finish");
    assert_eq!(s.open_run("users-out").expect("open"), None, "{n}");
    // A finished run no longer changes.
    assert_eq!(
        s.finish_run("r1", "FAILED", now()),
        Err(StoreError::NotFound),
        "{n}"
    );
    assert_eq!(
        s.update_run("r1", &update),
        Err(StoreError::NotFound),
        "{n}"
    );
    let done = s.get_run("r1").expect("get");
    assert_eq!(
        (done.state.as_str(), done.ended),
        ("SUCCESS", Some(t1)),
        "{n}"
    );

    started(
        s.create_run("r2", "users-out", false, now())
            .expect("second run"),
    );
    started(
        s.create_run("g1", "groups-out", false, now())
            .expect("other mapping"),
    );
    let ids = |runs: Vec<RunRecord>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.recent_runs(None, 10).expect("all")),
        ["g1", "r2", "r1"],
        "{n}"
    );
    assert_eq!(
        ids(s.recent_runs(Some("users-out"), 10).expect("of")),
        ["r2", "r1"],
        "{n}"
    );
    assert_eq!(ids(s.recent_runs(None, 1).expect("one")), ["g1"], "{n}");
    assert_eq!(
        s.open_run("users-out").expect("open").map(|r| r.id),
        Some("r2".into()),
        "{n}"
    );
}

fn sync_run_leases_pass_only_when_free_or_run_out(b: &Backend) {
    let s: Arc<dyn SyncStore> = b.store.clone();
    let n = b.name;
    let t0 = now();
    let later = |secs: i64| t0 + TimeDelta::seconds(secs);
    started(s.create_run("l1", "lease", false, t0).expect("create"));
    assert!(s.claim_run("l1", "a", t0, later(30)).expect("free"), "{n}");
    assert!(
        !s.claim_run("l1", "b", later(10), later(40)).expect("held"),
        "{n}"
    );
    assert!(
        s.claim_run("l1", "a", later(10), later(40)).expect("renew"),
        "{n}"
    );
    // a stops renewing: once its lease ran out, b takes the run over.
    assert!(
        !s.claim_run("l1", "b", later(39), later(70)).expect("held"),
        "{n}"
    );
    assert!(
        s.claim_run("l1", "b", later(41), later(71))
            .expect("run out"),
        "{n}"
    );
    assert!(
        !s.claim_run("l1", "a", later(42), later(72)).expect("lost"),
        "{n}"
    );
    // Releasing is only the holder's to do; a released run is free at once.
    s.release_run("l1", "a").expect("not a's");
    assert!(
        !s.claim_run("l1", "a", later(43), later(73))
            .expect("still b's"),
        "{n}"
    );
    s.release_run("l1", "b").expect("release");
    assert!(
        s.claim_run("l1", "a", later(44), later(74))
            .expect("released"),
        "{n}"
    );
    // Only ACTIVE runs are leased.
    let waiting = RunUpdate {
        state: "WAITING".into(),
        stage: "waitingForAllowDeletes".into(),
        progress: "{}".into(),
        summaries: "{}".into(),
        cursor: None,
    };
    s.update_run("l1", &waiting).expect("wait");
    assert!(
        !s.claim_run("l1", "a", later(45), later(75))
            .expect("waiting"),
        "{n}"
    );
    s.finish_run("l1", "CANCELED", later(46)).expect("finish");
    assert!(
        !s.claim_run("l1", "a", later(200), later(230))
            .expect("ended"),
        "{n}"
    );
    assert!(
        !s.claim_run("nope", "a", t0, later(30)).expect("unknown"),
        "{n}"
    );
}

fn sync_one_open_run_per_mapping_under_concurrent_creators(b: &Backend) {
    let s: Arc<dyn SyncStore> = b.store.clone();
    let n = b.name;
    for round in 0..5 {
        let barrier = std::sync::Barrier::new(6);
        let starts: Vec<RunStart> = std::thread::scope(|scope| {
            let hs: Vec<_> = (0..6)
                .map(|i| {
                    let (s, barrier) = (&s, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        s.create_run(&format!("run-{round}-{i}"), "m", false, now())
                            .expect("create")
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().expect("thread")).collect()
        });
        let winners: Vec<&RunRecord> = starts
            .iter()
            .filter_map(|st| match st {
                RunStart::Started(r) => Some(r),
                RunStart::AlreadyOpen(_) => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "{n} round {round}: {starts:?}");
        let winner = winners[0].id.clone();
        assert!(
            starts.iter().all(|st| match st {
                RunStart::Started(r) | RunStart::AlreadyOpen(r) => r.id == winner,
            }),
            "{n}: {starts:?}"
        );
        assert_eq!(
            s.open_run("m").expect("open").map(|r| r.id),
            Some(winner.clone()),
            "{n}"
        );
        s.finish_run(&winner, "SUCCESS", now()).expect("finish");
    }
    assert_eq!(s.recent_runs(Some("m"), 100).expect("runs").len(), 5, "{n}");
}

fn sync_audit_batches_are_atomic(b: &Backend) {
    let s: Arc<dyn SyncStore> = b.store.clone();
    let n = b.name;
    started(
        s.create_run("a1", "users-out", false, now())
            .expect("create"),
    );
    assert_eq!(
        s.append_audit("nope", &[audit_entry("u0")]),
        Err(StoreError::NotFound),
        "{n}"
    );
    let mut failed = audit_entry("u1");
    failed.status = "FAILURE".into();
    failed.error = Some("409 from target".into());
    failed.target_id = Some("t1".into());
    assert_eq!(
        s.append_audit("a1", &[audit_entry("u0"), failed.clone()])
            .expect("append"),
        2,
        "{n}"
    );
    let stored = s.audit("a1", 0, 10).expect("audit");
    assert_eq!(stored.len(), 2, "{n}");
    assert_eq!((stored[1].seq, &stored[1].entry), (2, &failed), "{n}");

    // Concurrent batches to one run: each lands whole and contiguous.
    std::thread::scope(|scope| {
        for t in 0..4 {
            let s = &s;
            scope.spawn(move || {
                for k in 0..5 {
                    let batch: Vec<AuditEntry> = (0..10)
                        .map(|i| audit_entry(&format!("t{t}-b{k}-{i}")))
                        .collect();
                    s.append_audit("a1", &batch).expect("append");
                }
            });
        }
    });
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = s.audit("a1", after, 7).expect("page");
        let Some(last) = page.last() else { break };
        after = last.seq;
        all.extend(page);
    }
    assert_eq!(all.len(), 202, "{n}");
    assert!(
        all.iter().zip(1..).all(|(r, seq)| r.seq == seq),
        "{n}: seqs not 1..=202"
    );
    for batch in all[2..].chunks(10) {
        let batch_of = |r: &AuditRecord| {
            let id = r.entry.source_id.clone().unwrap_or_default();
            id.rsplit_once('-')
                .map(|(b, _)| b.to_string())
                .unwrap_or_default()
        };
        let first = batch_of(&batch[0]);
        assert!(
            batch.iter().all(|r| batch_of(r) == first),
            "{n}: interleaved {batch:?}"
        );
    }

    // PostgreSQL refuses NUL in text: the batch fails whole, its numbers unused.
    if n == "postgres" {
        let poisoned = [audit_entry("ok"), audit_entry("bad\0")];
        assert!(s.append_audit("a1", &poisoned).is_err(), "{n}");
        assert_eq!(s.audit("a1", 202, 10).expect("audit"), vec![], "{n}");
        assert_eq!(
            s.append_audit("a1", &[audit_entry("next")])
                .expect("append"),
            203,
            "{n}"
        );
    }
}

fn sync_runs_are_pruned_with_their_audit(b: &Backend) {
    let s: Arc<dyn SyncStore> = b.store.clone();
    let n = b.name;
    let t0 = now();
    let day = TimeDelta::days(1);
    finished_run(&*s, "old", "users-out", t0 - day * 3);
    finished_run(&*s, "recent", "users-out", t0);
    // Open runs are kept, however old.
    started(
        s.create_run("open", "groups-out", false, t0 - day * 10)
            .expect("open"),
    );
    for id in ["old", "recent", "open"] {
        s.append_audit(id, &[audit_entry("u1"), audit_entry("u2")])
            .expect("audit");
    }
    assert_eq!(s.prune_sync_runs(t0 - day).expect("prune"), 1, "{n}");
    assert_eq!(s.get_run("old"), Err(StoreError::NotFound), "{n}");
    assert_eq!(s.audit("old", 0, 10).expect("audit"), vec![], "{n}");
    for id in ["recent", "open"] {
        assert!(s.get_run(id).is_ok(), "{n}: {id}");
        assert_eq!(s.audit(id, 0, 10).expect("audit").len(), 2, "{n}: {id}");
    }
    assert_eq!(s.prune_sync_runs(t0 - day).expect("again"), 0, "{n}");
}

// ---------------------------------------------------------------- search budget

fn assert_too_many(outcome: Result<scim_store::Page, StoreError>) {
    match outcome {
        Err(StoreError::Query(e)) => {
            assert_eq!(e.status, 400, "{e:?}");
            assert_eq!(e.scim_type, Some(scim_proto::ScimType::TooMany), "{e:?}");
            assert!(e.detail.contains("budget"), "{e:?}");
        }
        other => panic!("expected 400 tooMany, got {other:?}"),
    }
}

fn scan_query(filter: &str) -> Query {
    Query {
        filter: Some(parse_filter(filter).expect("filter")),
        start_index: 1,
        count: 10,
        ..Query::default()
    }
}

/// A search still scanning when its budget runs out is stopped (400 tooMany),
/// and the reader serves the next search as before.
#[test]
fn sqlite_searches_stop_at_their_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = registry();
    let path = dir.path().join("budget.db");
    let store = SqliteStore::open(&path, shared(&reg))
        .expect("open SQLite")
        .with_search_budget(std::time::Duration::from_nanos(1));
    let b = Backend {
        name: "sqlite",
        store: Arc::new(store),
        reg,
        _keep: Box::new(dir),
    };
    for i in 0..300 {
        b.user(&format!("budget{i}"));
    }
    // A one-character needle cannot use the trigram index: it scans 300 values,
    // far more steps than the progress handler's interval.
    assert_too_many(
        b.store
            .search(&b.rt("User"), &scan_query(r#"userName co "u""#)),
    );
    let relaxed = SqliteStore::open(&path, shared(&b.reg)).expect("reopen");
    let page = relaxed
        .search(&b.rt("User"), &scan_query(r#"userName co "u""#))
        .expect("within the default budget");
    assert_eq!(page.total, 300);
}

/// On PostgreSQL the budget is the transaction's statement_timeout: a search
/// that cannot finish in time (here it waits for a lock another session holds)
/// is canceled and answers 400 tooMany, without waiting for the lock's end.
#[test]
fn postgres_searches_stop_at_their_budget() {
    let Some(schema) = ScratchSchema::for_tests("budget") else {
        return;
    };
    let reg = registry();
    let options = PostgresOptions {
        max_connections: 4,
        min_idle: 1,
        search_budget: std::time::Duration::from_millis(200),
        ..PostgresOptions::default()
    };
    let store = PostgresStore::open(&schema.url, shared(&reg), &options).expect("open");
    let b = Backend {
        name: "postgres",
        store: Arc::new(store),
        reg,
        _keep: Box::new(()),
    };
    b.user("budget-x");
    let mut other = postgres::Client::connect(&schema.url, postgres::NoTls).expect("connect");
    let mut locked = other.transaction().expect("begin");
    locked
        .batch_execute("LOCK TABLE attr_index IN ACCESS EXCLUSIVE MODE")
        .expect("lock");
    let t = std::time::Instant::now();
    assert_too_many(
        b.store
            .search(&b.rt("User"), &scan_query(r#"userName co "get-x""#)),
    );
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
    locked.rollback().expect("unlock");
    let (total, names) = b.search(
        "User",
        Some(r#"userName co "get-x""#),
        None,
        SortOrder::Ascending,
        1,
        10,
    );
    assert_eq!((total, names), (1, vec!["budget-x".to_string()]));
    drop(b);
    drop(schema);
}

/// PostgreSQL's type counts are base rows plus deltas that each writing
/// statement inserts; folding the deltas (every 64 writes of a process, or when
/// asked) keeps the totals exact and the deltas few.
#[test]
fn postgres_type_count_deltas_fold_into_exact_totals() {
    let Some(b) = postgres() else {
        return;
    };
    let total = |b: &Backend| b.search("User", None, None, SortOrder::Ascending, 1, 0).0;
    let users: Vec<StoredResource> = (0..70).map(|i| b.user(&format!("fold{i}"))).collect();
    for u in &users[..5] {
        b.store
            .delete(&b.rt("User"), &u.id, None, now(), &Actor::default())
            .expect("delete");
    }
    assert_eq!(total(&b), 65);
    let schema = b._keep.downcast_ref::<ScratchSchema>().expect("schema");
    let mut client = postgres::Client::connect(&schema.url, postgres::NoTls).expect("connect");
    let deltas = |c: &mut postgres::Client| -> i64 {
        c.query_one("SELECT count(*) FROM type_count_deltas", &[])
            .and_then(|r| r.try_get(0))
            .expect("deltas")
    };
    // The 64th write folded the 64 before it.
    assert!(deltas(&mut client) < 70, "{}", deltas(&mut client));
    let store = PostgresStore::open(&schema.url, shared(&b.reg), &PostgresOptions::default())
        .expect("open");
    store.compact_type_counts().expect("fold");
    assert_eq!(deltas(&mut client), 0);
    assert_eq!(total(&b), 65);
}

/// `co` and `ew` answered from the trigram index see every write: a replace that
/// changes one value (and keeps the others), a delete, and a new resource.
fn substring_search_follows_every_write(b: &Backend) {
    let co = |b: &Backend, f: &str| {
        b.search("User", Some(f), None, SortOrder::Ascending, 1, 10)
            .1
    };
    let a = b
        .user_doc(
            "alice.smith",
            json!({"emails": [{"value": "alice@smith.example"}], "displayName": "Alice Smith"}),
        )
        .expect("create");
    let other = b.user("bob.smithers");
    assert_eq!(
        co(b, r#"userName co "smith""#),
        vec!["alice.smith", "bob.smithers"]
    );
    assert_eq!(
        co(b, r#"emails.value ew "smith.example""#),
        vec!["alice.smith"]
    );
    let a = b
        .update(
            &a,
            None,
            |d| d["userName"] = json!("alice.jones"),
            MemberChange::Keep,
        )
        .expect("rename");
    assert_eq!(co(b, r#"userName co "smith""#), vec!["bob.smithers"]);
    assert_eq!(co(b, r#"userName co "jones""#), vec!["alice.jones"]);
    // The values the replace kept are still found.
    assert_eq!(co(b, r#"displayName co "ice smi""#), vec!["alice.jones"]);
    assert_eq!(co(b, r#"emails.value co "smith.ex""#), vec!["alice.jones"]);
    b.store
        .delete(&b.rt("User"), &a.id, None, now(), &Actor::default())
        .expect("delete");
    assert!(co(b, r#"emails.value co "smith.ex""#).is_empty());
    b.store
        .delete(&b.rt("User"), &other.id, None, now(), &Actor::default())
        .expect("delete");
    b.user("carol.smithson");
    assert_eq!(co(b, r#"userName co "smith""#), vec!["carol.smithson"]);
}

/// Every change in the feed carries the document of its own version, whatever
/// the writes after it (SQLite stores a version's document in the feed only once
/// a later write supersedes it).
fn the_feed_shows_each_version_as_written(b: &Backend) {
    let users = b.rt("User");
    let u = b.user("versions");
    let v2 = b
        .update(
            &u,
            None,
            |d| d["nickName"] = json!("two"),
            MemberChange::Keep,
        )
        .expect("update");
    let v3 = b
        .update(
            &v2,
            None,
            |d| d["nickName"] = json!("three"),
            MemberChange::Keep,
        )
        .expect("update");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mine = |page: &scim_store::ChangePage| -> Vec<(i64, Option<Value>)> {
        page.changes
            .iter()
            .filter(|c| c.id == u.id)
            .map(|c| (c.version, c.doc.as_ref().map(|d| d["nickName"].clone())))
            .collect()
    };
    let settled = |want: usize| loop {
        let page = b.store.changes(None, 100).expect("changes");
        if mine(&page).len() >= want || std::time::Instant::now() > deadline {
            return mine(&page);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(
        settled(3),
        vec![
            (1, Some(Value::Null)),
            (2, Some(json!("two"))),
            (3, Some(json!("three")))
        ]
    );
    b.store
        .delete(&users, &u.id, Some(v3.version), now(), &Actor::default())
        .expect("delete");
    assert_eq!(
        settled(4),
        vec![
            (1, Some(Value::Null)),
            (2, Some(json!("two"))),
            (3, Some(json!("three"))),
            // A deletion records the version it deleted.
            (3, None)
        ]
    );
    // The id taken again, up to the deleted version: the deletion still shows
    // no document, and the new versions their own.
    let again = b.user_with_id(&u.id, "versions", json!({})).expect("again");
    let again = b
        .update(
            &again,
            None,
            |d| d["nickName"] = json!("again"),
            MemberChange::Keep,
        )
        .expect("update");
    b.update(
        &again,
        None,
        |d| d["nickName"] = json!("again3"),
        MemberChange::Keep,
    )
    .expect("update");
    let all = settled(7);
    assert_eq!(all[3], (3, None), "{all:?}");
    assert_eq!(all[6], (3, Some(json!("again3"))), "{all:?}");
}

/// A session that opens a transaction, takes a transaction id and sleeps in
/// it for `secs`, as a forgotten psql session would; its backend pid.
fn hold_transaction(config: postgres::Config, secs: u32) -> (i32, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut c = config.connect(postgres::NoTls).expect("connect");
        let pid: i32 = c
            .query_one("SELECT pg_backend_pid()", &[])
            .expect("pid")
            .get(0);
        let mut t = c.transaction().expect("begin");
        t.query_one("SELECT txid_current()", &[]).expect("xid");
        tx.send(pid).expect("send pid");
        // Ends early when the test terminates the backend.
        let _ = t.batch_execute(&format!("SELECT pg_sleep({secs})"));
    });
    (rx.recv().expect("pid"), handle)
}

/// How long until `want` creations after `from` are in the feed.
fn until_in_feed(
    b: &Backend,
    from: Option<&str>,
    want: usize,
) -> (std::time::Duration, Vec<scim_store::Change>) {
    let t = std::time::Instant::now();
    loop {
        let page = b.store.changes(from, 100).expect("changes");
        if page.changes.len() >= want || t.elapsed() > std::time::Duration::from_secs(30) {
            return (t.elapsed(), page.changes);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A transaction left open elsewhere must not freeze the feed: one in another
/// database is no scimd writer at all, one in this database older than
/// scimd's write bound no longer can be. Neither makes a change skip.
#[test]
fn postgres_feed_is_held_back_by_foreign_transactions_at_most_the_write_bound() {
    let Some(schema) = ScratchSchema::for_tests("horizon") else {
        return;
    };
    let reg = registry();
    let bound = std::time::Duration::from_secs(2);
    let options = PostgresOptions {
        max_connections: 4,
        min_idle: 1,
        max_write_duration: bound,
        ..PostgresOptions::default()
    };
    let store = PostgresStore::open(&schema.url, shared(&reg), &options).expect("open");
    let b = Backend {
        name: "postgres",
        store: Arc::new(store),
        reg,
        _keep: Box::new(()),
    };
    let here: postgres::Config = schema.url.parse().expect("url");
    let mut elsewhere = here.clone();
    elsewhere.dbname("postgres");
    let head = b.store.feed_head().expect("head");

    // Another database's session holds a transaction for 60 s: no delay.
    let (other_pid, other) = hold_transaction(elsewhere, 60);
    b.user("horizon-a");
    let (waited, changes) = until_in_feed(&b, head.as_deref(), 1);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(waited < std::time::Duration::from_secs(2), "{waited:?}");

    // A session of this database: waited for, but only for the bound and its
    // 5 s margin (not until it ends).
    let (here_pid, held) = hold_transaction(here.clone(), 60);
    let before = b.store.changes(head.as_deref(), 100).expect("changes");
    assert_eq!(before.changes.len(), 1);
    for name in ["horizon-b", "horizon-c", "horizon-d"] {
        b.user(name);
    }
    let (waited, changes) = until_in_feed(&b, head.as_deref(), 4);
    let mut admin = here.connect(postgres::NoTls).expect("connect");
    for pid in [other_pid, here_pid] {
        admin
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .expect("terminate");
    }
    let _ = (other.join(), held.join());
    assert!(
        waited >= bound && waited < bound + std::time::Duration::from_secs(9),
        "the open transaction held the feed back for {waited:?}"
    );
    // Complete and in order.
    assert_eq!(changes.len(), 4, "{changes:?}");
    assert!(changes.iter().all(|c| c.op == ChangeOp::Created));
    drop(b);
    drop(schema);
}
