//! In-process tests of the service layer against a temporary SQLite store: every
//! test opens its own database in its own directory, and time comes from a test
//! clock that only moves when a test moves it.

use super::{Rendered, RequestCtx, SearchCost, Service};
use crate::config::ServerConfig;
use chrono::{DateTime, TimeZone, Utc};
use scim_proto::clock::Clock;
use scim_proto::messages::{SearchRequest, BULK_REQUEST, BULK_RESPONSE, LIST_RESPONSE, PATCH_OP};
use scim_proto::project::Projection;
use scim_proto::schema::custom::{CustomAttribute, CustomType, GLUU_USER_EXTENSION};
use scim_proto::schema::{
    RegistryOptions, ResourceTypeDef, SchemaRegistry, SharedRegistry, FIDO_DEVICE_SCHEMA,
    GROUP_SCHEMA, USER_SCHEMA,
};
use scim_proto::{ScimError, ScimResult, ScimType};
use scim_store::sqlite::SqliteStore;
use scim_store::ExportRecord;
use serde_json::{json, Value};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use tempfile::TempDir;

const BASE: &str = "http://h/scim/v2";

// ---------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------

/// A clock that stands still until a test moves it.
struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
            .single()
            .expect("a valid start time")
    }

    fn advance_ms(&self, ms: i64) {
        let mut t = self.0.lock().expect("clock lock");
        *t += chrono::TimeDelta::milliseconds(ms);
    }

    /// One second later: resources created after a tick sort after those before.
    fn tick(&self) {
        self.advance_ms(1000);
    }

    fn at(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        self.at()
    }
}

/// A service over a new SQLite database in its own temporary directory, and the
/// clock it reads. Keep the directory alive as long as the service.
fn fixture() -> (TempDir, Service, Arc<TestClock>) {
    fixture_with(Arc::new(scim_hooks::NoHooks))
}

/// `fixture` with these interception hooks.
fn fixture_with(hooks: Arc<dyn scim_hooks::Hooks>) -> (TempDir, Service, Arc<TestClock>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = ServerConfig::default();
    let registry = Arc::new(SharedRegistry::new(SchemaRegistry::build(
        &RegistryOptions {
            devices: config.devices,
            custom: Some((config.custom_schema_urn.clone(), vec![])),
        },
    )));
    let store = SqliteStore::open(&dir.path().join("scim.db"), registry.clone())
        .expect("open the SQLite store");
    let clock = Arc::new(TestClock(Mutex::new(TestClock::start())));
    let service = Service {
        registry,
        store: Arc::new(store),
        clock: clock.clone(),
        config,
        updating: Default::default(),
        hooks,
        scripts: Arc::new(crate::scripts::AcceptAllScripts),
    };
    service.reload_registry().expect("reload the registry");
    (dir, service, clock)
}

fn service() -> (TempDir, Service) {
    let (dir, svc, _) = fixture();
    (dir, svc)
}

/// A request context as the HTTP layer builds it: base URL, full projection,
/// today's registry.
fn ctx(svc: &Service) -> RequestCtx {
    ctx_with(svc, Projection::default())
}

fn ctx_with(svc: &Service, projection: Projection) -> RequestCtx {
    RequestCtx {
        base_url: BASE.into(),
        projection,
        overhead_bypass: false,
        registry: svc.registry(),
        hook: None,
        actor: Default::default(),
    }
}

fn rt(svc: &Service, name: &str) -> ResourceTypeDef {
    svc.registry()
        .resource_type(name)
        .unwrap_or_else(|| panic!("resource type {name}"))
        .clone()
}

fn users(svc: &Service) -> ResourceTypeDef {
    rt(svc, "User")
}

fn groups(svc: &Service) -> ResourceTypeDef {
    rt(svc, "Group")
}

fn err<T: Debug>(r: ScimResult<T>) -> ScimError {
    r.expect_err("the service refuses this")
}

/// Status, scimType and detail of an error, for one-line assertions.
fn parts(e: &ScimError) -> (u16, Option<ScimType>, &str) {
    (e.status, e.scim_type, e.detail.as_str())
}

fn user_body(name: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "userName": name,
        "displayName": format!("{name} display"),
        "emails": [{"value": format!("{name}@example.com"), "primary": true}],
    })
}

fn id_of(r: &Rendered) -> String {
    r.doc["id"].as_str().expect("an id").to_string()
}

/// Create a user one tick after the previous write.
fn create_user(svc: &Service, clock: &TestClock, name: &str) -> Rendered {
    clock.tick();
    svc.create(&users(svc), &user_body(name), &ctx(svc))
        .unwrap_or_else(|e| panic!("create user {name}: {e}"))
}

fn create_group(svc: &Service, clock: &TestClock, name: &str, members: &[&str]) -> Rendered {
    clock.tick();
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    let body = json!({"schemas": [GROUP_SCHEMA], "displayName": name, "members": members});
    svc.create(&groups(svc), &body, &ctx(svc))
        .unwrap_or_else(|e| panic!("create group {name}: {e}"))
}

fn patch_body(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// The ids of a single group's member list, as the response writes them.
fn member_ids(r: &Rendered) -> Vec<String> {
    let Some(list) = &r.members else {
        return vec![];
    };
    serde_json::to_value(list)
        .expect("serialise members")
        .as_array()
        .expect("an array of members")
        .iter()
        .map(|m| m["value"].as_str().expect("member value").to_string())
        .collect()
}

fn search(svc: &Service, rt: &ResourceTypeDef, req: &SearchRequest) -> Value {
    let c = ctx(svc);
    let q = svc.prepare_search(rt, req, &c).expect("a valid search");
    svc.search(&q, &c).expect("the search runs")
}

fn filter(f: &str) -> SearchRequest {
    SearchRequest {
        filter: Some(f.into()),
        ..SearchRequest::default()
    }
}

fn names(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .expect("Resources")
        .iter()
        .map(|r| {
            r.get("userName")
                .or_else(|| r.get("displayName"))
                .and_then(Value::as_str)
                .expect("a name")
                .to_string()
        })
        .collect()
}

fn exported(svc: &Service, id: &str) -> ExportRecord {
    let mut found = None;
    svc.store
        .export(&mut |r| {
            if r.id == id {
                found = Some(r);
            }
            Ok(())
        })
        .expect("export");
    found.unwrap_or_else(|| panic!("{id} is exported"))
}

fn allow_all(_method: &str, _endpoint: &str) -> Result<(), ScimError> {
    Ok(())
}

// ---------------------------------------------------------------------------
// Create and read
// ---------------------------------------------------------------------------

#[test]
fn create_user_stamps_id_meta_and_location() {
    let (_dir, svc, _clock) = fixture();
    let mut body = user_body("bjensen");
    body["password"] = json!("t1meMa$heen");
    // Client values of readOnly attributes are ignored.
    body["id"] = json!("chosen-by-client");
    body["meta"] = json!({"created": "2000-01-01T00:00:00Z"});
    body["groups"] = json!([{"value": "g"}]);
    let created = svc.create(&users(&svc), &body, &ctx(&svc)).expect("create");
    let id = id_of(&created);
    assert_ne!(id, "chosen-by-client");
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "a UUID: {id}");
    assert_eq!(created.version, 1);
    assert_eq!(created.location, format!("{BASE}/Users/{id}"));
    assert!(created.members.is_none());
    assert_eq!(
        created.doc,
        json!({
            "schemas": [USER_SCHEMA],
            "id": id,
            "userName": "bjensen",
            "displayName": "bjensen display",
            "emails": [{"value": "bjensen@example.com", "primary": true}],
            "meta": {
                "resourceType": "User",
                "created": "2024-05-01T12:00:00.000Z",
                "lastModified": "2024-05-01T12:00:00.000Z",
                "version": "W/\"1\"",
                "location": format!("{BASE}/Users/{id}"),
            },
        })
    );

    let got = svc.get(&users(&svc), &id, &ctx(&svc)).expect("get");
    assert_eq!(got.doc, created.doc);
    assert_eq!((got.version, got.location), (1, created.location.clone()));

    // Stored: hashed, never the clear text, never in the document.
    let rec = exported(&svc, &id);
    let hash = rec.secret.expect("a password hash");
    assert_ne!(hash, "t1meMa$heen");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!rec.doc.to_string().contains("t1meMa$heen"));
    assert!(rec.doc.get("password").is_none());
    assert_eq!(rec.unique_key.as_deref(), Some("bjensen"));
    assert_eq!(rec.display.as_deref(), Some("bjensen display"));
    // The stored document carries no rendering: no version, no location.
    assert_eq!(
        rec.doc["meta"],
        json!({"resourceType": "User", "created": "2024-05-01T12:00:00.000Z",
               "lastModified": "2024-05-01T12:00:00.000Z"})
    );

    // Asking for the password by name does not show it either.
    let pw_only = ctx_with(&svc, Projection::parse(Some("password"), None).expect("p"));
    let got = svc.get(&users(&svc), &id, &pw_only).expect("get");
    assert!(got.doc.get("password").is_none(), "{}", got.doc);
    assert_eq!(got.doc["id"], json!(id));
}

#[test]
fn timestamps_are_cut_to_milliseconds() {
    let (_dir, svc, clock) = fixture();
    // 1.234567 s later: the sub-millisecond part is not shown, nor stored.
    *clock.0.lock().expect("clock") += chrono::TimeDelta::microseconds(1_234_567);
    let u = svc
        .create(&users(&svc), &user_body("precise"), &ctx(&svc))
        .expect("create");
    assert_eq!(u.doc["meta"]["created"], "2024-05-01T12:00:01.234Z");
    assert_eq!(u.doc["meta"]["lastModified"], "2024-05-01T12:00:01.234Z");
    let rec = exported(&svc, &id_of(&u));
    let cut = TestClock::start() + chrono::TimeDelta::milliseconds(1234);
    assert_eq!((rec.created, rec.modified), (cut, cut));
}

#[test]
fn local_ctx_renders_relative_locations() {
    let (_dir, svc) = service();
    let c = svc.local_ctx();
    let u = svc
        .create(&users(&svc), &user_body("local"), &c)
        .expect("create");
    let id = id_of(&u);
    assert_eq!(u.location, format!("/Users/{id}"));
    assert_eq!(u.doc["meta"]["location"], format!("/Users/{id}"));
}

#[test]
fn create_rejects_bad_bodies() {
    let (_dir, svc) = service();
    let c = ctx(&svc);
    let u = users(&svc);
    let e = err(svc.create(&u, &json!({"schemas": [USER_SCHEMA]}), &c));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidValue),
            "attribute 'userName' is required"
        )
    );
    let e = err(svc.create(&u, &json!({"userName": "x"}), &c));
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{e}");
    let e = err(svc.create(
        &u,
        &json!({"schemas": [USER_SCHEMA], "userName": "x", "shoeSize": 44}),
        &c,
    ));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidSyntax),
            "unknown attribute 'shoeSize'"
        )
    );
    let e = err(svc.create(
        &u,
        &json!({"schemas": [USER_SCHEMA], "userName": "x", "password": 42}),
        &c,
    ));
    assert_eq!(e.status, 400, "{e}");
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
    // Nothing was stored by the refused creations.
    let all = search(&svc, &u, &SearchRequest::default());
    assert_eq!(all["totalResults"], 0);
}

#[test]
fn get_of_a_missing_resource_is_404_naming_it() {
    let (_dir, svc) = service();
    let e = err(svc.get(&users(&svc), "nope", &ctx(&svc)));
    assert_eq!(parts(&e), (404, None, "User 'nope' not found"));
    let e = err(svc.get(&groups(&svc), "nope", &ctx(&svc)));
    assert_eq!(parts(&e), (404, None, "Group 'nope' not found"));
    let e = err(svc.version(&users(&svc), "nope"));
    assert_eq!(e.status, 404);
}

#[test]
fn a_resource_is_found_only_under_its_own_type() {
    let (_dir, svc, clock) = fixture();
    let u = create_user(&svc, &clock, "alice");
    let e = err(svc.get(&groups(&svc), &id_of(&u), &ctx(&svc)));
    assert_eq!(e.status, 404, "{e}");
    let e = err(svc.delete(&groups(&svc), &id_of(&u), None, &ctx(&svc)));
    assert_eq!(e.status, 404, "{e}");
    assert!(svc.get(&users(&svc), &id_of(&u), &ctx(&svc)).is_ok());
}

// ---------------------------------------------------------------------------
// Uniqueness
// ---------------------------------------------------------------------------

#[test]
fn user_name_is_unique_regardless_of_case() {
    let (_dir, svc, clock) = fixture();
    create_user(&svc, &clock, "bjensen");
    let e = err(svc.create(&users(&svc), &user_body("BJensen"), &ctx(&svc)));
    assert_eq!(
        parts(&e),
        (
            409,
            Some(ScimType::Uniqueness),
            "userName 'BJensen' is already in use"
        )
    );

    // Taking the name by PUT or PATCH is refused the same way.
    let other = create_user(&svc, &clock, "other");
    let e = err(svc.replace(
        &users(&svc),
        &id_of(&other),
        &user_body("BJENSEN"),
        None,
        &ctx(&svc),
    ));
    assert_eq!(
        parts(&e),
        (
            409,
            Some(ScimType::Uniqueness),
            "userName 'BJENSEN' is already in use"
        )
    );
    let e = err(svc.patch(
        &users(&svc),
        &id_of(&other),
        &patch_body(json!([{"op": "replace", "path": "userName", "value": "bJensen"}])),
        None,
        &ctx(&svc),
    ));
    assert_eq!(
        parts(&e),
        (
            409,
            Some(ScimType::Uniqueness),
            "userName 'bJensen' is already in use"
        )
    );
    // The refused writes changed nothing.
    assert_eq!(svc.version(&users(&svc), &id_of(&other)).expect("v"), 1);

    // A user may change the case of its own name.
    let renamed = svc
        .patch(
            &users(&svc),
            &id_of(&other),
            &patch_body(json!([{"op": "replace", "path": "userName", "value": "OTHER"}])),
            None,
            &ctx(&svc),
        )
        .expect("own name in another case");
    assert_eq!(renamed.doc["userName"], "OTHER");

    // Group display names are not unique.
    create_group(&svc, &clock, "same", &[]);
    create_group(&svc, &clock, "same", &[]);
}

// ---------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------

fn device_body(user_id: &str) -> Value {
    json!({
        "schemas": [FIDO_DEVICE_SCHEMA],
        "userId": user_id,
        "creationDate": "2024-01-02T03:04:05Z",
        "application": "https://idp.example.org",
        "counter": 7,
        "deviceKeyHandle": "kh",
        "status": "active",
        "displayName": "My phone",
    })
}

fn device_search(user_id: &str) -> SearchRequest {
    SearchRequest {
        user_id: Some(user_id.into()),
        ..SearchRequest::default()
    }
}

#[test]
fn devices_are_enrolled_not_posted_and_go_with_their_user() {
    let (_dir, svc, clock) = fixture();
    let fido = rt(&svc, "FidoDevice");
    let alice = create_user(&svc, &clock, "alice");
    let bob = create_user(&svc, &clock, "bob");
    let (alice_id, bob_id) = (id_of(&alice), id_of(&bob));

    let e = err(svc.create(&fido, &device_body(&alice_id), &ctx(&svc)));
    assert_eq!(e.status, 405, "{e}");
    assert_eq!(e.scim_type, None);
    assert!(
        e.detail.starts_with("FidoDevice resources are enrolled"),
        "{e}"
    );
    let fido2 = rt(&svc, "Fido2Device");
    assert_eq!(err(svc.create(&fido2, &json!({}), &ctx(&svc))).status, 405);

    let e = err(svc.enrol_device(&fido, &device_body("nobody"), &ctx(&svc)));
    assert_eq!(parts(&e), (404, None, "User 'nobody' not found"));
    let e = err(svc.enrol_device(&fido, &json!({"schemas": [FIDO_DEVICE_SCHEMA]}), &ctx(&svc)));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidValue),
            "a device needs the userId of its owner"
        )
    );
    let e = err(svc.enrol_device(&users(&svc), &user_body("x"), &ctx(&svc)));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidValue),
            "User is not a device type"
        )
    );

    let d1 = svc
        .enrol_device(&fido, &device_body(&alice_id), &ctx(&svc))
        .expect("enrol");
    let d2 = svc
        .enrol_device(&fido, &device_body(&alice_id), &ctx(&svc))
        .expect("enrol");
    let kept = svc
        .enrol_device(&fido, &device_body(&bob_id), &ctx(&svc))
        .expect("enrol");
    assert_eq!(d1.doc["meta"]["resourceType"], "FidoDevice");
    assert_eq!(d1.location, format!("{BASE}/FidoDevices/{}", id_of(&d1)));
    assert_eq!(
        search(&svc, &fido, &device_search(&alice_id))["totalResults"],
        2
    );

    svc.delete(&users(&svc), &alice_id, None, &ctx(&svc))
        .expect("delete alice");
    for d in [&d1, &d2] {
        let e = err(svc.get(&fido, &id_of(d), &ctx(&svc)));
        assert_eq!(e.status, 404, "device {} went with its user", id_of(d));
    }
    assert_eq!(
        search(&svc, &fido, &device_search(&alice_id))["totalResults"],
        0
    );
    // Another user's device stays.
    assert!(svc.get(&fido, &id_of(&kept), &ctx(&svc)).is_ok());
    assert_eq!(
        search(&svc, &fido, &device_search(&bob_id))["totalResults"],
        1
    );
}

#[test]
fn device_immutable_and_writable_attributes() {
    let (_dir, svc, clock) = fixture();
    let fido = rt(&svc, "FidoDevice");
    let owner = create_user(&svc, &clock, "owner");
    let d = svc
        .enrol_device(&fido, &device_body(&id_of(&owner)), &ctx(&svc))
        .expect("enrol");
    let id = id_of(&d);

    // PATCH of an immutable attribute: 400 mutability; of a writable one: fine.
    let e = err(svc.patch(
        &fido,
        &id,
        &patch_body(json!([{"op": "replace", "path": "application", "value": "other"}])),
        None,
        &ctx(&svc),
    ));
    assert_eq!(e.status, 400, "{e}");
    assert_eq!(e.scim_type, Some(ScimType::Mutability));
    let p = svc
        .patch(
            &fido,
            &id,
            &patch_body(json!([{"op": "replace", "path": "status", "value": "compromised"}])),
            None,
            &ctx(&svc),
        )
        .expect("writable");
    assert_eq!(p.doc["status"], "compromised");
    assert_eq!(p.version, 2);

    // PUT: an immutable value may be repeated or omitted, not changed.
    let mut put = p.doc.clone();
    put["description"] = json!("described");
    let r = svc
        .replace(&fido, &id, &put, None, &ctx(&svc))
        .expect("put");
    assert_eq!(r.doc["description"], "described");
    let mut omitted = put.clone();
    omitted
        .as_object_mut()
        .expect("object")
        .remove("application");
    let r = svc
        .replace(&fido, &id, &omitted, None, &ctx(&svc))
        .expect("omitted immutable value is kept");
    assert_eq!(r.doc["application"], "https://idp.example.org");
    put["counter"] = json!(1000);
    let e = err(svc.replace(&fido, &id, &put, None, &ctx(&svc)));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::Mutability),
            "attribute 'counter' is immutable and cannot be changed"
        )
    );
    assert_eq!(svc.version(&fido, &id).expect("v"), 4);
}

// ---------------------------------------------------------------------------
// Replace and patch
// ---------------------------------------------------------------------------

#[test]
fn replace_bumps_the_version_and_honours_if_match() {
    let (_dir, svc, clock) = fixture();
    let u = create_user(&svc, &clock, "carol");
    let id = id_of(&u);
    let created_at = u.doc["meta"]["created"].clone();
    clock.tick();
    let mut body = user_body("carol");
    body["displayName"] = json!("Carol");
    let r = svc
        .replace(&users(&svc), &id, &body, Some(1), &ctx(&svc))
        .expect("replace");
    assert_eq!(r.version, 2);
    assert_eq!(r.doc["displayName"], "Carol");
    assert_eq!(r.doc["meta"]["version"], "W/\"2\"");
    assert_eq!(r.doc["meta"]["created"], created_at);
    assert_eq!(r.doc["meta"]["lastModified"], "2024-05-01T12:00:02.000Z");
    assert_eq!(r.doc["id"], json!(id));

    // A stale If-Match is refused and changes nothing.
    let e = err(svc.replace(&users(&svc), &id, &user_body("carol"), Some(1), &ctx(&svc)));
    assert_eq!(
        parts(&e),
        (412, None, "resource version does not match If-Match")
    );
    let e = err(svc.patch(
        &users(&svc),
        &id,
        &patch_body(json!([{"op": "replace", "path": "title", "value": "x"}])),
        Some(1),
        &ctx(&svc),
    ));
    assert_eq!(e.status, 412, "{e}");
    let e = err(svc.delete(&users(&svc), &id, Some(1), &ctx(&svc)));
    assert_eq!(e.status, 412, "{e}");
    let now = svc.get(&users(&svc), &id, &ctx(&svc)).expect("still there");
    assert_eq!(now.version, 2);
    assert_eq!(now.doc["displayName"], "Carol");

    // Without If-Match the write lands on whatever version is current.
    let r = svc
        .replace(&users(&svc), &id, &user_body("carol"), None, &ctx(&svc))
        .expect("unconditional");
    assert_eq!(r.version, 3);
    // PUT replaces: an attribute left out is gone.
    assert_eq!(r.doc["displayName"], "carol display");
    let mut bare = json!({"schemas": [USER_SCHEMA], "userName": "carol"});
    let r = svc
        .replace(&users(&svc), &id, &bare, Some(3), &ctx(&svc))
        .expect("bare");
    assert!(r.doc.get("displayName").is_none() && r.doc.get("emails").is_none());

    // id: the same is accepted, another one is not.
    bare["id"] = json!(id);
    assert!(svc
        .replace(&users(&svc), &id, &bare, None, &ctx(&svc))
        .is_ok());
    bare["id"] = json!("another");
    let e = err(svc.replace(&users(&svc), &id, &bare, None, &ctx(&svc)));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidValue),
            "id \"another\" does not match the resource's id"
        )
    );
    // readOnly meta in a PUT body is ignored: the server's stays.
    let body = json!({"schemas": [USER_SCHEMA], "userName": "carol",
                      "meta": {"created": "1999-01-01T00:00:00Z", "resourceType": "Group"}});
    let r = svc
        .replace(&users(&svc), &id, &body, None, &ctx(&svc))
        .expect("put");
    assert_eq!(r.doc["meta"]["created"], created_at);
    assert_eq!(r.doc["meta"]["resourceType"], "User");

    let e = err(svc.replace(&users(&svc), "missing", &bare, None, &ctx(&svc)));
    assert_eq!(parts(&e), (404, None, "User 'missing' not found"));
}

#[test]
fn replace_keeps_the_password_unless_one_is_sent() {
    let (_dir, svc) = service();
    let mut body = user_body("dave");
    body["password"] = json!("first");
    let u = svc.create(&users(&svc), &body, &ctx(&svc)).expect("create");
    let id = id_of(&u);
    let first = exported(&svc, &id).secret.expect("hash");

    svc.replace(&users(&svc), &id, &user_body("dave"), None, &ctx(&svc))
        .expect("put without password");
    assert_eq!(exported(&svc, &id).secret.as_deref(), Some(first.as_str()));

    let r = svc
        .patch(
            &users(&svc),
            &id,
            &patch_body(json!([{"op": "replace", "path": "password", "value": "second"}])),
            None,
            &ctx(&svc),
        )
        .expect("patch password");
    assert!(r.doc.get("password").is_none(), "{}", r.doc);
    let second = exported(&svc, &id).secret.expect("hash");
    assert_ne!(second, first);
    assert_ne!(second, "second");
    assert!(second.starts_with("$argon2id$"));
}

#[test]
fn patch_applies_operations_and_reports_bad_paths() {
    let (_dir, svc, clock) = fixture();
    let u = create_user(&svc, &clock, "erin");
    let id = id_of(&u);
    let user = users(&svc);
    let c = ctx(&svc);
    clock.tick();
    let r = svc
        .patch(
            &user,
            &id,
            &patch_body(json!([
                {"op": "add", "path": "title", "value": "Engineer"},
                {"op": "replace", "path": "emails[value eq \"erin@example.com\"].value",
                 "value": "erin@corp.example"},
                {"op": "remove", "path": "displayName"},
            ])),
            Some(1),
            &c,
        )
        .expect("patch");
    assert_eq!(r.version, 2);
    assert_eq!(r.doc["title"], "Engineer");
    assert_eq!(r.doc["emails"][0]["value"], "erin@corp.example");
    assert!(r.doc.get("displayName").is_none());
    assert_eq!(r.doc["meta"]["lastModified"], "2024-05-01T12:00:02.000Z");
    assert_eq!(r.doc["meta"]["created"], "2024-05-01T12:00:01.000Z");

    let bad = |ops: Value| err(svc.patch(&user, &id, &patch_body(ops), None, &c));
    let e = bad(json!([{"op": "replace", "path": "shoeSize", "value": 44}]));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidPath),
            "Operations[0]: unknown attribute 'shoeSize'"
        )
    );
    let e = bad(json!([{"op": "replace", "path": "name.nickname", "value": "x"}]));
    assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{e}");
    let e = bad(json!([{"op": "replace", "path": "id", "value": "x"}]));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::Mutability),
            "Operations[0]: 'id' is readOnly"
        )
    );
    let e = bad(json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]));
    assert_eq!(e.scim_type, Some(ScimType::Mutability), "{e}");
    let e = bad(json!([{"op": "remove"}]));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::NoTarget),
            "Operations[0]: remove requires a 'path'"
        )
    );
    let e = bad(json!([{"op": "remove", "path": "emails[value eq \"nobody@x\"]"}]));
    assert_eq!(e.scim_type, Some(ScimType::NoTarget), "{e}");
    let e = bad(json!([{"op": "remove", "path": "userName"}]));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidValue),
            "Operations[0]: 'userName' is required and cannot be removed"
        )
    );
    let e = bad(json!([{"op": "frobnicate", "path": "title", "value": "x"}]));
    assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax), "{e}");
    let e = err(svc.patch(&user, &id, &json!({"Operations": []}), None, &c));
    assert_eq!(e.status, 400, "{e}");
    assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));

    // None of the refused PATCHes wrote anything.
    assert_eq!(svc.version(&user, &id).expect("v"), 2);
    let e = err(svc.patch(
        &user,
        "missing",
        &patch_body(json!([{"op": "replace", "path": "title", "value": "x"}])),
        None,
        &c,
    ));
    assert_eq!(parts(&e), (404, None, "User 'missing' not found"));

    // Echoing readOnly values back in a path-less replace changes nothing there.
    let r = svc
        .patch(
            &user,
            &id,
            &patch_body(json!([{"op": "replace", "value": {"id": id, "title": "Lead"}}])),
            None,
            &c,
        )
        .expect("echoed id");
    assert_eq!(r.doc["title"], "Lead");
    assert_eq!(r.version, 3);
}

// ---------------------------------------------------------------------------
// Delete
// ---------------------------------------------------------------------------

#[test]
fn delete_removes_the_resource_and_its_memberships() {
    let (_dir, svc, clock) = fixture();
    let a = create_user(&svc, &clock, "alice");
    let b = create_user(&svc, &clock, "bob");
    let g = create_group(&svc, &clock, "team", &[&id_of(&a), &id_of(&b)]);
    svc.delete(&users(&svc), &id_of(&a), Some(1), &ctx(&svc))
        .expect("delete with the current version");
    let e = err(svc.get(&users(&svc), &id_of(&a), &ctx(&svc)));
    assert_eq!(
        parts(&e),
        (
            404,
            None,
            format!("User '{}' not found", id_of(&a)).as_str()
        )
    );
    let e = err(svc.delete(&users(&svc), &id_of(&a), None, &ctx(&svc)));
    assert_eq!(e.status, 404, "a second delete: {e}");
    let g = svc
        .get(&groups(&svc), &id_of(&g), &ctx(&svc))
        .expect("group");
    assert_eq!(member_ids(&g), vec![id_of(&b)]);

    // Deleting a group takes it out of its members' groups.
    svc.delete(&groups(&svc), &id_of(&g), None, &ctx(&svc))
        .expect("delete group");
    let b = svc.get(&users(&svc), &id_of(&b), &ctx(&svc)).expect("bob");
    assert!(b.doc.get("groups").is_none(), "{}", b.doc);
}

#[test]
fn a_refused_user_delete_keeps_the_user() {
    let (_dir, svc, clock) = fixture();
    let u = create_user(&svc, &clock, "kept");
    let e = err(svc.delete(&users(&svc), &id_of(&u), Some(7), &ctx(&svc)));
    assert_eq!(
        parts(&e),
        (412, None, "resource version does not match If-Match")
    );
    assert_eq!(svc.version(&users(&svc), &id_of(&u)).expect("v"), 1);

    // Its devices stay too: the condition is checked before anything is deleted.
    let fido = rt(&svc, "FidoDevice");
    let d = svc
        .enrol_device(&fido, &device_body(&id_of(&u)), &ctx(&svc))
        .expect("enrol");
    let version = svc.version(&users(&svc), &id_of(&u)).expect("v");
    let e = err(svc.delete(&users(&svc), &id_of(&u), Some(version + 1), &ctx(&svc)));
    assert_eq!(e.status, 412, "{e}");
    assert!(
        svc.get(&fido, &id_of(&d), &ctx(&svc)).is_ok(),
        "device kept"
    );
}

// ---------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------

#[test]
fn group_members_on_create_and_replace() {
    let (_dir, svc, clock) = fixture();
    let a = create_user(&svc, &clock, "alice");
    let b = create_user(&svc, &clock, "bob");
    let (a_id, b_id) = (id_of(&a), id_of(&b));
    let g = create_group(&svc, &clock, "team", &[&a_id, &b_id, &a_id]);
    let g_id = id_of(&g);

    // A single group: the member list apart from the document.
    assert!(g.doc.get("members").is_none(), "{}", g.doc);
    let list = serde_json::to_value(g.members.as_ref().expect("members")).expect("json");
    assert_eq!(
        list,
        json!([
            {"value": a_id, "$ref": format!("{BASE}/Users/{a_id}"), "display": "alice display", "type": "User"},
            {"value": b_id, "$ref": format!("{BASE}/Users/{b_id}"), "display": "bob display", "type": "User"},
        ]),
        "each member once, in order"
    );
    assert_eq!(g.doc["displayName"], "team");
    assert_eq!(g.location, format!("{BASE}/Groups/{g_id}"));
    let got = svc.get(&groups(&svc), &g_id, &ctx(&svc)).expect("get");
    assert_eq!(got.doc, g.doc);
    assert_eq!(
        serde_json::to_value(got.members.as_ref().expect("members")).expect("json"),
        list
    );

    // The type a client names does not matter: the member is what it is.
    let nested = svc
        .create(
            &groups(&svc),
            &json!({"schemas": [GROUP_SCHEMA], "displayName": "outer",
                    "members": [{"value": g_id, "type": "User"}]}),
            &ctx(&svc),
        )
        .expect("group in a group");
    let list = serde_json::to_value(nested.members.as_ref().expect("members")).expect("json");
    assert_eq!(list[0]["type"], "Group");
    assert_eq!(list[0]["$ref"], format!("{BASE}/Groups/{g_id}"));
    assert_eq!(list[0]["display"], "team");

    // Members that are not users or groups are refused.
    let e = err(svc.create(
        &groups(&svc),
        &json!({"schemas": [GROUP_SCHEMA], "displayName": "x", "members": [{"value": "ghost"}]}),
        &ctx(&svc),
    ));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidValue),
            "member 'ghost' is not an existing User or Group"
        )
    );
    let fido = rt(&svc, "FidoDevice");
    let device = svc
        .enrol_device(&fido, &device_body(&a_id), &ctx(&svc))
        .expect("enrol");
    let e = err(svc.create(
        &groups(&svc),
        &json!({"schemas": [GROUP_SCHEMA], "displayName": "x",
                "members": [{"value": id_of(&device)}]}),
        &ctx(&svc),
    ));
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{e}");
    let e = err(svc.create(
        &groups(&svc),
        &json!({"schemas": [GROUP_SCHEMA], "displayName": "x", "members": [{"type": "User"}]}),
        &ctx(&svc),
    ));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidValue),
            "every member needs a 'value'"
        )
    );
    // display is readOnly: a member with nothing else is no member at all.
    let ignored = svc
        .create(
            &groups(&svc),
            &json!({"schemas": [GROUP_SCHEMA], "displayName": "x",
                    "members": [{"display": "only a display"}]}),
            &ctx(&svc),
        )
        .expect("readOnly member display is ignored");
    assert!(ignored.members.is_none());

    // PUT: the member set becomes exactly the new one; a group is not its own member.
    let put = json!({"schemas": [GROUP_SCHEMA], "displayName": "team",
                     "members": [{"value": b_id}]});
    let r = svc
        .replace(&groups(&svc), &g_id, &put, Some(1), &ctx(&svc))
        .expect("put");
    assert_eq!(r.version, 2);
    assert_eq!(member_ids(&r), vec![b_id.clone()]);
    let own = json!({"schemas": [GROUP_SCHEMA], "displayName": "team",
                     "members": [{"value": b_id}, {"value": g_id}]});
    let e = err(svc.replace(&groups(&svc), &g_id, &own, None, &ctx(&svc)));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidValue),
            "a group cannot be a member of itself"
        )
    );
    let emptied = json!({"schemas": [GROUP_SCHEMA], "displayName": "team"});
    let r = svc
        .replace(&groups(&svc), &g_id, &emptied, None, &ctx(&svc))
        .expect("no members");
    assert!(r.members.is_none());
    assert!(svc
        .get(&groups(&svc), &g_id, &ctx(&svc))
        .expect("get")
        .members
        .is_none());
}

#[test]
fn group_patch_member_delta() {
    let (_dir, svc, clock) = fixture();
    let a = create_user(&svc, &clock, "alice");
    let b = create_user(&svc, &clock, "bob");
    let c = create_user(&svc, &clock, "carol");
    let (a_id, b_id, c_id) = (id_of(&a), id_of(&b), id_of(&c));
    let g = create_group(&svc, &clock, "team", &[&a_id]);
    let g_id = id_of(&g);
    let grp = groups(&svc);
    let cx = ctx(&svc);
    let patch =
        |ops: Value, if_match: Option<i64>| svc.patch(&grp, &g_id, &patch_body(ops), if_match, &cx);

    let r = patch(
        json!([{"op": "add", "path": "members", "value": [{"value": b_id}, {"value": c_id}, {"value": a_id}]}]),
        Some(1),
    )
    .expect("add");
    assert_eq!(r.version, 2);
    assert_eq!(
        member_ids(&r),
        vec![a_id.clone(), b_id.clone(), c_id.clone()]
    );
    assert!(r.doc.get("members").is_none());

    let r = patch(
        json!([{"op": "remove", "path": format!("members[value eq \"{a_id}\"]")},
               {"op": "replace", "path": "displayName", "value": "renamed"}]),
        Some(2),
    )
    .expect("remove one and rename");
    assert_eq!(r.version, 3);
    assert_eq!(r.doc["displayName"], "renamed");
    assert_eq!(member_ids(&r), vec![b_id.clone(), c_id.clone()]);

    // The member-list form of remove.
    let r = patch(
        json!([{"op": "remove", "path": "members", "value": [{"value": b_id}]}]),
        None,
    )
    .expect("remove by value");
    assert_eq!(member_ids(&r), vec![c_id.clone()]);

    let e = err(patch(
        json!([{"op": "remove", "path": "members[value eq \"absent\"]"}]),
        None,
    ));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::NoTarget),
            "no member matches value absent"
        )
    );
    // One of two ids present is enough for a filter with `or`.
    let r = patch(
        json!([{"op": "remove", "path": format!("members[value eq \"absent\" or value eq \"{c_id}\"]")}]),
        None,
    )
    .expect("or filter");
    assert!(r.members.is_none(), "the last member left");

    let e = err(patch(
        json!([{"op": "add", "path": "members", "value": [{"value": "ghost"}]}]),
        None,
    ));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidValue),
            "member 'ghost' is not an existing User or Group"
        )
    );
    let e = err(patch(
        json!([{"op": "add", "path": "members", "value": [{"value": g_id}]}]),
        None,
    ));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidValue),
            "a group cannot be a member of itself"
        )
    );
    let e = err(patch(
        json!([{"op": "add", "path": "members", "value": [{"value": a_id}]}]),
        Some(1),
    ));
    assert_eq!(e.status, 412, "stale If-Match on the fast path: {e}");
    // Refused PATCHes wrote nothing.
    let now = svc.get(&grp, &g_id, &cx).expect("get");
    assert_eq!(now.version, 5);
    assert!(now.members.is_none());

    // The general engine (a form the fast path leaves alone) agrees.
    let r = patch(
        json!([{"op": "replace", "path": "members", "value": [{"value": a_id}, {"value": b_id}]}]),
        None,
    )
    .expect("replace members");
    assert_eq!(member_ids(&r), vec![a_id.clone(), b_id.clone()]);
    let e = err(patch(
        json!([{"op": "remove", "path": "members[display eq \"nobody\"]"}]),
        None,
    ));
    assert_eq!(e.scim_type, Some(ScimType::NoTarget), "{e}");
    let r = patch(
        json!([{"op": "add", "path": "members", "value": [{"value": c_id}]},
               {"op": "remove", "path": format!("members[value eq \"{c_id}\"]")}]),
        None,
    )
    .expect("added and removed in one request");
    assert_eq!(member_ids(&r), vec![a_id.clone(), b_id.clone()]);
}

#[test]
fn single_groups_split_members_off_and_searches_keep_them() {
    let (_dir, svc, clock) = fixture();
    let a = create_user(&svc, &clock, "alice");
    let a_id = id_of(&a);
    let g = create_group(&svc, &clock, "team", &[&a_id]);
    create_group(&svc, &clock, "empty", &[]);

    let list = search(
        &svc,
        &groups(&svc),
        &SearchRequest {
            sort_by: Some("displayName".into()),
            ..SearchRequest::default()
        },
    );
    assert_eq!(list["totalResults"], 2);
    assert_eq!(names(&list), vec!["empty", "team"]);
    assert!(list["Resources"][0].get("members").is_none());
    assert_eq!(
        list["Resources"][1]["members"],
        json!([{"value": a_id, "$ref": format!("{BASE}/Users/{a_id}"),
                "display": "alice display", "type": "User"}])
    );
    assert_eq!(list["Resources"][1]["meta"]["version"], "W/\"1\"");

    // A projection without members leaves the list out of both forms.
    let p = Projection::parse(None, Some("members")).expect("projection");
    let got = svc
        .get(&groups(&svc), &id_of(&g), &ctx_with(&svc, p.clone()))
        .expect("get");
    assert!(got.members.is_none() && got.doc.get("members").is_none());
    let c = ctx_with(&svc, p);
    let q = svc
        .prepare_search(&groups(&svc), &filter("displayName eq \"team\""), &c)
        .expect("query");
    let list = svc.search(&q, &c).expect("search");
    assert!(list["Resources"][0].get("members").is_none());
    assert_eq!(list["Resources"][0]["displayName"], "team");

    // Only some member sub-attributes.
    let p = Projection::parse(Some("members.value"), None).expect("projection");
    let got = svc
        .get(&groups(&svc), &id_of(&g), &ctx_with(&svc, p))
        .expect("get");
    assert_eq!(
        serde_json::to_value(got.members.as_ref().expect("members")).expect("json"),
        json!([{"value": a_id}])
    );

    // Overhead bypass: members are shown without display names.
    let bypass = RequestCtx {
        overhead_bypass: true,
        ..ctx(&svc)
    };
    let got = svc.get(&groups(&svc), &id_of(&g), &bypass).expect("get");
    let list = serde_json::to_value(got.members.as_ref().expect("members")).expect("json");
    assert_eq!(list[0]["value"], json!(a_id));
    assert!(list[0].get("display").is_none(), "{list}");
}

#[test]
fn user_groups_direct_and_indirect() {
    let (_dir, svc, clock) = fixture();
    let a = create_user(&svc, &clock, "alice");
    let a_id = id_of(&a);
    let inner = create_group(&svc, &clock, "inner", &[&a_id]);
    let outer = create_group(&svc, &clock, "outer", &[&id_of(&inner)]);
    let (i_id, o_id) = (id_of(&inner), id_of(&outer));
    let expected = json!([
        {"value": i_id, "$ref": format!("{BASE}/Groups/{i_id}"), "display": "inner", "type": "direct"},
        {"value": o_id, "$ref": format!("{BASE}/Groups/{o_id}"), "display": "outer", "type": "indirect"},
    ]);
    let got = svc.get(&users(&svc), &a_id, &ctx(&svc)).expect("get");
    assert_eq!(got.doc["groups"], expected);
    // The same through a userName search (answered from the uniqueness index) and a
    // scanning one.
    let list = search(&svc, &users(&svc), &filter("userName eq \"ALICE\""));
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["Resources"][0]["groups"], expected);
    let list = search(&svc, &users(&svc), &filter("userName co \"lic\""));
    assert_eq!(list["Resources"][0]["groups"], expected);
    // A group shows its nested group as a member, and its own groups are not shown.
    let o = svc.get(&groups(&svc), &o_id, &ctx(&svc)).expect("outer");
    assert_eq!(member_ids(&o), vec![i_id.clone()]);

    // Not asked for: not computed into the document.
    let p = Projection::parse(None, Some("groups")).expect("projection");
    let got = svc
        .get(&users(&svc), &a_id, &ctx_with(&svc, p))
        .expect("get");
    assert!(got.doc.get("groups").is_none());

    // groups is readOnly: a PUT echoing it stores nothing of it.
    let mut echoed = got.doc.clone();
    echoed["groups"] = expected.clone();
    svc.replace(&users(&svc), &a_id, &echoed, None, &ctx(&svc))
        .expect("put with groups");
    let rec = exported(&svc, &a_id);
    assert!(rec.doc.get("groups").is_none(), "{}", rec.doc);

    // The inner group gone, alice belongs to nothing.
    svc.delete(&groups(&svc), &i_id, None, &ctx(&svc))
        .expect("delete inner");
    let got = svc.get(&users(&svc), &a_id, &ctx(&svc)).expect("get");
    assert!(got.doc.get("groups").is_none(), "{}", got.doc);
}

// ---------------------------------------------------------------------------
// prepare_search: cost classes and errors
// ---------------------------------------------------------------------------

#[test]
fn search_cost_classes() {
    let (_dir, svc) = service();
    let c = ctx(&svc);
    let cost = |rt: &ResourceTypeDef, req: SearchRequest| {
        svc.prepare_search(rt, &req, &c)
            .unwrap_or_else(|e| panic!("{req:?}: {e}"))
            .cost()
    };
    let u = users(&svc);
    let g = groups(&svc);
    assert_eq!(cost(&u, filter("userName eq \"x\"")), SearchCost::PointRead);
    assert_eq!(cost(&u, filter("USERNAME Eq \"X\"")), SearchCost::PointRead);
    assert_eq!(
        cost(&u, filter(&format!("{USER_SCHEMA}:userName eq \"x\""))),
        SearchCost::PointRead
    );
    assert_eq!(
        cost(&u, filter("emails.value eq \"x\"")),
        SearchCost::Lookup
    );
    assert_eq!(
        cost(&u, filter("emails[value eq \"x\"]")),
        SearchCost::Lookup
    );
    assert_eq!(cost(&u, filter("externalId eq \"x\"")), SearchCost::Lookup);
    assert_eq!(
        cost(&u, filter("userName eq \"x\" and title co \"y\"")),
        SearchCost::Lookup,
        "an and is as selective as its better side"
    );
    assert_eq!(
        cost(&u, filter("userName eq \"x\" or title co \"y\"")),
        SearchCost::Scan,
        "an or is as selective as its worse side"
    );
    assert_eq!(
        cost(&u, filter("userName eq \"x\" or userName eq \"y\"")),
        SearchCost::Lookup
    );
    assert_eq!(cost(&g, filter("displayName eq \"x\"")), SearchCost::Lookup);
    assert_eq!(cost(&u, filter("active eq true")), SearchCost::Scan);
    assert_eq!(cost(&u, filter("userName co \"x\"")), SearchCost::Scan);
    assert_eq!(cost(&u, filter("userName ne \"x\"")), SearchCost::Scan);
    assert_eq!(
        cost(&u, filter("not (userName eq \"x\")")),
        SearchCost::Scan
    );
    assert_eq!(cost(&u, filter("title pr")), SearchCost::Scan);
    assert_eq!(cost(&u, SearchRequest::default()), SearchCost::Scan);
    assert_eq!(
        cost(&u, filter("  ")),
        SearchCost::Scan,
        "a blank filter is none"
    );
    assert_eq!(
        cost(
            &u,
            SearchRequest {
                cursor: Some(String::new()),
                ..filter("userName eq \"x\"")
            }
        ),
        SearchCost::Scan,
        "any cursor search scans"
    );
    assert_eq!(
        cost(
            &u,
            SearchRequest {
                cursor: Some(String::new()),
                ..filter("emails.value eq \"x\"")
            }
        ),
        SearchCost::Scan
    );
}

#[test]
fn prepare_search_refuses_bad_requests() {
    let (_dir, svc) = service();
    let c = ctx(&svc);
    let u = users(&svc);
    let bad = |req: SearchRequest| err(svc.prepare_search(&u, &req, &c));

    let e = bad(filter("userName eq"));
    assert_eq!(
        (e.status, e.scim_type),
        (400, Some(ScimType::InvalidFilter)),
        "{e}"
    );
    let e = bad(filter("userName zz \"x\""));
    assert_eq!(
        (e.status, e.scim_type),
        (400, Some(ScimType::InvalidFilter)),
        "{e}"
    );
    let e = bad(filter("shoeSize eq 44"));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidFilter),
            "unknown attribute 'shoeSize' in filter"
        )
    );
    // Members of Group are not attributes of User.
    let e = bad(filter("members.value eq \"x\""));
    assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{e}");

    let e = bad(SearchRequest {
        sort_by: Some("shoeSize".into()),
        ..SearchRequest::default()
    });
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidValue),
            "sortBy 'shoeSize' is not an attribute of User"
        )
    );
    let e = bad(SearchRequest {
        sort_by: Some("user name".into()),
        ..SearchRequest::default()
    });
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidValue),
            "sortBy 'user name' is not an attribute path"
        )
    );
    let e = bad(SearchRequest {
        sort_order: Some("Sideways".into()),
        ..SearchRequest::default()
    });
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidValue),
            "sortOrder 'sideways' is not 'ascending' or 'descending'"
        )
    );
    for order in ["ASCENDING", "descending", ""] {
        assert!(svc
            .prepare_search(
                &u,
                &SearchRequest {
                    sort_order: Some(order.into()),
                    ..SearchRequest::default()
                },
                &c
            )
            .is_ok());
    }
    let e = bad(SearchRequest {
        count: Some(201),
        ..SearchRequest::default()
    });
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::TooMany),
            "count 201 is above the maximum of 200"
        )
    );
    assert!(svc
        .prepare_search(
            &u,
            &SearchRequest {
                count: Some(200),
                ..SearchRequest::default()
            },
            &c
        )
        .is_ok());
    let e = bad(SearchRequest {
        start_index: Some(1),
        cursor: Some(String::new()),
        ..SearchRequest::default()
    });
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidValue),
            "startIndex and cursor cannot be combined"
        )
    );
    for garbage in ["zz", "abc", "7b7d"] {
        let e = bad(SearchRequest {
            cursor: Some(garbage.into()),
            ..SearchRequest::default()
        });
        assert_eq!(
            parts(&e),
            (
                400,
                Some(ScimType::InvalidCursor),
                format!("'{garbage}' is not a cursor of this search").as_str()
            )
        );
    }
}

#[test]
fn a_cursor_belongs_to_its_search() {
    let (_dir, svc, clock) = fixture();
    for n in ["a1", "a2", "a3"] {
        create_user(&svc, &clock, n);
    }
    let c = ctx(&svc);
    let u = users(&svc);
    let first = SearchRequest {
        filter: Some("userName sw \"a\"".into()),
        count: Some(1),
        cursor: Some(String::new()),
        ..SearchRequest::default()
    };
    let q = svc.prepare_search(&u, &first, &c).expect("query");
    let page = svc.search(&q, &c).expect("page");
    let next = page["nextCursor"]
        .as_str()
        .expect("a next cursor")
        .to_string();

    let same = SearchRequest {
        cursor: Some(next.clone()),
        // The page size is not part of the search.
        count: Some(2),
        ..first.clone()
    };
    assert!(svc.prepare_search(&u, &same, &c).is_ok());
    let others = [
        SearchRequest {
            filter: Some("userName sw \"b\"".into()),
            ..same.clone()
        },
        SearchRequest {
            sort_by: Some("userName".into()),
            ..same.clone()
        },
        SearchRequest {
            sort_order: Some("descending".into()),
            ..same.clone()
        },
    ];
    for other in others {
        let e = err(svc.prepare_search(&u, &other, &c));
        assert_eq!(
            (e.status, e.scim_type),
            (400, Some(ScimType::InvalidCursor)),
            "{other:?}"
        );
    }
    // Nor to another resource type.
    let g = groups(&svc);
    let e = err(svc.prepare_search(
        &g,
        &SearchRequest {
            filter: None,
            cursor: Some(next),
            ..SearchRequest::default()
        },
        &c,
    ));
    assert_eq!(e.scim_type, Some(ScimType::InvalidCursor), "{e}");
}

// ---------------------------------------------------------------------------
// search
// ---------------------------------------------------------------------------

/// Seven users u1..u7 created in that order; odd ones are engineers.
fn seven_users(svc: &Service, clock: &TestClock) -> Vec<String> {
    (1..=7)
        .map(|i| {
            clock.tick();
            let mut body = user_body(&format!("u{i}"));
            if i % 2 == 1 {
                body["title"] = json!("eng");
            }
            let r = svc.create(&users(svc), &body, &ctx(svc)).expect("create");
            id_of(&r)
        })
        .collect()
}

#[test]
fn search_filters_sorts_and_pages_by_index() {
    let (_dir, svc, clock) = fixture();
    seven_users(&svc, &clock);
    create_group(&svc, &clock, "not a user", &[]);
    let u = users(&svc);
    let page = |f: Option<&str>, sort: Option<&str>, order: Option<&str>, start, count| {
        search(
            &svc,
            &u,
            &SearchRequest {
                filter: f.map(str::to_string),
                sort_by: sort.map(str::to_string),
                sort_order: order.map(str::to_string),
                start_index: start,
                count,
                ..SearchRequest::default()
            },
        )
    };

    let all = page(None, None, None, None, None);
    assert_eq!(all["schemas"], json!([LIST_RESPONSE]));
    assert_eq!(
        (
            &all["totalResults"],
            &all["itemsPerPage"],
            &all["startIndex"]
        ),
        (&json!(7), &json!(7), &json!(1))
    );
    assert_eq!(
        names(&all),
        vec!["u1", "u2", "u3", "u4", "u5", "u6", "u7"],
        "creation order"
    );

    let eng = page(
        Some("title eq \"eng\""),
        Some("userName"),
        Some("descending"),
        Some(2),
        Some(2),
    );
    assert_eq!(
        (
            &eng["totalResults"],
            &eng["itemsPerPage"],
            &eng["startIndex"]
        ),
        (&json!(4), &json!(2), &json!(2))
    );
    assert_eq!(names(&eng), vec!["u5", "u3"]);
    let last = page(
        Some("title eq \"eng\""),
        Some("userName"),
        Some("descending"),
        Some(4),
        Some(2),
    );
    assert_eq!(
        (&last["totalResults"], &last["itemsPerPage"]),
        (&json!(4), &json!(1))
    );
    assert_eq!(names(&last), vec!["u1"]);
    let past = page(
        Some("title eq \"eng\""),
        Some("userName"),
        None,
        Some(9),
        Some(2),
    );
    assert_eq!(
        (
            &past["totalResults"],
            &past["itemsPerPage"],
            &past["startIndex"]
        ),
        (&json!(4), &json!(0), &json!(9))
    );
    assert_eq!(past["Resources"], json!([]));

    // Sorted by an attribute some users lack: those without it come last ascending.
    let by_title = page(None, Some("title"), None, None, Some(7));
    let shown = names(&by_title);
    let (with, without) = shown.split_at(4);
    let mut with = with.to_vec();
    with.sort();
    assert_eq!(with, vec!["u1", "u3", "u5", "u7"], "{shown:?}");
    assert_eq!(without.len(), 3);

    // count=0: the total only.
    let total = page(Some("title eq \"eng\""), None, None, None, Some(0));
    assert_eq!(
        (
            &total["totalResults"],
            &total["itemsPerPage"],
            &total["Resources"]
        ),
        (&json!(4), &json!(0), &json!([]))
    );
    let total = page(Some("userName eq \"u3\""), None, None, None, Some(0));
    assert_eq!(
        (&total["totalResults"], &total["itemsPerPage"]),
        (&json!(1), &json!(0))
    );
    // A negative count is 0, a startIndex below 1 is 1.
    let neg = page(None, None, None, Some(-5), Some(-1));
    assert_eq!(
        (
            &neg["totalResults"],
            &neg["itemsPerPage"],
            &neg["startIndex"]
        ),
        (&json!(7), &json!(0), &json!(1))
    );

    // userName eq: case-insensitive, one result, and nothing past the first page.
    let one = page(Some("userName eq \"U4\""), None, None, None, None);
    assert_eq!(
        (&one["totalResults"], names(&one)),
        (&json!(1), vec!["u4".to_string()])
    );
    let none = page(Some("userName eq \"nobody\""), None, None, None, None);
    assert_eq!(
        (&none["totalResults"], &none["Resources"]),
        (&json!(0), &json!([]))
    );
    let later = page(Some("userName eq \"u4\""), None, None, Some(2), None);
    assert_eq!(
        (
            &later["totalResults"],
            &later["itemsPerPage"],
            &later["startIndex"]
        ),
        (&json!(1), &json!(0), &json!(2))
    );

    // Multi-valued sub-attribute and value-path filters.
    let mail = page(
        Some("emails.value eq \"u6@example.com\""),
        None,
        None,
        None,
        None,
    );
    assert_eq!(names(&mail), vec!["u6"]);
    let mail = page(
        Some("emails[value ew \"@example.com\" and primary eq true]"),
        None,
        None,
        None,
        Some(3),
    );
    assert_eq!((&mail["totalResults"], names(&mail).len()), (&json!(7), 3));
}

#[test]
fn search_results_are_projected() {
    let (_dir, svc, clock) = fixture();
    create_user(&svc, &clock, "pat");
    let p = Projection::parse(Some("userName"), None).expect("projection");
    let c = ctx_with(&svc, p);
    let q = svc
        .prepare_search(&users(&svc), &SearchRequest::default(), &c)
        .expect("query");
    let list = svc.search(&q, &c).expect("search");
    let r = &list["Resources"][0];
    assert_eq!(r["userName"], "pat");
    assert!(r.get("id").is_some(), "id is always returned");
    assert!(
        r.get("emails").is_none() && r.get("displayName").is_none(),
        "{r}"
    );
}

#[test]
fn row_only_projections_show_what_the_full_render_shows() {
    let (_dir, svc, clock) = fixture();
    let u = create_user(&svc, &clock, "rowan");
    let g = svc
        .create(
            &groups(&svc),
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "rows", "members": [{"value": u.doc["id"]}]}),
            &ctx(&svc),
        )
        .expect("group");
    for attributes in [
        "id",
        "meta.version",
        "ID,Meta.Version",
        "meta.location,meta.resourceType",
        "meta.version,meta.location,meta.resourceType,id",
    ] {
        let p = Projection::parse(Some(attributes), None).expect("projection");
        assert!(super::render::is_row_only(&p), "{attributes}");
        for (rt, id) in [(users(&svc), id_of(&u)), (groups(&svc), id_of(&g))] {
            let c = ctx_with(&svc, p.clone());
            let listed = svc
                .search(
                    &svc.prepare_search(&rt, &SearchRequest::default(), &c)
                        .expect("query"),
                    &c,
                )
                .expect("search");
            let row = listed["Resources"]
                .as_array()
                .expect("resources")
                .iter()
                .find(|r| r["id"] == json!(id))
                .cloned()
                .expect("listed");
            // One resource read goes the general way.
            let full = svc.get(&rt, &id, &c).expect("get").doc;
            assert_eq!(row, full, "{attributes}");
        }
    }
    for general in [
        "userName",
        "id,meta",
        "meta.created",
        "urn:ietf:params:scim:schemas:core:2.0:User:id",
    ] {
        let p = Projection::parse(Some(general), None).expect("projection");
        assert!(!super::render::is_row_only(&p), "{general}");
    }
    let p = Projection::parse(Some("id"), Some("meta")).expect("projection");
    assert!(!super::render::is_row_only(&p));
}

/// Walk a cursor search forward from the first page; the pages, in order.
fn walk_forward(svc: &Service, base: &SearchRequest) -> Vec<Value> {
    let c = ctx(svc);
    let u = users(svc);
    let mut pages = Vec::new();
    let mut cursor = String::new();
    loop {
        let req = SearchRequest {
            cursor: Some(cursor.clone()),
            ..base.clone()
        };
        let q = svc.prepare_search(&u, &req, &c).expect("query");
        let page = svc.search(&q, &c).expect("page");
        let next = page
            .get("nextCursor")
            .and_then(Value::as_str)
            .map(str::to_string);
        pages.push(page);
        match next {
            Some(n) => cursor = n,
            None => break,
        }
        assert!(pages.len() <= 10, "the walk ends");
    }
    pages
}

fn cursor_page(svc: &Service, base: &SearchRequest, cursor: &str) -> Value {
    let c = ctx(svc);
    let req = SearchRequest {
        cursor: Some(cursor.into()),
        ..base.clone()
    };
    let q = svc.prepare_search(&users(svc), &req, &c).expect("query");
    svc.search(&q, &c).expect("page")
}

#[test]
fn cursor_walks_visit_every_match_once_both_ways() {
    let (_dir, svc, clock) = fixture();
    seven_users(&svc, &clock);
    let base = SearchRequest {
        filter: Some("userName sw \"u\"".into()),
        sort_by: Some("userName".into()),
        count: Some(3),
        ..SearchRequest::default()
    };
    let pages = walk_forward(&svc, &base);
    assert_eq!(pages.len(), 3);
    let seen: Vec<Vec<String>> = pages.iter().map(names).collect();
    assert_eq!(
        seen,
        vec![vec!["u1", "u2", "u3"], vec!["u4", "u5", "u6"], vec!["u7"]]
    );
    for p in &pages {
        assert_eq!(p["totalResults"], 7, "the total of the whole search");
        assert!(
            p.get("startIndex").is_none(),
            "no startIndex on cursor pages"
        );
        assert_eq!(
            p["itemsPerPage"],
            json!(p["Resources"].as_array().expect("r").len())
        );
    }
    assert!(
        pages[0].get("previousCursor").is_none(),
        "the first page has no previous"
    );
    assert!(pages[1].get("previousCursor").is_some() && pages[2].get("previousCursor").is_some());
    assert!(pages[2].get("nextCursor").is_none());

    // Back from the last page: the same pages in reverse.
    let prev = pages[2]["previousCursor"].as_str().expect("previous");
    let back2 = cursor_page(&svc, &base, prev);
    assert_eq!(names(&back2), vec!["u4", "u5", "u6"]);
    assert_eq!(
        back2["nextCursor"], pages[1]["nextCursor"],
        "forward again from there"
    );
    let prev = back2["previousCursor"].as_str().expect("previous");
    let back1 = cursor_page(&svc, &base, prev);
    assert_eq!(names(&back1), vec!["u1", "u2", "u3"]);
    assert!(back1.get("previousCursor").is_none(), "back at the start");
    assert!(back1.get("nextCursor").is_some());

    // Descending, and with a filter that leaves some out.
    let desc = SearchRequest {
        filter: Some("title eq \"eng\"".into()),
        sort_order: Some("descending".into()),
        count: Some(2),
        ..base.clone()
    };
    let pages = walk_forward(&svc, &desc);
    let seen: Vec<String> = pages.iter().flat_map(names).collect();
    assert_eq!(seen, vec!["u7", "u5", "u3", "u1"]);
    assert_eq!(pages.len(), 2);
}

#[test]
fn cursor_walk_in_creation_order_survives_writes_during_the_walk() {
    let (_dir, svc, clock) = fixture();
    let ids = seven_users(&svc, &clock);
    let base = SearchRequest {
        count: Some(2),
        ..SearchRequest::default()
    };
    let first = cursor_page(&svc, &base, "");
    assert_eq!(names(&first), vec!["u1", "u2"]);
    // Deleting a seen user and creating a new one do not shift the pages ahead.
    svc.delete(&users(&svc), &ids[0], None, &ctx(&svc))
        .expect("delete u1");
    create_user(&svc, &clock, "u8");
    let mut seen = names(&first);
    let mut cursor = first["nextCursor"].as_str().expect("next").to_string();
    loop {
        let page = cursor_page(&svc, &base, &cursor);
        seen.extend(names(&page));
        match page.get("nextCursor").and_then(Value::as_str) {
            Some(n) => cursor = n.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, vec!["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"]);

    // An empty result: one page, no cursors.
    let none = cursor_page(
        &svc,
        &SearchRequest {
            filter: Some("userName eq \"nobody\"".into()),
            ..base
        },
        "",
    );
    assert_eq!(
        (&none["totalResults"], &none["Resources"]),
        (&json!(0), &json!([]))
    );
    assert!(none.get("nextCursor").is_none() && none.get("previousCursor").is_none());
}

// ---------------------------------------------------------------------------
// Root search
// ---------------------------------------------------------------------------

#[test]
fn root_search_pages_over_every_type() {
    let (_dir, svc, clock) = fixture();
    for n in ["ua", "ub", "uc"] {
        create_user(&svc, &clock, n);
    }
    create_group(&svc, &clock, "ga", &[]);
    create_group(&svc, &clock, "gb", &[]);
    let c = ctx(&svc);
    let root = |req: SearchRequest| {
        let q = svc.prepare_root_search(&req, &c).expect("root query");
        svc.search_all(&q, &c).expect("root search")
    };
    let page = |start, count| {
        root(SearchRequest {
            start_index: start,
            count,
            ..SearchRequest::default()
        })
    };

    let all = page(None, None);
    assert_eq!(
        (&all["totalResults"], &all["itemsPerPage"]),
        (&json!(5), &json!(5))
    );
    assert_eq!(
        names(&all),
        vec!["ua", "ub", "uc", "ga", "gb"],
        "Users, then Groups"
    );
    assert_eq!(all["Resources"][3]["meta"]["resourceType"], "Group");
    assert_eq!(
        all["Resources"][3]["meta"]["location"],
        json!(format!(
            "{BASE}/Groups/{}",
            all["Resources"][3]["id"].as_str().expect("id")
        ))
    );

    let p = page(Some(2), Some(2));
    assert_eq!(
        (&p["totalResults"], &p["itemsPerPage"], &p["startIndex"]),
        (&json!(5), &json!(2), &json!(2))
    );
    assert_eq!(names(&p), vec!["ub", "uc"]);
    let p = page(Some(3), Some(2));
    assert_eq!(names(&p), vec!["uc", "ga"], "a page across the types");
    let p = page(Some(4), Some(10));
    assert_eq!(names(&p), vec!["ga", "gb"]);
    let p = page(Some(6), Some(10));
    assert_eq!(
        (&p["totalResults"], &p["itemsPerPage"]),
        (&json!(5), &json!(0))
    );
    let p = page(None, Some(0));
    assert_eq!(
        (&p["totalResults"], &p["Resources"]),
        (&json!(5), &json!([]))
    );

    // A filter only some types can match searches those.
    let only_users = root(filter("userName sw \"u\""));
    assert_eq!(only_users["totalResults"], 3);
    assert_eq!(names(&only_users), vec!["ua", "ub", "uc"]);
    let both = root(filter(
        "displayName eq \"ga\" or displayName eq \"ub display\"",
    ));
    assert_eq!(names(&both), vec!["ub", "ga"]);

    // No type has it: the first type's error.
    let e = err(svc.prepare_root_search(&filter("shoeSize eq 44"), &c));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidFilter),
            "unknown attribute 'shoeSize' in filter"
        )
    );
    let e = err(svc.prepare_root_search(&filter("userName eq"), &c));
    assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{e}");
    let e = err(svc.prepare_root_search(
        &SearchRequest {
            count: Some(1000),
            ..SearchRequest::default()
        },
        &c,
    ));
    assert_eq!(e.scim_type, Some(ScimType::TooMany), "{e}");
    let e = err(svc.prepare_root_search(
        &SearchRequest {
            sort_order: Some("up".into()),
            ..SearchRequest::default()
        },
        &c,
    ));
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{e}");
}

// ---------------------------------------------------------------------------
// Bulk
// ---------------------------------------------------------------------------

fn bulk_body(fail_on_errors: Option<u64>, ops: Value) -> Value {
    let mut b = json!({"schemas": [BULK_REQUEST], "Operations": ops});
    if let Some(n) = fail_on_errors {
        b["failOnErrors"] = json!(n);
    }
    b
}

fn statuses(resp: &Value) -> Vec<String> {
    resp["Operations"]
        .as_array()
        .expect("Operations")
        .iter()
        .map(|o| o["status"].as_str().expect("status").to_string())
        .collect()
}

fn location_id(op: &Value) -> String {
    op["location"]
        .as_str()
        .and_then(|l| l.rsplit('/').next())
        .expect("a location")
        .to_string()
}

#[test]
fn bulk_resolves_bulk_ids_in_paths_and_data() {
    let (_dir, svc) = service();
    let body = bulk_body(
        None,
        json!([
            // Refers to a user created later in the request: waits for it.
            {"method": "POST", "path": "/Groups", "bulkId": "g1",
             "data": {"schemas": [GROUP_SCHEMA], "displayName": "team",
                      "members": [{"value": "bulkId:u1", "type": "User"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": user_body("bulk1")},
            {"method": "POST", "path": "/Users", "bulkId": "u2", "data": user_body("bulk2")},
            {"method": "PATCH", "path": "/Users/bulkId:u1",
             "data": patch_body(json!([{"op": "replace", "path": "title", "value": "lead"}]))},
            {"method": "DELETE", "path": "/Users/bulkId:u2"},
        ]),
    );
    let resp = svc.bulk(&body, &ctx(&svc), &allow_all).expect("bulk");
    assert_eq!(resp["schemas"], json!([BULK_RESPONSE]));
    assert_eq!(
        statuses(&resp),
        vec!["201", "201", "201", "200", "204"],
        "{resp}"
    );
    let ops = resp["Operations"].as_array().expect("ops");
    assert_eq!(ops[0]["bulkId"], "g1");
    assert_eq!(ops[0]["method"], "POST");
    assert_eq!(ops[1]["version"], "W/\"1\"");
    assert_eq!(ops[3]["version"], "W/\"2\"");
    assert!(ops[4].get("location").is_none());
    let (g_id, u1_id, u2_id) = (
        location_id(&ops[0]),
        location_id(&ops[1]),
        location_id(&ops[2]),
    );
    assert_eq!(ops[0]["location"], json!(format!("{BASE}/Groups/{g_id}")));
    assert_eq!(ops[3]["location"], json!(format!("{BASE}/Users/{u1_id}")));

    let g = svc.get(&groups(&svc), &g_id, &ctx(&svc)).expect("group");
    assert_eq!(member_ids(&g), vec![u1_id.clone()]);
    let u1 = svc.get(&users(&svc), &u1_id, &ctx(&svc)).expect("u1");
    assert_eq!(u1.doc["title"], "lead");
    assert_eq!(u1.doc["groups"][0]["value"], json!(g_id));
    assert_eq!(err(svc.get(&users(&svc), &u2_id, &ctx(&svc))).status, 404);
}

#[test]
fn bulk_reference_errors_and_authorisation() {
    let (_dir, svc) = service();
    let body = bulk_body(
        None,
        json!([
            {"method": "PATCH", "path": "/Users/bulkId:nowhere",
             "data": patch_body(json!([{"op": "replace", "path": "title", "value": "x"}]))},
            {"method": "POST", "path": "/Groups", "bulkId": "a",
             "data": {"schemas": [GROUP_SCHEMA], "displayName": "a", "members": [{"value": "bulkId:b"}]}},
            {"method": "POST", "path": "/Groups", "bulkId": "b",
             "data": {"schemas": [GROUP_SCHEMA], "displayName": "b", "members": [{"value": "bulkId:a"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "ok", "data": user_body("fine")},
            {"method": "DELETE", "path": "/Groups/whatever"},
        ]),
    );
    let no_group_deletes = |method: &str, endpoint: &str| {
        if method == "DELETE" && endpoint == "/Groups" {
            Err(ScimError::forbidden("no deleting groups"))
        } else {
            Ok(())
        }
    };
    let resp = svc
        .bulk(&body, &ctx(&svc), &no_group_deletes)
        .expect("bulk");
    assert_eq!(
        statuses(&resp),
        vec!["409", "409", "409", "201", "403"],
        "{resp}"
    );
    let ops = resp["Operations"].as_array().expect("ops");
    assert_eq!(
        ops[0]["response"]["detail"],
        "bulkId 'nowhere' is not defined in this request"
    );
    assert!(ops[1]["response"]["detail"]
        .as_str()
        .expect("detail")
        .starts_with("circular bulkId reference"));
    assert_eq!(ops[4]["response"]["detail"], "no deleting groups");
    assert_eq!(ops[4]["response"]["status"], "403");

    // Requests that are not BulkRequests.
    let e = err(svc.bulk(&json!({"Operations": []}), &ctx(&svc), &allow_all));
    assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax), "{e}");
    let e = err(svc.bulk(
        &bulk_body(
            None,
            json!([{"method": "POST", "path": "/Users", "data": user_body("x")}]),
        ),
        &ctx(&svc),
        &allow_all,
    ));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidSyntax),
            "Operations[0]: POST needs a bulkId"
        )
    );
    let e = err(svc.bulk(&bulk_body(Some(0), json!([])), &ctx(&svc), &allow_all));
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{e}");
    let many: Vec<Value> = (0..31)
        .map(|i| json!({"method": "DELETE", "path": format!("/Users/{i}")}))
        .collect();
    let e = err(svc.bulk(&bulk_body(None, json!(many)), &ctx(&svc), &allow_all));
    assert_eq!(
        parts(&e),
        (413, None, "31 operations exceed the maximum of 30")
    );
}

#[test]
fn bulk_fail_on_errors_stops_after_n_errors() {
    let (_dir, svc) = service();
    // A run of POSTs stored together: the duplicate fails, the rest is not tried.
    let body = bulk_body(
        Some(1),
        json!([
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": user_body("dup")},
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": user_body("DUP")},
            {"method": "POST", "path": "/Users", "bulkId": "c", "data": user_body("never1")},
        ]),
    );
    let resp = svc.bulk(&body, &ctx(&svc), &allow_all).expect("bulk");
    assert_eq!(statuses(&resp), vec!["201", "409"], "{resp}");
    let failed = &resp["Operations"][1];
    assert_eq!(failed["bulkId"], "b");
    assert_eq!(failed["response"]["scimType"], "uniqueness");
    assert_eq!(
        failed["response"]["detail"],
        "userName 'DUP' is already in use"
    );
    assert_eq!(
        search(&svc, &users(&svc), &filter("userName eq \"never1\""))["totalResults"],
        0
    );

    // Errors of other operations count too.
    let body = bulk_body(
        Some(2),
        json!([
            {"method": "DELETE", "path": "/Users/missing1"},
            {"method": "POST", "path": "/Users", "bulkId": "d", "data": user_body("made")},
            {"method": "PATCH", "path": "/Users/missing2",
             "data": patch_body(json!([{"op": "replace", "path": "title", "value": "x"}]))},
            {"method": "POST", "path": "/Users", "bulkId": "e", "data": user_body("never2")},
            {"method": "DELETE", "path": "/Users/missing3"},
        ]),
    );
    let resp = svc.bulk(&body, &ctx(&svc), &allow_all).expect("bulk");
    assert_eq!(statuses(&resp), vec!["404", "201", "404"], "{resp}");
    assert_eq!(
        search(&svc, &users(&svc), &filter("userName eq \"made\""))["totalResults"],
        1
    );
    assert_eq!(
        search(&svc, &users(&svc), &filter("userName eq \"never2\""))["totalResults"],
        0
    );

    // Without failOnErrors every operation runs.
    let body = bulk_body(
        None,
        json!([
            {"method": "POST", "path": "/Users", "bulkId": "f", "data": user_body("dup")},
            {"method": "POST", "path": "/Users", "bulkId": "g", "data": user_body("after")},
            {"method": "POST", "path": "/Nowhere", "bulkId": "h", "data": {}},
        ]),
    );
    let resp = svc.bulk(&body, &ctx(&svc), &allow_all).expect("bulk");
    assert_eq!(statuses(&resp), vec!["409", "201", "404"], "{resp}");
}

// ---------------------------------------------------------------------------
// Feeds
// ---------------------------------------------------------------------------

#[test]
fn change_feed_lists_writes_in_order_with_tombstones() {
    let (_dir, svc, clock) = fixture();
    let mut body = user_body("fred");
    body["password"] = json!("hidden-in-feed");
    clock.tick();
    let u = svc.create(&users(&svc), &body, &ctx(&svc)).expect("create");
    let u_id = id_of(&u);
    clock.tick();
    svc.patch(
        &users(&svc),
        &u_id,
        &patch_body(json!([{"op": "replace", "path": "title", "value": "boss"}])),
        None,
        &ctx(&svc),
    )
    .expect("patch");
    let g = create_group(&svc, &clock, "crew", &[]);
    clock.tick();
    svc.delete(&users(&svc), &u_id, None, &ctx(&svc))
        .expect("delete");

    let feed = svc.changes(None, Some(10), &ctx(&svc)).expect("feed");
    assert_eq!(
        feed["schemas"],
        json!(["urn:scimd:api:messages:1.0:ChangeFeed"])
    );
    assert_eq!(feed["hasMore"], false);
    let changes = feed["changes"].as_array().expect("changes");
    let summary: Vec<(String, String, String, String)> = changes
        .iter()
        .map(|c| {
            (
                c["op"].as_str().expect("op").to_string(),
                c["resourceType"].as_str().expect("type").to_string(),
                c["id"].as_str().expect("id").to_string(),
                c["version"].as_str().expect("version").to_string(),
            )
        })
        .collect();
    let s = |a: &str, b: &str, c: &str, d: &str| (a.into(), b.into(), c.into(), d.into());
    assert_eq!(
        summary,
        vec![
            s("created", "User", &u_id, "W/\"1\""),
            s("updated", "User", &u_id, "W/\"2\""),
            s("created", "Group", &id_of(&g), "W/\"1\""),
            s("deleted", "User", &u_id, "W/\"2\""),
        ]
    );
    let created = &changes[0]["resource"];
    assert_eq!(created["userName"], "fred");
    assert_eq!(created["meta"]["version"], "W/\"1\"");
    assert_eq!(
        created["meta"]["location"],
        json!(format!("{BASE}/Users/{u_id}"))
    );
    assert_eq!(changes[1]["resource"]["title"], "boss");
    assert!(
        changes[3].get("resource").is_none(),
        "a tombstone has no document"
    );
    assert!(!feed.to_string().contains("hidden-in-feed"));
    assert!(changes[0]["at"]
        .as_str()
        .is_some_and(|a| a.starts_with("2024-05-01T12:00:01")));
    assert!(changes[3]["at"]
        .as_str()
        .is_some_and(|a| a.starts_with("2024-05-01T12:00:04")));

    // Paged: two and two, then nothing new.
    let p1 = svc.changes(None, Some(2), &ctx(&svc)).expect("page 1");
    assert_eq!(p1["hasMore"], true);
    assert_eq!(p1["changes"].as_array().expect("c").len(), 2);
    let next = p1["nextCursor"].as_str().expect("cursor").to_string();
    let p2 = svc
        .changes(Some(&next), Some(2), &ctx(&svc))
        .expect("page 2");
    assert_eq!(p2["hasMore"], false);
    let ops: Vec<&str> = p2["changes"]
        .as_array()
        .expect("c")
        .iter()
        .map(|c| c["op"].as_str().expect("op"))
        .collect();
    assert_eq!(ops, vec!["created", "deleted"]);
    let next = p2["nextCursor"].as_str().expect("cursor").to_string();
    let p3 = svc.changes(Some(&next), None, &ctx(&svc)).expect("page 3");
    assert_eq!(
        (&p3["changes"], &p3["hasMore"]),
        (&json!([]), &json!(false))
    );
    assert_eq!(
        p3["nextCursor"],
        json!(next),
        "an empty page stays where it is"
    );
    // A new write shows up after the saved position.
    create_user(&svc, &clock, "late");
    let p4 = svc.changes(Some(&next), None, &ctx(&svc)).expect("page 4");
    assert_eq!(p4["changes"][0]["resource"]["userName"], "late");
    // The empty cursor is the start.
    let again = svc
        .changes(Some(""), Some(1), &ctx(&svc))
        .expect("from the start");
    assert_eq!(again["changes"][0]["id"], json!(u_id));

    for bad in [0, -1, 1001] {
        let e = err(svc.changes(None, Some(bad), &ctx(&svc)));
        assert_eq!(
            parts(&e),
            (
                400,
                Some(ScimType::InvalidValue),
                format!("count must be between 1 and 1000, got {bad}").as_str()
            )
        );
    }
    let e = err(svc.changes(Some("zz"), None, &ctx(&svc)));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidValue),
            "cursor 'zz' is not a cursor of this feed"
        )
    );
    // Hex of something that is not a position of this server: gone.
    let e = err(svc.changes(Some(&crate::cursor::hex(b"x:1")), None, &ctx(&svc)));
    assert_eq!(e.status, 410, "{e}");
}

#[test]
fn pruned_feed_positions_are_gone() {
    let (_dir, svc, clock) = fixture();
    create_user(&svc, &clock, "old");
    let start = svc.changes(None, Some(1), &ctx(&svc)).expect("feed");
    let pos = start["nextCursor"].as_str().expect("cursor").to_string();
    assert_eq!(
        svc.changes(Some(&pos), None, &ctx(&svc)).expect("feed")["changes"],
        json!([])
    );
    create_user(&svc, &clock, "newer");
    // Eight days on, both changes are past the retention of seven days.
    clock.advance_ms(8 * 24 * 3600 * 1000);
    assert_eq!(svc.prune_feed().expect("prune"), 2);
    let e = err(svc.changes(Some(&pos), None, &ctx(&svc)));
    assert_eq!(e.status, 410, "{e}");
    assert!(e.detail.starts_with("cursor expired or invalid"), "{e}");
    let feed = svc
        .changes(None, None, &ctx(&svc))
        .expect("from the oldest retained");
    assert_eq!(feed["changes"], json!([]));
    // The resources themselves stay.
    assert_eq!(
        search(&svc, &users(&svc), &SearchRequest::default())["totalResults"],
        2
    );
}

#[test]
fn updated_users_since_a_time() {
    let (_dir, svc, clock) = fixture();
    let before = create_user(&svc, &clock, "before");
    clock.tick();
    let since = clock.at();
    let mut body = user_body("jhonny");
    body["name"] = json!({"givenName": "Jhon", "familyName": "Ny"});
    body["password"] = json!("never-shown");
    let j = svc
        .create(&users(&svc), &body, &ctx(&svc))
        .expect("create at `since`");
    let k = create_user(&svc, &clock, "kim");
    let g = create_group(&svc, &clock, "club", &[&id_of(&k)]);

    let body = svc.updated_users(since, 0, 10).expect("updated");
    assert_eq!(body["total"], 2, "{body}");
    let r = &body["results"];
    assert_eq!(
        r[0]["inum"],
        json!([id_of(&j)]),
        "a user modified exactly at `since` is in"
    );
    assert_eq!(r[0]["uid"], json!(["jhonny"]));
    assert_eq!(r[0]["cn"], json!(["Jhon Ny"]));
    assert_eq!(r[0]["updatedAt"], json!([j.doc["meta"]["lastModified"]]));
    assert!(r[0].get("userPassword").is_none() && !body.to_string().contains("never-shown"));
    assert_eq!(r[1]["uid"], json!(["kim"]));
    assert_eq!(r[1]["memberOf"], json!([id_of(&g)]));
    assert_eq!(body["latestUpdateAt"], k.doc["meta"]["lastModified"]);

    // An update brings an earlier user in, last.
    clock.tick();
    let changed = svc
        .patch(
            &users(&svc),
            &id_of(&before),
            &patch_body(json!([{"op": "replace", "path": "displayName", "value": "changed"}])),
            None,
            &ctx(&svc),
        )
        .expect("patch");
    let body = svc.updated_users(since, 0, 10).expect("updated");
    assert_eq!(body["total"], 3);
    assert_eq!(body["results"][2]["uid"], json!(["before"]));
    assert_eq!(body["latestUpdateAt"], changed.doc["meta"]["lastModified"]);

    // Offset paging: total counts every match.
    let body = svc.updated_users(since, 1, 1).expect("page");
    assert_eq!(body["total"], 3);
    assert_eq!(body["results"].as_array().expect("r").len(), 1);
    assert_eq!(body["results"][0]["uid"], json!(["kim"]));
    assert_eq!(
        body["latestUpdateAt"], k.doc["meta"]["lastModified"],
        "of the page"
    );

    // Nothing since: no latestUpdateAt.
    clock.tick();
    let body = svc.updated_users(clock.at(), 0, 10).expect("nothing");
    assert_eq!((&body["total"], &body["results"]), (&json!(0), &json!([])));
    assert!(body.get("latestUpdateAt").is_none());
}

// ---------------------------------------------------------------------------
// Custom attributes and the one-snapshot rule
// ---------------------------------------------------------------------------

fn badge() -> CustomAttribute {
    CustomAttribute {
        name: "badge".into(),
        kind: CustomType::String,
        multi_valued: false,
        description: String::new(),
    }
}

fn badge_user(name: &str, declared: bool) -> Value {
    let mut schemas = vec![json!(USER_SCHEMA)];
    if declared {
        schemas.push(json!(GLUU_USER_EXTENSION));
    }
    json!({"schemas": schemas, "userName": name, GLUU_USER_EXTENSION: {"badge": "B-7"}})
}

#[test]
fn a_request_keeps_the_registry_it_started_with() {
    let (_dir, svc) = service();
    let old = ctx(&svc);
    svc.add_custom_attribute(&badge()).expect("add badge");
    let new = ctx(&svc);
    // As the HTTP layer does, the resource type comes from the request's snapshot.
    let old_user = old.registry.resource_type("User").expect("User").clone();
    let user = new.registry.resource_type("User").expect("User").clone();
    // The extension is published in both (empty before its first attribute);
    // only the new one knows `badge`.
    let badge_in = |ctx: &RequestCtx| {
        ctx.registry
            .schema(GLUU_USER_EXTENSION)
            .expect("extension")
            .attributes
            .iter()
            .any(|a| a.name == "badge")
    };
    assert!(!badge_in(&old));
    assert!(badge_in(&new));

    // The old snapshot knows no such attribute, declared or not.
    for declared in [true, false] {
        let e = err(svc.create(&old_user, &badge_user("early", declared), &old));
        assert_eq!(e.status, 400, "{e}");
        assert!(e.detail.contains("badge"), "{e}");
    }
    // Naming the extension without data is fine: it exists.
    svc.create(
        &old_user,
        &json!({"schemas": [USER_SCHEMA, GLUU_USER_EXTENSION], "userName": "early"}),
        &old,
    )
    .expect("an empty extension is valid");
    let e = err(svc.prepare_search(
        &old_user,
        &filter(&format!("{GLUU_USER_EXTENSION}:badge eq \"B-7\"")),
        &old,
    ));
    assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{e}");

    // The new one accepts it.
    let u = svc
        .create(&user, &badge_user("later", false), &new)
        .expect("create");
    assert_eq!(u.doc["schemas"], json!([USER_SCHEMA, GLUU_USER_EXTENSION]));
    assert_eq!(u.doc[GLUU_USER_EXTENSION], json!({"badge": "B-7"}));
    let id = id_of(&u);
    let list = search(
        &svc,
        &user,
        &filter(&format!("{GLUU_USER_EXTENSION}:badge eq \"B-7\"")),
    );
    assert_eq!(list["totalResults"], 1);

    // A PATCH under the old snapshot cannot name it either.
    let e = err(svc.patch(
        &old_user,
        &id,
        &patch_body(json!([{"op": "replace", "path": format!("{GLUU_USER_EXTENSION}:badge"), "value": "B-8"}])),
        None,
        &old,
    ));
    assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{e}");
    let r = svc
        .patch(
            &user,
            &id,
            &patch_body(json!([{"op": "replace", "path": format!("{GLUU_USER_EXTENSION}:badge"), "value": "B-8"}])),
            None,
            &new,
        )
        .expect("patch with the new registry");
    assert_eq!(r.doc[GLUU_USER_EXTENSION]["badge"], "B-8");

    // Without the extension, the old snapshot still serves its own requests.
    let plain = svc
        .create(&old_user, &user_body("plain"), &old)
        .expect("a plain user under the old snapshot");
    assert_eq!(plain.doc["schemas"], json!([USER_SCHEMA]));
    // What it shows of a user holding the new attribute, and what a write does.
    let got = svc
        .get(&old_user, &id, &old)
        .expect("get under the old snapshot");
    assert_eq!(got.doc.get(GLUU_USER_EXTENSION), None, "{}", got.doc);
    let title = patch_body(json!([{"op": "replace", "path": "title", "value": "t"}]));
    // A PATCH runs over the whole stored document, which the old schema cannot
    // read; a PUT replaces the document with what the old schema knows.
    let e = err(svc.patch(&old_user, &id, &title, None, &old));
    assert_eq!(
        parts(&e),
        (
            400,
            Some(ScimType::InvalidSyntax),
            format!("unknown attribute '{GLUU_USER_EXTENSION}:badge'").as_str()
        )
    );
    let put = svc
        .replace(&old_user, &id, &user_body("later"), None, &old)
        .expect("put under the old snapshot");
    assert_eq!(put.doc["schemas"], json!([USER_SCHEMA]));
    let got = svc.get(&user, &id, &new).expect("get");
    assert_eq!(got.doc.get(GLUU_USER_EXTENSION), None, "{}", got.doc);
    assert_eq!(got.doc["schemas"], json!([USER_SCHEMA]));
}

#[test]
fn custom_attribute_admin() {
    let (_dir, svc) = service();
    assert_eq!(svc.custom_attributes().expect("list"), vec![]);
    svc.add_custom_attribute(&badge()).expect("add");
    assert_eq!(svc.custom_attributes().expect("list"), vec![badge()]);
    let e = err(svc.add_custom_attribute(&CustomAttribute {
        name: "BADGE".into(),
        ..badge()
    }));
    assert_eq!(
        parts(&e),
        (
            409,
            Some(ScimType::Uniqueness),
            "custom attribute 'BADGE' already exists"
        )
    );
    let e = err(svc.add_custom_attribute(&CustomAttribute {
        name: "3d".into(),
        ..badge()
    }));
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{e}");

    // A typed attribute is checked by type.
    svc.add_custom_attribute(&CustomAttribute {
        name: "level".into(),
        kind: CustomType::Numeric,
        multi_valued: false,
        description: String::new(),
    })
    .expect("add level");
    let user = users(&svc);
    let e = err(svc.create(
        &user,
        &json!({"schemas": [USER_SCHEMA], "userName": "lv", GLUU_USER_EXTENSION: {"level": "high"}}),
        &ctx(&svc),
    ));
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{e}");

    // Removing one that users hold needs force, which clears their values.
    let u = svc
        .create(&user, &badge_user("holder", true), &ctx(&svc))
        .expect("holder");
    let e = err(svc.remove_custom_attribute("badge", false));
    assert_eq!(e.status, 409, "{e}");
    assert_eq!(
        svc.remove_custom_attribute("badge", true).expect("force"),
        1
    );
    let got = svc.get(&user, &id_of(&u), &ctx(&svc)).expect("holder");
    assert!(got.doc.get(GLUU_USER_EXTENSION).is_none(), "{}", got.doc);
    assert_eq!(got.version, 2, "clearing the value is a new version");
    assert_eq!(svc.custom_attributes().expect("list").len(), 1);
    let e = err(svc.remove_custom_attribute("badge", true));
    assert_eq!(parts(&e), (404, None, "no custom attribute 'badge'"));
}

#[test]
fn bulk_keeps_the_registry_it_started_with() {
    let (_dir, svc) = service();
    let old = ctx(&svc);
    svc.add_custom_attribute(&badge()).expect("add badge");
    let body = bulk_body(
        None,
        json!([
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": user_body("plain")},
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": badge_user("badged", true)}
        ]),
    );
    let resp = svc.bulk(&body, &old, &allow_all).expect("bulk");
    assert_eq!(statuses(&resp), vec!["201", "400"], "{resp}");
    let resp = svc.bulk(&body, &ctx(&svc), &allow_all).expect("bulk");
    assert_eq!(statuses(&resp), vec!["409", "201"], "{resp}");
}

#[test]
fn a_member_type_is_user_or_group() {
    let (_dir, svc, clock) = fixture();
    let a = create_user(&svc, &clock, "typed");
    let bypass = RequestCtx {
        overhead_bypass: true,
        ..ctx(&svc)
    };
    for c in [ctx(&svc), bypass] {
        let body = json!({"schemas": [GROUP_SCHEMA], "displayName": "t",
                          "members": [{"value": id_of(&a), "type": "Device"}]});
        let e = err(svc.create(&groups(&svc), &body, &c));
        assert_eq!(e.status, 400, "{e}");
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{e}");
    }
    let g = create_group(&svc, &clock, "t2", &[]);
    let ops = patch_body(json!([{"op": "add", "path": "members",
                                  "value": [{"value": id_of(&a), "type": "Robot"}]}]));
    let e = err(svc.patch(&groups(&svc), &id_of(&g), &ops, None, &ctx(&svc)));
    assert_eq!(e.status, 400, "{e}");
    assert!(member_ids(&svc.get(&groups(&svc), &id_of(&g), &ctx(&svc)).expect("g")).is_empty());
}

// ---------------------------------------------------------------------------
// Interception hooks: where the service calls them (a test double, not Luau)
// ---------------------------------------------------------------------------

mod hooked {
    use super::*;
    use scim_hooks::{
        HookContext, HookError, HookResponse, HookResult, Hooks, SearchGate, WriteOp,
    };
    use scim_proto::schema::ResourceKind;

    /// Hooks that act on marker values, and record what they saw.
    #[derive(Default)]
    struct Double {
        seen: Mutex<Vec<String>>,
    }

    impl Double {
        fn saw(&self, what: String) {
            self.seen.lock().expect("seen").push(what);
        }
        fn seen(&self) -> Vec<String> {
            self.seen.lock().expect("seen").clone()
        }
    }

    fn refused() -> HookError {
        HookError::Refused {
            script: "double".into(),
        }
    }

    impl Hooks for Double {
        fn active(&self) -> bool {
            true
        }
        fn manage_resource(
            &self,
            ctx: &HookContext,
            kind: ResourceKind,
            resource: &Value,
            payload: Option<&Value>,
        ) -> HookResult<Option<HookResponse>> {
            self.saw(format!(
                "manage {} {} {:?} payload={}",
                ctx.method,
                ctx.path,
                kind,
                payload.is_some()
            ));
            Ok((resource["title"] == "secret").then(|| HookResponse {
                status: 403,
                body: Some(json!({"detail": "not yours"})),
                headers: vec![("x-script".into(), "double".into())],
            }))
        }
        fn manage_search(
            &self,
            _: &HookContext,
            kind: ResourceKind,
            search: &Value,
        ) -> HookResult<SearchGate> {
            self.saw(format!("search {kind:?}"));
            if search["filter"] == "refuse" {
                return Ok(SearchGate::Respond(HookResponse {
                    status: 400,
                    body: None,
                    headers: vec![],
                }));
            }
            Ok(SearchGate::Continue {
                filter_prepend: kind.is_user().then(|| "title eq \"eng\"".to_string()),
            })
        }
        fn before_write(
            &self,
            ctx: &HookContext,
            _: ResourceKind,
            op: WriteOp,
            resource: &mut Value,
        ) -> HookResult<()> {
            self.saw(format!("before {op:?} {}", ctx.method));
            match resource["userName"].as_str() {
                Some("refused") => Err(refused()),
                Some("broken") => {
                    resource["active"] = json!("not a boolean");
                    Ok(())
                }
                _ => {
                    if op != WriteOp::Delete {
                        resource["nickName"] = json!("set by a script");
                    }
                    Ok(())
                }
            }
        }
        fn after_write(
            &self,
            _: &HookContext,
            _: ResourceKind,
            op: WriteOp,
            resource: &mut Value,
        ) -> HookResult<()> {
            self.saw(format!("after {op:?}"));
            if resource["userName"] == "late-refusal" {
                return Err(refused());
            }
            resource["profileUrl"] = json!("https://response.only");
            Ok(())
        }
        fn on_get(&self, _: &HookContext, _: ResourceKind, resource: &mut Value) -> HookResult<()> {
            if let Some(o) = resource.as_object_mut() {
                o.remove("emails");
            }
            Ok(())
        }
        fn after_search(
            &self,
            _: &HookContext,
            kind: ResourceKind,
            results: &mut Value,
        ) -> HookResult<()> {
            self.saw(format!("results {kind:?}"));
            results["seenBy"] = json!("double");
            Ok(())
        }
    }

    fn setup() -> (TempDir, Service, Arc<TestClock>, Arc<Double>) {
        let double = Arc::new(Double::default());
        let (dir, svc, clock) = fixture_with(double.clone());
        (dir, svc, clock, double)
    }

    fn api(svc: &Service, method: &str, path: &str) -> RequestCtx {
        RequestCtx {
            hook: Some(Arc::new(HookContext {
                method: method.into(),
                path: path.into(),
                base_uri: BASE.into(),
                ..HookContext::default()
            })),
            ..ctx(svc)
        }
    }

    fn titled(name: &str, title: &str) -> Value {
        let mut b = user_body(name);
        b["title"] = json!(title);
        b
    }

    #[test]
    fn v1_changes_what_is_stored_and_v2_only_the_response() {
        let (_dir, svc, _clock, double) = setup();
        let r = svc
            .create(
                &users(&svc),
                &user_body("ann"),
                &api(&svc, "POST", "/Users"),
            )
            .expect("create");
        assert_eq!(r.doc["nickName"], "set by a script");
        assert_eq!(r.doc["profileUrl"], "https://response.only");
        let stored = svc.get(&users(&svc), &id_of(&r), &ctx(&svc)).expect("get");
        assert_eq!(stored.doc["nickName"], "set by a script");
        assert!(stored.doc.get("profileUrl").is_none(), "{}", stored.doc);
        assert_eq!(
            double.seen(),
            vec![
                "manage POST /Users User payload=true",
                "before Create POST",
                "after Create"
            ]
        );
        // Without a request context from the API no script runs.
        svc.create(&users(&svc), &user_body("quiet"), &ctx(&svc))
            .expect("create");
        assert_eq!(double.seen().len(), 3);
    }

    #[test]
    fn a_refusal_stops_the_write_and_names_the_script() {
        let (_dir, svc, _clock, _) = setup();
        let c = api(&svc, "POST", "/Users");
        let e = err(svc.create(&users(&svc), &user_body("refused"), &c));
        assert_eq!(
            parts(&e),
            (
                500,
                None,
                "interception script 'double' refused the operation"
            )
        );
        let e = err(svc.create(&users(&svc), &user_body("broken"), &c));
        assert_eq!(e.status, 500, "{e}");
        assert!(e.detail.contains("made the resource invalid"), "{e}");
        let none = search(&svc, &users(&svc), &SearchRequest::default());
        assert_eq!(none["totalResults"], 0, "nothing stored");

        // A refusal after the write keeps the write, and says so.
        let e = err(svc.create(&users(&svc), &user_body("late-refusal"), &c));
        assert_eq!(e.status, 500);
        assert!(e.detail.ends_with("the write was stored"), "{e}");
        let kept = search(&svc, &users(&svc), &filter("userName eq \"late-refusal\""));
        assert_eq!(kept["totalResults"], 1);
    }

    #[test]
    fn v5_answers_instead_of_the_operation() {
        let (_dir, svc, _clock, _) = setup();
        let e = err(svc.create(
            &users(&svc),
            &titled("spy", "secret"),
            &api(&svc, "POST", "/Users"),
        ));
        assert_eq!(e.status, 403);
        let reply = e.reply.as_ref().expect("a scripted reply");
        assert_eq!(reply.body, json!({"detail": "not yours"}));
        assert_eq!(reply.headers, vec![("x-script".into(), "double".into())]);
        assert_eq!(
            search(&svc, &users(&svc), &SearchRequest::default())["totalResults"],
            0
        );

        // On a stored resource: GET, PUT, PATCH and DELETE are all gated.
        let u = svc
            .create(&users(&svc), &titled("kept", "secret"), &ctx(&svc))
            .expect("create without scripts");
        let id = id_of(&u);
        let path = format!("/Users/{id}");
        let get = err(svc.get(&users(&svc), &id, &api(&svc, "GET", &path)));
        assert_eq!(get.status, 403);
        let put = err(svc.replace(
            &users(&svc),
            &id,
            &user_body("kept"),
            None,
            &api(&svc, "PUT", &path),
        ));
        assert_eq!(put.status, 403);
        let patch = err(svc.patch(
            &users(&svc),
            &id,
            &patch_body(json!([{"op": "replace", "path": "title", "value": "x"}])),
            None,
            &api(&svc, "PATCH", &path),
        ));
        assert_eq!(patch.status, 403);
        let del = err(svc.delete(&users(&svc), &id, None, &api(&svc, "DELETE", &path)));
        assert_eq!(del.status, 403);
        let still = svc.get(&users(&svc), &id, &ctx(&svc)).expect("still there");
        assert_eq!(still.version, 1, "nothing changed");
    }

    #[test]
    fn v3_changes_a_get_and_v4_a_page() {
        let (_dir, svc, _clock, _) = setup();
        let u = svc
            .create(&users(&svc), &titled("eve", "eng"), &ctx(&svc))
            .expect("create");
        let id = id_of(&u);
        let got = svc
            .get(
                &users(&svc),
                &id,
                &api(&svc, "GET", &format!("/Users/{id}")),
            )
            .expect("get");
        assert!(got.doc.get("emails").is_none(), "{}", got.doc);
        let c = api(&svc, "GET", "/Users");
        let q = svc
            .prepare_search(&users(&svc), &SearchRequest::default(), &c)
            .expect("query");
        let page = svc.search(&q, &c).expect("page");
        assert_eq!(page["seenBy"], "double");
    }

    #[test]
    fn v5_search_prepends_a_filter_or_answers() {
        let (_dir, svc, _clock, double) = setup();
        for (n, t) in [("e1", "eng"), ("e2", "eng"), ("s1", "sales")] {
            svc.create(&users(&svc), &titled(n, t), &ctx(&svc))
                .expect("create");
        }
        let c = api(&svc, "GET", "/Users");
        let run = |req: SearchRequest| -> ScimResult<Value> {
            let q = svc.prepare_search(&users(&svc), &req, &c)?;
            svc.search(&q, &c)
        };
        assert_eq!(
            run(SearchRequest::default()).expect("all")["totalResults"],
            2
        );
        let narrowed = run(filter("userName sw \"e1\" or userName sw \"s1\"")).expect("or");
        assert_eq!(
            narrowed["totalResults"], 1,
            "the prepend binds tighter: {narrowed}"
        );
        let e = err(run(filter("refuse")));
        assert_eq!(e.status, 400);
        assert!(e.reply.is_some());

        // Root search: each type's gate, both v4 hooks.
        let root = svc
            .prepare_root_search(&SearchRequest::default(), &c)
            .expect("root");
        let all = svc.search_all(&root, &c).expect("all");
        assert_eq!(all["totalResults"], 2, "users narrowed, no groups: {all}");
        let seen = double.seen();
        assert!(seen.contains(&"search Group".to_string()), "{seen:?}");
        assert!(seen.contains(&"results Group".to_string()), "{seen:?}");
    }

    #[test]
    fn bulk_runs_the_hooks_per_operation() {
        let (_dir, svc, _clock, double) = setup();
        let body = bulk_body(
            None,
            json!([
                {"method": "POST", "path": "/Users", "bulkId": "a", "data": user_body("bulk1")},
                {"method": "POST", "path": "/Users", "bulkId": "b", "data": user_body("refused")},
                {"method": "PATCH", "path": "/Users/bulkId:a", "data":
                    patch_body(json!([{"op": "replace", "path": "title", "value": "t"}]))}
            ]),
        );
        let resp = svc
            .bulk(&body, &api(&svc, "POST", "/Bulk"), &allow_all)
            .expect("bulk");
        assert_eq!(statuses(&resp), vec!["201", "500", "200"], "{resp}");
        let seen = double.seen();
        assert_eq!(seen[0], "manage POST /Users User payload=true");
        assert!(
            seen.iter().any(|s| s.starts_with("manage PATCH /Users/")),
            "{seen:?}"
        );
        assert!(
            seen.contains(&"before Update PATCH".to_string()),
            "{seen:?}"
        );
    }
}
