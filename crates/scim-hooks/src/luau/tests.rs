//! Engine tests: every method and version, chaining, v5, the sandbox limits,
//! hot reload, check, notify, the Gluu view, and the example scripts.

use super::*;
use crate::{
    HookContext, HookError, Hooks, ScriptDef, ScriptManager, SearchGate, TokenDetails, WriteOp,
};
use chrono::TimeZone;
use scim_proto::schema::ResourceKind;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Instant;

struct FixedClock;
impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }
}

fn cfg() -> EngineConfig {
    EngineConfig {
        states_per_script: 2,
        ..EngineConfig::default()
    }
}

fn engine() -> Engine {
    Engine::new(cfg(), Arc::new(FixedClock))
}

fn def(name: &str, order: i64, source: &str) -> ScriptDef {
    ScriptDef {
        name: name.into(),
        order,
        enabled: true,
        source: source.into(),
        properties: BTreeMap::new(),
    }
}

fn with_props(mut d: ScriptDef, props: &[(&str, &str)]) -> ScriptDef {
    for (k, v) in props {
        d.properties.insert((*k).into(), (*v).into());
    }
    d
}

fn loaded(defs: Vec<ScriptDef>) -> Engine {
    let e = engine();
    let errs = e.load(defs);
    assert!(errs.is_empty(), "{errs:?}");
    e
}

fn ctx() -> HookContext {
    HookContext {
        path: "/Users/1".into(),
        base_uri: "https://h/scim/v2".into(),
        method: "GET".into(),
        resource_type: "User".into(),
        query_params: vec![("attributes".into(), "userName".into())],
        request_headers: vec![("x-test".into(), "yes".into())],
        token: Some(TokenDetails {
            client_id: "client-a".into(),
            scope: "scim.read scim.write".into(),
            expiration: Some(Utc.with_ymd_and_hms(2030, 5, 6, 7, 8, 9).unwrap()),
            token_type: "Bearer".into(),
        }),
        request_id: Some("req-1".into()),
    }
}

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "1",
        "userName": "bjensen",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [{"value": "b@example.com", "primary": true}],
        "groups": [],
        "meta": {"resourceType": "User"}
    })
}

/// What `GET /Users/{id}` answers for a user of the benchmark (scim-bench's
/// `load`): the per-call figures are for a resource of this size.
fn bench_user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": "ext-user7", "userName": "user7",
        "name": {"formatted": "Grace Lovelace", "familyName": "Lovelace", "givenName": "Grace"},
        "displayName": "Grace Lovelace (user7)", "title": "Engineer",
        "preferredLanguage": "en-US", "active": true,
        "emails": [
            {"value": "user7@example.com", "type": "work", "primary": true},
            {"value": "user7@home.example.com", "type": "home", "primary": false}
        ],
        ENTERPRISE: {"employeeNumber": "7", "department": "Dept 0"},
        "id": "01a235cb-ea0c-704a-8c1d-3ed3df3eae3d",
        "meta": {
            "resourceType": "User", "created": "2026-12-02T08:08:05.900Z",
            "lastModified": "2026-12-02T08:08:05.900Z", "version": "W/\"1\"",
            "location": "http://127.0.0.1:18555/scim/v2/Users/01a235cb-ea0c-704a-8c1d-3ed3df3eae3d"
        }
    })
}

fn failed_script(r: crate::HookResult<()>) -> (String, String) {
    match r {
        Err(HookError::Failed { script, message }) => (script, message),
        other => panic!("expected Failed, got {other:?}"),
    }
}

// ---- conversion -------------------------------------------------------------

#[test]
fn round_trip_keeps_shape_order_and_nulls() {
    let e = loaded(vec![def(
        "id",
        1,
        "function createUser(u, c) return true end",
    )]);
    let mut v = json!({
        "z": 1, "a": [], "m": {}, "n": null, "arr": [1, null, 3], "f": 1.5,
        "nested": {"y": [{"k": "v"}], "x": true}, "big": 12345678901_i64
    });
    let orig = v.clone();
    e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
        .unwrap();
    assert_eq!(v, orig);
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    let orig_keys: Vec<&String> = orig.as_object().unwrap().keys().collect();
    assert_eq!(keys, orig_keys, "key order kept");

    // The same through the full conversion back (the script changed something).
    let e = loaded(vec![def(
        "add",
        1,
        "function createUser(u, c) u.added = true; return true end",
    )]);
    e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
        .unwrap();
    let added = v.as_object_mut().unwrap().shift_remove("added");
    assert_eq!(added, Some(json!(true)));
    assert_eq!(v, orig);
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, orig_keys, "key order kept");
}

/// Whether a script changed its input is found at any depth, for any kind of
/// change; an untouched input comes back exactly as it was.
#[test]
fn every_kind_of_change_is_seen() {
    let cases = [
        ("u.emails[2].value = 'other@example.com'", "/emails/1/value"),
        ("u.emails[3] = {value = 'x'}", "/emails/2/value"),
        ("table.remove(u.emails, 1)", "/emails/0/value"),
        ("u.name.givenName = nil", "/name/givenName"),
        ("u.name.middleName = 'Q'", "/name/middleName"),
        ("u.active = false", "/active"),
        ("u.meta.version = 'W/\"2\"'", "/meta/version"),
        ("u.groups = {}", "/groups"),
        (
            "u[ENT].department = 'Dept 1'",
            "/urn:ietf:params:scim:schemas:extension:enterprise:2.0:User/department",
        ),
    ];
    for (change, pointer) in cases {
        let src = format!(
            "local ENT = '{ENTERPRISE}'\nfunction createUser(u, c) {change}; return true end"
        );
        let e = loaded(vec![def("c", 1, &src)]);
        let mut v = bench_user();
        v["groups"] = json!([{"value": "g1"}]);
        let orig = v.clone();
        e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
            .unwrap();
        assert_ne!(v, orig, "{change}");
        assert_ne!(v.pointer(pointer), orig.pointer(pointer), "{change}");
    }
    let e = loaded(vec![def(
        "look",
        1,
        "function createUser(u, c) local n = 0; for k, v in pairs(u) do n = n + 1 end; return u.gluu ~= nil end",
    )]);
    let mut v = json!({"userName": "a", "f": 1.0, "emails": []});
    e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
        .unwrap();
    assert_eq!(
        serde_json::to_string(&v).unwrap(),
        r#"{"userName":"a","f":1.0,"emails":[]}"#
    );
}

/// The resource is filled on first use (`lazy`); every way of using it sees it.
#[test]
fn the_lazy_resource_acts_as_a_table() {
    let keys = user().as_object().unwrap().len();
    let cases: [(&str, &str, Value); 7] = [
        (
            "local n = 0; for _ in pairs(u) do n += 1 end; u.n = n",
            "/n",
            json!(keys),
        ),
        (
            "local n = 0; for _ in u do n += 1 end; u.n = n",
            "/n",
            json!(keys),
        ),
        ("u.n = table.clone(u).userName", "/n", json!("bjensen")),
        ("u.n = u.gluu ~= nil", "/n", json!(true)),
        ("u.n = #u.emails", "/n", json!(1)),
        // Raw writes before anything else: kept, and the rest still there.
        ("rawset(u, 'nickName', 'raw')", "/nickName", json!("raw")),
        ("rawset(u, 'userName', 'raw')", "/userName", json!("raw")),
    ];
    for (code, pointer, want) in cases {
        let src = format!("function createUser(u, c) {code}; return true end");
        let e = loaded(vec![def("c", 1, &src)]);
        let mut v = user();
        e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
            .unwrap();
        assert_eq!(v.pointer(pointer), Some(&want), "{code}: {v}");
        assert_eq!(v["name"], user()["name"], "{code}: the rest is kept");
    }
    // Looked at, or not at all: what was given stands, byte for byte.
    for code in ["local x = 1", "local x = u.userName", "local x = u.missing"] {
        let src = format!("function createUser(u, c) {code}; return true end");
        let e = loaded(vec![def("c", 1, &src)]);
        let mut v = json!({"userName": "a", "f": 1.0, "emails": []});
        e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
            .unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"userName":"a","f":1.0,"emails":[]}"#
        );
    }
}

/// A resource a script keeps past its call never fills itself with a later
/// call's resource.
#[test]
fn a_kept_resource_never_shows_a_later_one() {
    let e = Engine::new(
        EngineConfig {
            states_per_script: 1,
            ..EngineConfig::default()
        },
        Arc::new(FixedClock),
    );
    let errs = e.load(vec![def(
        "keep",
        1,
        r#"function createUser(u, c)
            if kept == nil then kept = u; return true end
            u.seen = tostring(kept.userName)
            return true
        end"#,
    )]);
    assert!(errs.is_empty(), "{errs:?}");
    let mut first = user();
    e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut first)
        .unwrap();
    assert_eq!(first, user());
    let mut second = json!({"userName": "other"});
    e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut second)
        .unwrap();
    assert_eq!(second["seen"], "nil");
}

/// The lazy metatable on another table fills nothing: the resource stays whole.
#[test]
fn the_lazy_metatable_elsewhere_fills_nothing() {
    let e = loaded(vec![def(
        "decoy",
        1,
        r#"function createUser(u, c)
            local other = setmetatable({}, getmetatable(u))
            assert(other.userName == nil)
            for _ in pairs(other) do error("not empty") end
            return true
        end"#,
    )]);
    let mut v = user();
    e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
        .unwrap();
    assert_eq!(v, user());
    let e = loaded(vec![def(
        "decoy-then-read",
        1,
        r#"function createUser(u, c)
            local other = setmetatable({}, getmetatable(u))
            local _ = other.x
            u.nickName = u.userName .. "!"
            return true
        end"#,
    )]);
    let mut v = user();
    e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
        .unwrap();
    assert_eq!(v["nickName"], "bjensen!");
    assert_eq!(v["name"], user()["name"]);
}

/// A resource handed untouched to `scim.notify` is sent whole.
#[test]
fn notify_of_an_untouched_resource_sends_it_whole() {
    let (port, rx) = listener();
    let e = notify_engine();
    let errs = e.load(vec![with_props(
        def(
            "n",
            1,
            "function createUser(u, c) return scim.notify(c.url, {user = u}) end",
        ),
        &[("url", &format!("http://127.0.0.1:{port}/hook"))],
    )]);
    assert!(errs.is_empty());
    let mut v = user();
    e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
        .unwrap();
    assert_eq!(v, user());
    e.commit("req-1");
    let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let body: Value = serde_json::from_str(got.lines().nth(1).unwrap()).unwrap();
    assert_eq!(body, json!({"user": user()}));
}

/// Slow script calls make the service hand point reads to the blocking pool;
/// quick ones bring them back.
#[test]
fn slow_calls_are_noticed_and_forgotten() {
    let e = Engine::new(
        EngineConfig {
            states_per_script: 1,
            cpu_limit: Duration::from_secs(5),
            ..EngineConfig::default()
        },
        Arc::new(FixedClock),
    );
    let errs = e.load(vec![def(
        "s",
        1,
        r#"function getApiVersion(c) return 3 end
        function getUser(u, c)
            if u.slow then local n = 0; for i = 1, 300000 do n += i end end
            return true
        end"#,
    )]);
    assert!(errs.is_empty(), "{errs:?}");
    assert!(e.calls_are_quick());
    for _ in 0..20 {
        e.on_get(&ctx(), ResourceKind::User, &mut json!({"slow": true}))
            .unwrap();
    }
    assert!(!e.calls_are_quick());
    let quick_again = (0..1000).any(|_| {
        e.on_get(&ctx(), ResourceKind::User, &mut json!({"slow": false}))
            .unwrap();
        e.calls_are_quick()
    });
    assert!(quick_again);
}

#[test]
fn script_changes_come_back_new_arrays_are_arrays() {
    let e = loaded(vec![def(
        "s",
        1,
        r#"function createUser(u, c)
            u.nickName = "Babs"
            u.name.givenName = nil
            u.tags = {"a", "b"}
            u.empty = setmetatable({}, scim.array_mt)
            table.insert(u.emails, {value = "x@example.com"})
            u.groups = nil
            return true
        end"#,
    )]);
    let mut v = user();
    e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
        .unwrap();
    assert_eq!(v["nickName"], "Babs");
    assert_eq!(v["name"], json!({"familyName": "Jensen"}));
    assert_eq!(v["tags"], json!(["a", "b"]));
    assert_eq!(v["empty"], json!([]));
    assert_eq!(v["emails"][1]["value"], "x@example.com");
    assert!(v.get("groups").is_none());
    // The new key comes after the kept ones.
    assert_eq!(v.as_object().unwrap().keys().next_back().unwrap(), "tags");
}

// ---- methods and versions -----------------------------------------------------

const ALL_METHODS: &str = r#"
function getApiVersion(c) return tonumber(c.version) end
local function mark(name) return function(r, c) r.touched = name; return true end end
createUser = mark("createUser"); updateUser = mark("updateUser"); deleteUser = mark("deleteUser")
createGroup = mark("createGroup"); updateGroup = mark("updateGroup"); deleteGroup = mark("deleteGroup")
postCreateUser = mark("postCreateUser"); postUpdateUser = mark("postUpdateUser"); postDeleteUser = mark("postDeleteUser")
postCreateGroup = mark("postCreateGroup"); postUpdateGroup = mark("postUpdateGroup"); postDeleteGroup = mark("postDeleteGroup")
getUser = mark("getUser"); getGroup = mark("getGroup")
postSearchUsers = mark("postSearchUsers"); postSearchGroups = mark("postSearchGroups")
function manageResourceOperation(ctx, r, p, c) return {status = 418, body = {detail = "manageResourceOperation"}} end
function manageSearchOperation(ctx, s, c) ctx:setFilterPrepend("active eq true"); return nil end
"#;

/// What each hook did with a script of `version`: the method names that ran.
fn run_all(version: &str) -> Vec<String> {
    let e = loaded(vec![with_props(
        def("all", 1, ALL_METHODS),
        &[("version", version)],
    )]);
    let c = ctx();
    let mut ran = Vec::new();
    let mut note = |v: &Value| {
        if let Some(s) = v.get("touched").and_then(Value::as_str) {
            ran.push(s.to_string());
        }
    };
    for kind in [ResourceKind::User, ResourceKind::Group] {
        for op in [WriteOp::Create, WriteOp::Update, WriteOp::Delete] {
            let mut v = json!({"id": "1"});
            e.before_write(&c, kind, op, &mut v).unwrap();
            note(&v);
            let mut v = json!({"id": "1"});
            e.after_write(&c, kind, op, &mut v).unwrap();
            note(&v);
        }
        let mut v = json!({"id": "1"});
        e.on_get(&c, kind, &mut v).unwrap();
        note(&v);
        let mut v = json!({"Resources": []});
        e.after_search(&c, kind, &mut v).unwrap();
        note(&v);
    }
    // Devices have no Gluu hooks.
    let mut v = json!({"id": "1"});
    e.before_write(&c, ResourceKind::FidoDevice, WriteOp::Create, &mut v)
        .unwrap();
    assert!(v.get("touched").is_none());
    if let Some(r) = e
        .manage_resource(&c, ResourceKind::User, &json!({"id": "1"}), None)
        .unwrap()
    {
        assert_eq!(r.status, 418);
        ran.push("manageResourceOperation".into());
    }
    if let SearchGate::Continue {
        filter_prepend: Some(f),
    } = e.manage_search(&c, ResourceKind::User, &json!({})).unwrap()
    {
        assert_eq!(f, "active eq true");
        ran.push("manageSearchOperation".into());
    }
    ran
}

#[test]
fn every_method_runs_at_version_5() {
    let ran = run_all("5");
    let expected = [
        "createUser",
        "postCreateUser",
        "updateUser",
        "postUpdateUser",
        "deleteUser",
        "postDeleteUser",
        "getUser",
        "postSearchUsers",
        "createGroup",
        "postCreateGroup",
        "updateGroup",
        "postUpdateGroup",
        "deleteGroup",
        "postDeleteGroup",
        "getGroup",
        "postSearchGroups",
        "manageResourceOperation",
        "manageSearchOperation",
    ];
    assert_eq!(ran, expected);
}

#[test]
fn version_gates_methods() {
    let v1 = ["createUser", "updateUser", "deleteUser"];
    let v2 = ["postCreateUser", "postUpdateUser", "postDeleteUser"];
    let has = |ran: &[String], names: &[&str]| names.iter().all(|n| ran.iter().any(|r| r == n));
    let none = |ran: &[String], names: &[&str]| names.iter().all(|n| !ran.iter().any(|r| r == n));
    let r1 = run_all("1");
    assert!(has(&r1, &v1) && none(&r1, &v2) && none(&r1, &["getUser"]));
    let r2 = run_all("2");
    assert!(has(&r2, &v1) && has(&r2, &v2) && none(&r2, &["getUser", "postSearchUsers"]));
    let r3 = run_all("3");
    assert!(has(&r3, &["getUser", "getGroup"]) && none(&r3, &["postSearchUsers"]));
    let r4 = run_all("4");
    assert!(has(&r4, &["postSearchUsers", "postSearchGroups"]));
    assert!(none(
        &r4,
        &["manageResourceOperation", "manageSearchOperation"]
    ));
    // getApiVersion returning nil (tonumber of a missing property): -1.
    let e = loaded(vec![def("bad", 1, ALL_METHODS)]);
    assert_eq!(e.loaded()[0].api_version, -1);
}

#[test]
fn failing_get_api_version_counts_as_minus_one() {
    let e = loaded(vec![def(
        "v",
        1,
        r#"function getApiVersion(c) error("boom") end
           function createUser(u, c) u.a = 1; return true end
           function postCreateUser(u, c) u.b = 1; return true end"#,
    )]);
    assert_eq!(e.loaded()[0].api_version, -1);
    let mut v = json!({});
    e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
        .unwrap();
    e.after_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
        .unwrap();
    assert_eq!(v, json!({"a": 1}), "v1 runs, v2 is skipped as true");
    // Absent getApiVersion: 1.
    let e = loaded(vec![def(
        "w",
        1,
        "function createUser(u, c) return true end",
    )]);
    assert_eq!(e.loaded()[0].api_version, 1);
}

// ---- chaining -----------------------------------------------------------------

#[test]
fn scripts_chain_in_order_and_first_false_stops() {
    let e = loaded(vec![
        def(
            "second",
            20,
            r#"function createUser(u, c) u.trail = u.trail .. ",second"; return true end"#,
        ),
        def(
            "first",
            10,
            r#"function createUser(u, c) u.trail = "first"; return true end"#,
        ),
    ]);
    let mut v = json!({});
    e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
        .unwrap();
    assert_eq!(v["trail"], "first,second");

    let e = loaded(vec![
        def(
            "a",
            1,
            "function createUser(u, c) u.a = true; return true end",
        ),
        def("b", 2, "function createUser(u, c) return false end"),
        def(
            "c",
            3,
            r#"function createUser(u, c) error("c must not run") end"#,
        ),
    ]);
    let mut v = json!({});
    let r = e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v);
    assert_eq!(r, Err(HookError::Refused { script: "b".into() }));
    assert!(e.last_error("c").is_none(), "the chain stopped at b");
}

#[test]
fn errors_and_bad_returns_fail_naming_the_script() {
    let e = loaded(vec![def(
        "err",
        1,
        "function createUser(u, c)\n  local x = nil\n  return x.y\nend\nfunction updateUser(u, c) end",
    )]);
    let (script, msg) =
        failed_script(e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut json!({})));
    assert_eq!(script, "err");
    assert!(msg.contains("line 3"), "{msg}");
    let last = e.last_error("err").unwrap();
    assert_eq!(last.method, "createUser");
    assert_eq!(last.line, Some(3));
    assert_eq!(last.request_id.as_deref(), Some("req-1"));
    assert_eq!(last.at, FixedClock.now());
    assert_eq!(e.last_errors().len(), 1);
    // Returning nothing is not a boolean.
    let (_, msg) =
        failed_script(e.before_write(&ctx(), ResourceKind::User, WriteOp::Update, &mut json!({})));
    assert!(msg.contains("expected a boolean"), "{msg}");
}

// ---- v5 -----------------------------------------------------------------------

#[test]
fn manage_resource_responses_and_context() {
    let e = loaded(vec![def(
        "v5",
        1,
        r#"function getApiVersion() return 5 end
        function manageResourceOperation(ctx, res, payload, c)
            if ctx.method == "DELETE" then
                return {status = 403, body = {detail = "no deletes"}, headers = {["X-Why"] = "policy"}}
            end
            if ctx.method == "PUT" then
                return {status = 200, body = {
                    path = ctx.path, baseUri = ctx.baseUri, resourceType = ctx.resourceType,
                    q = ctx.queryParams.attributes, h = ctx.requestHeaders["x-test"],
                    client = ctx.tokenDetails and ctx.tokenDetails.clientId,
                    scope = ctx.tokenDetails and ctx.tokenDetails.scope,
                    exp = ctx.tokenDetails and ctx.tokenDetails.expirationDate,
                    tt = ctx.tokenDetails and ctx.tokenDetails.tokenType,
                    user = res.userName, payloadNick = payload and payload.nickName,
                }}
            end
            return nil
        end"#,
    )]);
    let mut c = ctx();
    assert_eq!(
        e.manage_resource(&c, ResourceKind::User, &user(), None)
            .unwrap(),
        None
    );
    c.method = "DELETE".into();
    let r = e
        .manage_resource(&c, ResourceKind::User, &user(), None)
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body,
        Some(
            json!({"detail": "no deletes", "schemas": [scim_proto::messages::ERROR], "status": "403"})
        )
    );
    assert_eq!(r.headers, vec![("X-Why".to_string(), "policy".to_string())]);
    c.method = "PUT".into();
    let r = e
        .manage_resource(
            &c,
            ResourceKind::User,
            &user(),
            Some(&json!({"nickName": "nn"})),
        )
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 200);
    let b = r.body.unwrap();
    assert_eq!(b["path"], "/Users/1");
    assert_eq!(b["baseUri"], "https://h/scim/v2");
    assert_eq!(b["resourceType"], "User");
    assert_eq!(b["q"], "userName");
    assert_eq!(b["h"], "yes");
    assert_eq!(b["client"], "client-a");
    assert_eq!(b["scope"], "scim.read scim.write");
    assert_eq!(b["exp"], "2030-05-06T07:08:09Z");
    assert_eq!(b["tt"], "Bearer");
    assert_eq!(b["user"], "bjensen");
    assert_eq!(b["payloadNick"], "nn");
    assert!(b.get("schemas").is_none(), "a 200 body is left alone");
    // Bypass mode: no tokenDetails.
    c.token = None;
    let b = e
        .manage_resource(&c, ResourceKind::User, &user(), None)
        .unwrap()
        .unwrap()
        .body
        .unwrap();
    assert!(b.get("client").is_none());
}

#[test]
fn manage_invalid_response_fails() {
    let e = loaded(vec![def(
        "v5",
        1,
        r#"function getApiVersion() return 5 end
        function manageResourceOperation(ctx, res, payload, c) return {status = 42} end
        function manageSearchOperation(ctx, s, c) return true end"#,
    )]);
    let r = e.manage_resource(&ctx(), ResourceKind::User, &user(), None);
    assert!(matches!(r, Err(HookError::Failed { .. })), "{r:?}");
    let r = e.manage_search(&ctx(), ResourceKind::User, &json!({}));
    assert!(matches!(r, Err(HookError::Failed { .. })), "{r:?}");
}

#[test]
fn manage_search_prepend_and_respond() {
    let e = loaded(vec![def(
        "v5",
        1,
        r#"function getApiVersion() return 5 end
        function manageSearchOperation(ctx, s, c)
            if s.filter == "deny" then return {status = 403} end
            ctx:setFilterPrepend('title eq "x"')
            assert(ctx:getFilterPrepend() == 'title eq "x"')
            return nil
        end"#,
    )]);
    let g = e
        .manage_search(&ctx(), ResourceKind::User, &json!({"filter": "a pr"}))
        .unwrap();
    assert_eq!(
        g,
        SearchGate::Continue {
            filter_prepend: Some("title eq \"x\"".into())
        }
    );
    let g = e
        .manage_search(&ctx(), ResourceKind::User, &json!({"filter": "deny"}))
        .unwrap();
    let SearchGate::Respond(r) = g else {
        panic!("{g:?}")
    };
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body,
        Some(json!({"schemas": [scim_proto::messages::ERROR], "status": "403"}))
    );
    // The prepend of one call does not leak into the next.
    let e2 = loaded(vec![def(
        "v5",
        1,
        r#"function getApiVersion() return 5 end
        function manageSearchOperation(ctx, s, c)
            if s.filter == "set" then ctx:setFilterPrepend("a pr") end
        end"#,
    )]);
    let set = e2
        .manage_search(&ctx(), ResourceKind::User, &json!({"filter": "set"}))
        .unwrap();
    assert_ne!(
        set,
        SearchGate::Continue {
            filter_prepend: None
        }
    );
    let next = e2
        .manage_search(&ctx(), ResourceKind::User, &json!({}))
        .unwrap();
    assert_eq!(
        next,
        SearchGate::Continue {
            filter_prepend: None
        }
    );
}

#[test]
fn manage_goes_to_the_first_v5_script_only() {
    let e = loaded(vec![
        def(
            "v4",
            1,
            r#"function getApiVersion() return 4 end
            function manageResourceOperation() return {status = 401} end"#,
        ),
        def(
            "first5",
            2,
            r#"function getApiVersion() return 5 end
            function manageResourceOperation() return nil end"#,
        ),
        def(
            "second5",
            3,
            r#"function getApiVersion() return 6 end
            function manageResourceOperation() return {status = 403} end"#,
        ),
    ]);
    assert_eq!(
        e.manage_resource(&ctx(), ResourceKind::User, &user(), None)
            .unwrap(),
        None
    );
}

// ---- sandbox --------------------------------------------------------------------

#[test]
fn dangerous_globals_are_absent_and_libraries_frozen() {
    let e = loaded(vec![def(
        "sb",
        1,
        r#"function createUser(u, c)
            assert(io == nil and os == nil and require == nil and loadstring == nil)
            assert(load == nil and dofile == nil and getfenv == nil and setfenv == nil)
            assert(debug == nil and package == nil)
            assert(not pcall(function() string.rep = nil end))
            assert(not pcall(function() scim.notify = nil end))
            assert(not pcall(function() c.extra = "x" end))
            assert(collectgarbage("count") > 0)
            assert(not pcall(collectgarbage, "stop"))
            return true
        end"#,
    )]);
    e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut json!({}))
        .unwrap();
}

fn limited(src: &str) -> Engine {
    let e = Engine::new(
        EngineConfig {
            states_per_script: 1,
            memory_limit: 8 << 20,
            max_input_bytes: 10_000,
            ..EngineConfig::default()
        },
        Arc::new(FixedClock),
    );
    let errs = e.load(vec![def("lim", 1, src)]);
    assert!(errs.is_empty(), "{errs:?}");
    e
}

const LIMITS: &str = r#"
function createUser(u, c)
    if u.case == "loop" then while true do end end
    if u.case == "pcall_loop" then
        while true do pcall(function() while true do end end) end
    end
    if u.case == "heap" then
        local t = {}
        for i = 1, 1e6 do t[i] = string.rep("x", 100000) .. i end
    end
    if u.case == "rep" then local s = string.rep("x", 1e9) end
    if u.case == "recursion" then
        local function f(n) return f(n + 1) + 1 end
        f(1)
    end
    if u.case == "cycle" then u.self = u end
    if u.case == "error" then error("custom failure") end
    u.ok = true
    return true
end
"#;

#[test]
fn each_limit_ends_the_call_not_the_process() {
    let e = limited(LIMITS);
    for case in [
        "loop",
        "pcall_loop",
        "heap",
        "rep",
        "recursion",
        "cycle",
        "error",
    ] {
        let start = Instant::now();
        let mut v = json!({"case": case});
        let (script, msg) =
            failed_script(e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v));
        assert_eq!(script, "lim");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{case} took too long"
        );
        match case {
            "loop" => assert!(
                msg.contains("CPU time") && msg.contains("line 3"),
                "{case}: {msg}"
            ),
            "pcall_loop" => assert!(msg.contains("CPU time"), "{case}: {msg}"),
            "heap" | "rep" => assert!(msg.contains("memory"), "{case}: {msg}"),
            "recursion" => assert!(
                msg.contains("stack overflow") || msg.contains("memory"),
                "{case}: {msg}"
            ),
            "error" => assert!(
                msg.contains("custom failure") && msg.contains("line"),
                "{msg}"
            ),
            _ => {}
        }
        assert_eq!(v, json!({"case": case}), "a failed call changes nothing");
        // The state still works afterwards.
        let mut ok = json!({"case": "fine"});
        e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut ok)
            .unwrap();
        assert_eq!(ok["ok"], true, "after {case}");
    }
}

#[test]
fn input_larger_than_the_limit_is_refused() {
    let e = limited(LIMITS);
    let mut v = json!({"case": "fine", "blob": "x".repeat(20_000)});
    let (_, msg) =
        failed_script(e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v));
    assert!(msg.contains("larger than"), "{msg}");
}

#[test]
fn limits_apply_while_loading() {
    let e = Engine::new(
        EngineConfig {
            states_per_script: 1,
            admin_time_limit: Duration::from_millis(50),
            ..EngineConfig::default()
        },
        Arc::new(FixedClock),
    );
    let errs = e.load(vec![
        def("spin", 1, "while true do end"),
        def("initspin", 2, "function init(c) while true do end end"),
        def("good", 3, "function createUser(u, c) return true end"),
    ]);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs.iter().all(|e| e.message.contains("CPU time")),
        "{errs:?}"
    );
    assert_eq!(e.loaded().len(), 1);
    assert!(e.active());
}

// ---- management -----------------------------------------------------------------

#[test]
fn check_reports_lines() {
    let e = engine();
    let err = e
        .check(&def(
            "syn",
            1,
            "function createUser(u, c)\n  return true\n\nfunction x(",
        ))
        .unwrap_err();
    assert_eq!(err.script, "syn");
    assert!(err.line.is_some(), "{err:?}");
    assert!(!err.message.is_empty());
    let err = e
        .check(&def(
            "rt",
            1,
            "local a = 1\nfunction init(c)\n  error('no db')\nend",
        ))
        .unwrap_err();
    assert_eq!(err.line, Some(3), "{err:?}");
    assert!(err.message.contains("no db"), "{err:?}");
    assert_eq!(err.to_string(), "script 'rt', line 3: no db");
    let err = e
        .check(&def("f", 1, "function init(c) return false end"))
        .unwrap_err();
    assert!(err.message.contains("init returned false"));
    e.check(&def("ok", 1, "function init(c) return true end"))
        .unwrap();
    assert!(!e.active(), "check changes nothing");
}

#[test]
fn load_keeps_the_good_scripts_and_skips_disabled() {
    let e = engine();
    let mut off = def(
        "off",
        1,
        "function createUser(u, c) u.off = true return true end",
    );
    off.enabled = false;
    let errs = e.load(vec![
        def("bad", 1, "function ("),
        def(
            "good",
            2,
            "function createUser(u, c) u.good = true return true end",
        ),
        off,
    ]);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].script, "bad");
    let last = e.last_error("bad").unwrap();
    assert_eq!(last.method, "load");
    assert_eq!(last.line, Some(1));
    // The same broken definition again (a reload poll) is not retried.
    let again = e.load(vec![
        def("bad", 1, "function ("),
        def(
            "good",
            2,
            "function createUser(u, c) u.good = true return true end",
        ),
    ]);
    assert_eq!(again, errs);
    assert_eq!(e.last_error("bad").unwrap(), last);
    let mut v = json!({});
    e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
        .unwrap();
    assert_eq!(v, json!({"good": true}));
    e.load(vec![]);
    assert!(!e.active());
}

/// Captures the script log for one test thread.
fn capture<R>(f: impl FnOnce() -> R) -> (R, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let out = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || out.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let r = tracing::subscriber::with_default(sub, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (r, text)
}

#[test]
fn reload_runs_destroy_and_init_only_on_changes() {
    let src = |tag: &str| {
        format!(
            r#"function init(c) scim.log("info", "init {tag}") return true end
            function destroy(c) scim.log("info", "destroy {tag}") return true end
            function createUser(u, c) u.v = "{tag}" return true end"#
        )
    };
    let e = Engine::new(
        EngineConfig {
            states_per_script: 1,
            ..cfg()
        },
        Arc::new(FixedClock),
    );
    let ((), log) = capture(|| {
        assert!(e.load(vec![def("s", 1, &src("one"))]).is_empty());
        // The same definition again: nothing happens.
        assert!(e.load(vec![def("s", 1, &src("one"))]).is_empty());
        assert!(e.load(vec![def("s", 1, &src("two"))]).is_empty());
        assert!(e.load(vec![]).is_empty());
    });
    let events: Vec<&str> = log
        .lines()
        .filter_map(|l| {
            ["init one", "destroy one", "init two", "destroy two"]
                .into_iter()
                .find(|m| l.contains(m))
        })
        .collect();
    assert_eq!(
        events,
        ["init one", "init two", "destroy one", "destroy two"],
        "{log}"
    );
    assert!(log.contains("scim_script"), "{log}");
}

#[test]
fn hot_reload_under_load_fails_no_call() {
    let e = Arc::new(engine());
    let src = |n: usize| {
        format!("function createUser(u, c) u.version = {n} return true end\nfunction getUser(u, c) return true end\nfunction getApiVersion() return 3 end")
    };
    assert!(e.load(vec![def("s", 1, &src(0))]).is_empty());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let e = e.clone();
        let stop = stop.clone();
        workers.push(std::thread::spawn(move || {
            let mut calls = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let mut v = json!({"userName": "x"});
                e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
                    .unwrap();
                assert!(v["version"].is_number());
                e.on_get(&ctx(), ResourceKind::User, &mut v).unwrap();
                calls += 1;
            }
            calls
        }));
    }
    for n in 1..=15 {
        let extra = def(
            "t",
            2,
            &format!("function createUser(u, c) u.extra = {n} return true end"),
        );
        assert!(e.load(vec![def("s", 1, &src(n)), extra]).is_empty());
    }
    stop.store(true, Ordering::Relaxed);
    let total: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(total > 0);
    let mut v = json!({});
    e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
        .unwrap();
    assert_eq!(v, json!({"version": 15, "extra": 15}));
}

// ---- helpers ----------------------------------------------------------------------

#[test]
fn now_log_and_context_helpers() {
    let e = loaded(vec![def(
        "h",
        1,
        r#"function createUser(u, c)
            u.at = scim.now()
            scim.log("warn", "hello from " .. u.userName)
            print("printed", 1)
            local ctx = scim.context()
            u.client = ctx.tokenDetails.clientId
            return true
        end"#,
    )]);
    let (r, log) = capture(|| {
        let mut v = json!({"userName": "bob"});
        e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
            .map(|()| v)
    });
    let v = r.unwrap();
    assert_eq!(v["at"], "2026-01-02T03:04:05.000Z");
    assert_eq!(v["client"], "client-a");
    assert!(
        log.contains("hello from bob") && log.contains("script=\"h\"") || log.contains("script=h"),
        "{log}"
    );
    assert!(log.contains("createUser") && log.contains("req-1"), "{log}");
    assert!(
        log.contains("printed\t1") || log.contains("printed"),
        "{log}"
    );
}

#[test]
fn gluu_view_is_read_only_and_not_written_back() {
    let e = loaded(vec![def(
        "g",
        1,
        r#"function createUser(u, c)
            assert(u.gluu.uid[1] == "bjensen", "uid")
            assert(u.gluu.sn[1] == "Jensen", "sn")
            assert(u.gluu.mail[1] == "b@example.com", "mail")
            assert(not pcall(function() u.gluu.uid = {"x"} end), "view writable")
            assert(not pcall(function() u.gluu.uid[1] = "x" end), "nested writable")
            assert(not pcall(function() u.gluu = {} end), "gluu assignable")
            u.nickName = "changed"
            assert(u.gluu.nickname[1] == "changed", "view follows the resource")
            return true
        end
        function updateUser(u, c) u.gluu.uid = {"x"} return true end"#,
    )]);
    let mut v = user();
    e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
        .unwrap();
    assert!(v.get("gluu").is_none());
    assert_eq!(v["nickName"], "changed");
    let (_, msg) =
        failed_script(e.before_write(&ctx(), ResourceKind::User, WriteOp::Update, &mut user()));
    assert!(msg.contains("read"), "{msg}");
}

/// A one-shot HTTP server: the bodies of the POSTs it gets.
fn listener() -> (u16, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { break };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            let l = l.to_ascii_lowercase();
                            l.strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if data.len() >= end + 4 + len {
                        let head = text[..end].lines().next().unwrap_or("").to_string();
                        let body =
                            String::from_utf8_lossy(&data[end + 4..end + 4 + len]).to_string();
                        let _ = s.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        );
                        let _ = tx.send(format!("{head}\n{body}"));
                        break;
                    }
                }
            }
        }
    });
    (port, rx)
}

fn notify_engine() -> Engine {
    Engine::new(
        EngineConfig {
            states_per_script: 1,
            notify_allow: vec!["127.0.0.1".into()],
            notify_rate: 0,
            ..EngineConfig::default()
        },
        Arc::new(FixedClock),
    )
}

#[test]
fn notify_posts_to_allowed_hosts_after_success() {
    let (port, rx) = listener();
    let e = notify_engine();
    let errs = e.load(vec![with_props(
        def(
            "n",
            1,
            r#"function createUser(u, c)
                assert(scim.notify(c.url, {event = "created", id = u.id, tags = {"a"}}))
                return u.id ~= "refuse"
            end"#,
        ),
        &[("url", &format!("http://127.0.0.1:{port}/hook"))],
    )]);
    assert!(errs.is_empty());
    // A refused operation sends nothing.
    let r = e.before_write(
        &ctx(),
        ResourceKind::User,
        WriteOp::Create,
        &mut json!({"id": "refuse"}),
    );
    assert!(matches!(r, Err(HookError::Refused { .. })));
    e.before_write(
        &ctx(),
        ResourceKind::User,
        WriteOp::Create,
        &mut json!({"id": "7"}),
    )
    .unwrap();
    let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(got.starts_with("POST /hook"), "{got}");
    let body: Value = serde_json::from_str(got.lines().nth(1).unwrap()).unwrap();
    assert_eq!(body, json!({"event": "created", "id": "7", "tags": ["a"]}));
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "only one POST"
    );
}

#[test]
fn notify_refuses_hosts_not_allowed() {
    let e = notify_engine();
    let errs = e.load(vec![def(
        "n",
        1,
        r#"function createUser(u, c)
            u.a = scim.notify("http://evil.example.com/x", {})
            u.b = scim.notify("ftp://127.0.0.1/x", {})
            u.c = scim.notify("not a url", {})
            return true
        end"#,
    )]);
    assert!(errs.is_empty());
    let (v, log) = capture(|| {
        let mut v = json!({});
        e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
            .unwrap();
        v
    });
    assert_eq!(v, json!({"a": false, "b": false, "c": false}));
    assert!(log.contains("not on the notify allow-list"), "{log}");
    assert!(notify::allowed("http://127.0.0.1:99/x", &["127.0.0.1:99".into()]).is_ok());
    assert!(notify::allowed("http://127.0.0.1:98/x", &["127.0.0.1:99".into()]).is_err());
    assert!(notify::allowed("https://HOOKS.example.com/x", &["hooks.example.com".into()]).is_ok());
}

#[test]
fn a_full_queue_drops_with_a_log_line() {
    let n = notify::Notifier::start(notify::NotifySettings {
        queue: 1,
        rate_per_sec: 1,
        retries: 0,
        backoff: Duration::from_millis(1),
        timeout: Duration::from_millis(200),
    });
    let note = || Notification {
        url: "http://127.0.0.1:9/x".into(),
        body: json!({}),
        script: "q".into(),
        request_id: None,
    };
    let ((), log) = capture(|| {
        for _ in 0..5 {
            n.enqueue(note());
        }
    });
    assert!(log.contains("notify queue full"), "{log}");
}

// ---- examples -------------------------------------------------------------------

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[test]
fn example_notify_on_delete() {
    let (port, rx) = listener();
    let e = notify_engine();
    let src = include_str!("../../../../examples/scripts/notify_on_delete.lua");
    // Without its property, init refuses.
    let err = e.check(&def("notify_on_delete", 1, src)).unwrap_err();
    assert!(err.message.contains("init returned false"));
    let d = with_props(
        def("notify_on_delete", 1, src),
        &[("notify_url", &format!("http://127.0.0.1:{port}/deleted"))],
    );
    assert!(e.load(vec![d]).is_empty());
    let mut u = user();
    e.after_write(&ctx(), ResourceKind::User, WriteOp::Delete, &mut u)
        .unwrap();
    assert_eq!(u, user(), "the response is unchanged");
    let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let body: Value = serde_json::from_str(got.lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"event": "userDeleted", "id": "1", "userName": "bjensen", "at": "2026-01-02T03:04:05.000Z"})
    );
}

#[test]
fn example_attach_on_create() {
    let src = include_str!("../../../../examples/scripts/attach_on_create.lua");
    let e = loaded(vec![with_props(
        def("attach_on_create", 1, src),
        &[("organization", "Acme"), ("source", "scim")],
    )]);
    let mut u = user();
    e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut u)
        .unwrap();
    assert_eq!(u["userType"], "Employee");
    assert_eq!(
        u[ENTERPRISE],
        json!({"organization": "Acme", "division": "scim"})
    );
    assert_eq!(u["schemas"][1], ENTERPRISE);
    assert_eq!(u["userName"], "bjensen");
    // Existing values are kept.
    let mut u = user();
    u["userType"] = json!("Contractor");
    u[ENTERPRISE] = json!({"organization": "Other"});
    e.before_write(&ctx(), ResourceKind::User, WriteOp::Update, &mut u)
        .unwrap();
    assert_eq!(u["userType"], "Contractor");
    assert_eq!(u[ENTERPRISE]["organization"], "Other");
}

#[test]
fn example_hide_attribute() {
    let src = include_str!("../../../../examples/scripts/hide_attribute.lua");
    let e = loaded(vec![with_props(
        def("hide_attribute", 1, src),
        &[("attribute", "emails"), ("clients", "client-a, client-z")],
    )]);
    let mut u = user();
    e.on_get(&ctx(), ResourceKind::User, &mut u).unwrap();
    assert!(u.get("emails").is_none());
    let mut other = ctx();
    other.token.as_mut().unwrap().client_id = "client-b".into();
    let mut u = user();
    e.on_get(&other, ResourceKind::User, &mut u).unwrap();
    assert!(u.get("emails").is_some());
    let mut bypass = ctx();
    bypass.token = None;
    let mut u = user();
    e.after_write(&bypass, ResourceKind::User, WriteOp::Create, &mut u)
        .unwrap();
    assert!(u.get("emails").is_some());
    let mut list = json!({"schemas": [scim_proto::messages::LIST_RESPONSE], "totalResults": 2, "Resources": [user(), user()]});
    e.after_search(&ctx(), ResourceKind::User, &mut list)
        .unwrap();
    assert_eq!(list["totalResults"], 2);
    for r in list["Resources"].as_array().unwrap() {
        assert!(r.get("emails").is_none());
        assert_eq!(r["userName"], "bjensen");
    }
    // An extension attribute.
    let e = loaded(vec![with_props(
        def("hide_attribute", 1, src),
        &[
            ("attribute", &format!("{ENTERPRISE}:employeeNumber")),
            ("clients", "client-a"),
        ],
    )]);
    let mut u = user();
    u[ENTERPRISE] = json!({"employeeNumber": "42", "department": "HR"});
    e.after_write(&ctx(), ResourceKind::User, WriteOp::Update, &mut u)
        .unwrap();
    assert_eq!(u[ENTERPRISE], json!({"department": "HR"}));
}

#[test]
fn example_department_restriction() {
    let src = include_str!("../../../../examples/scripts/department_restriction.lua");
    let e = loaded(vec![with_props(
        def("department_restriction", 1, src),
        &[("departments", "client-a=HR; client-b = Sales Team")],
    )]);
    let in_dept = |d: &str| {
        let mut u = user();
        u[ENTERPRISE] = json!({"department": d});
        u
    };
    let c = ctx();
    // Searches get the filter.
    assert_eq!(
        e.manage_search(
            &c,
            ResourceKind::User,
            &json!({"filter": "userName sw \"b\""})
        )
        .unwrap(),
        SearchGate::Continue {
            filter_prepend: Some(format!("{ENTERPRISE}:department eq \"HR\""))
        }
    );
    let mut b = ctx();
    b.token.as_mut().unwrap().client_id = "client-b".into();
    assert_eq!(
        e.manage_search(&b, ResourceKind::User, &json!({})).unwrap(),
        SearchGate::Continue {
            filter_prepend: Some(format!("{ENTERPRISE}:department eq \"Sales Team\""))
        }
    );
    // Groups are not restricted.
    let mut g = ctx();
    g.resource_type = "Group".into();
    assert_eq!(
        e.manage_search(&g, ResourceKind::Group, &json!({}))
            .unwrap(),
        SearchGate::Continue {
            filter_prepend: None
        }
    );
    // Single resources: own department passes, others get 403.
    assert_eq!(
        e.manage_resource(&c, ResourceKind::User, &in_dept("HR"), None)
            .unwrap(),
        None
    );
    let r = e
        .manage_resource(&c, ResourceKind::User, &in_dept("Sales Team"), None)
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body.as_ref().unwrap()["schemas"][0],
        scim_proto::messages::ERROR
    );
    assert!(e
        .manage_resource(&b, ResourceKind::User, &in_dept("Sales Team"), None)
        .unwrap()
        .is_none());
    // A replace may not move the user out.
    let mut put = ctx();
    put.method = "PUT".into();
    let r = e
        .manage_resource(
            &put,
            ResourceKind::User,
            &in_dept("HR"),
            Some(&in_dept("Sales Team")),
        )
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 403);
    // Unknown clients are denied; bypass mode is not restricted.
    let mut z = ctx();
    z.token.as_mut().unwrap().client_id = "client-z".into();
    assert!(matches!(
        e.manage_search(&z, ResourceKind::User, &json!({})).unwrap(),
        SearchGate::Respond(r) if r.status == 403
    ));
    let mut bypass = ctx();
    bypass.token = None;
    assert!(e
        .manage_resource(&bypass, ResourceKind::User, &in_dept("Other"), None)
        .unwrap()
        .is_none());
}

#[test]
fn no_script_and_undefined_methods_are_cheap_paths() {
    let e = engine();
    assert!(!e.active());
    let mut v = user();
    e.on_get(&ctx(), ResourceKind::User, &mut v).unwrap();
    // A script that defines only createUser: the others never touch Lua.
    let e = loaded(vec![def(
        "only",
        1,
        "function createUser(u, c) return true end",
    )]);
    assert_eq!(e.loaded()[0].methods, vec!["createUser"]);
    let start = Instant::now();
    for _ in 0..10_000 {
        e.on_get(&ctx(), ResourceKind::User, &mut v).unwrap();
    }
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn deferred_notifications_wait_for_commit() {
    let (port, rx) = listener();
    let e = Engine::new(
        EngineConfig {
            states_per_script: 1,
            notify_allow: vec!["127.0.0.1".into()],
            notify_rate: 0,
            defer_notifications: true,
            ..EngineConfig::default()
        },
        Arc::new(FixedClock),
    );
    let errs = e.load(vec![with_props(
        def(
            "n",
            1,
            r#"function getApiVersion() return 2 end
            function postDeleteUser(u, c) scim.notify(c.url, {id = u.id}) return true end"#,
        ),
        &[("url", &format!("http://127.0.0.1:{port}/d"))],
    )]);
    assert!(errs.is_empty());
    let mut failed = ctx();
    failed.request_id = Some("req-failed".into());
    e.after_write(
        &failed,
        ResourceKind::User,
        WriteOp::Delete,
        &mut json!({"id": "1"}),
    )
    .unwrap();
    e.discard("req-failed");
    e.commit("req-failed"); // nothing left to send
    let mut ok = ctx();
    ok.request_id = Some("req-ok".into());
    e.after_write(
        &ok,
        ResourceKind::User,
        WriteOp::Delete,
        &mut json!({"id": "2"}),
    )
    .unwrap();
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "nothing is sent before the commit"
    );
    e.commit("req-ok");
    let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let body: Value = serde_json::from_str(got.lines().nth(1).unwrap()).unwrap();
    assert_eq!(body, json!({"id": "2"}));
}

/// `cargo test -p scim-hooks --release -- --ignored --nocapture per_call`
#[test]
#[ignore]
fn per_call_overhead() {
    let n = 20_000;
    let time = |label: &str, e: &Engine, f: &dyn Fn(&Engine, &mut Value)| {
        let mut v = bench_user();
        for _ in 0..200 {
            f(e, &mut v);
        }
        let start = Instant::now();
        for _ in 0..n {
            f(e, &mut v);
        }
        let per = start.elapsed() / n;
        println!("{label}: {per:?} per call");
    };
    let get = |e: &Engine, v: &mut Value| e.on_get(&ctx(), ResourceKind::User, v).unwrap();
    let create = |e: &Engine, v: &mut Value| {
        e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, v)
            .unwrap()
    };
    time("no script, on_get", &engine(), &get);
    let trivial = loaded(vec![def(
        "t",
        1,
        "function getApiVersion() return 3 end\nfunction createUser(u, c) return true end\nfunction getUser(u, c) return true end",
    )]);
    time(
        "v1 only script, on_get (undefined method)",
        &loaded(vec![def(
            "t",
            1,
            "function createUser(u, c) return true end",
        )]),
        &get,
    );
    time("trivial v3 getUser", &trivial, &get);
    time("trivial v1 createUser", &trivial, &create);
    let dept = loaded(vec![with_props(
        def(
            "d",
            1,
            include_str!("../../../../examples/scripts/department_restriction.lua"),
        ),
        &[("departments", "client-a=HR")],
    )]);
    let mut u = bench_user();
    u[ENTERPRISE] = json!({"department": "HR"});
    let start = Instant::now();
    for _ in 0..n {
        dept.manage_resource(&ctx(), ResourceKind::User, &u, None)
            .unwrap();
    }
    println!(
        "department manageResourceOperation: {:?} per call",
        start.elapsed() / n
    );
    let start = Instant::now();
    for _ in 0..n {
        dept.manage_search(
            &ctx(),
            ResourceKind::User,
            &json!({"filter": "userName pr"}),
        )
        .unwrap();
    }
    println!(
        "department manageSearchOperation: {:?} per call",
        start.elapsed() / n
    );
}

#[test]
#[ignore]
fn conversion_cost() {
    let env = state::StateEnv {
        clock: Arc::new(FixedClock),
        notify_allow: Arc::new(vec![]),
        memory_limit: 16 << 20,
    };
    let st = state::new_state(
        &def("c", 1, "function createUser(u, c) return true end"),
        &env,
        Duration::from_secs(1),
    )
    .unwrap();
    let u = bench_user();
    let n = 20_000u32;
    let start = Instant::now();
    for _ in 0..n {
        let t = convert::to_lua(&st.lua, &st.marks, &u, false).unwrap();
        std::hint::black_box(t);
    }
    println!("to_lua: {:?}", start.elapsed() / n);
    let start = Instant::now();
    for _ in 0..n {
        let t = st.unmetered(|| convert::to_lua(&st.lua, &st.marks, &u, false).unwrap());
        std::hint::black_box(t);
    }
    println!("to_lua unmetered: {:?}", start.elapsed() / n);
    let t = convert::to_lua(&st.lua, &st.marks, &u, false).unwrap();
    let tt = t.as_table().unwrap().clone();
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(convert::from_lua(&st.marks, &t, Some(&u)).unwrap());
    }
    println!("from_lua: {:?}", start.elapsed() / n);
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(st.unmetered(|| convert::from_lua(&st.marks, &t, Some(&u)).unwrap()));
    }
    println!("from_lua unmetered: {:?}", start.elapsed() / n);
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(st.unmetered(|| st.snapshot(&tt).unwrap()));
    }
    println!("snapshot: {:?}", start.elapsed() / n);
    let snap = st.unmetered(|| st.snapshot(&tt).unwrap());
    let start = Instant::now();
    for _ in 0..n {
        assert!(st.unmetered(|| st.same(&tt, &snap).unwrap()));
    }
    println!("same: {:?}", start.elapsed() / n);
    let f = st.func(methods::Method::CreateUser).unwrap().clone();
    let start = Instant::now();
    for _ in 0..n {
        let r: bool = f.call((t.clone(), st.config.clone())).unwrap();
        std::hint::black_box(r);
    }
    println!("call: {:?}", start.elapsed() / n);
    let start = Instant::now();
    for _ in 0..n {
        let r = st.invoke(
            methods::Method::CreateUser,
            Some(&ctx()),
            Duration::from_millis(50),
            |_, _| Ok(()),
        );
        std::hint::black_box(r.is_some());
    }
    println!("invoke overhead: {:?}", start.elapsed() / n);
    let start = Instant::now();
    for _ in 0..n {
        let t = mlua::LuaSerdeExt::to_value(&st.lua, &u).unwrap();
        std::hint::black_box(t);
    }
    println!("serde to_value: {:?}", start.elapsed() / n);
    let start = Instant::now();
    for _ in 0..n {
        let v: Value = mlua::LuaSerdeExt::from_value(&st.lua, t.clone()).unwrap();
        std::hint::black_box(v);
    }
    println!("serde from_value: {:?}", start.elapsed() / n);
}

#[test]
#[ignore]
fn print_limit_messages() {
    let e = limited(LIMITS);
    for case in [
        "loop",
        "pcall_loop",
        "heap",
        "rep",
        "recursion",
        "cycle",
        "error",
    ] {
        let r = e.before_write(
            &ctx(),
            ResourceKind::User,
            WriteOp::Create,
            &mut json!({"case": case}),
        );
        println!("{case}: {r:?}");
    }
    let r = e.check(&def(
        "syn",
        1,
        "function createUser(u, c)\n  return true\n\nfunction x(",
    ));
    println!("syntax: {r:?}");
}

#[test]
#[ignore]
fn print_globals() {
    let e = loaded(vec![def(
        "g",
        1,
        r#"function createUser(u, c)
            local names = {}
            for k, v in pairs(_G) do table.insert(names, k .. ":" .. type(v)) end
            table.sort(names)
            u.globals = table.concat(names, " ")
            return true
        end"#,
    )]);
    let mut v = json!({});
    e.before_write(&ctx(), ResourceKind::User, WriteOp::Create, &mut v)
        .unwrap();
    println!("{}", v["globals"]);
}
