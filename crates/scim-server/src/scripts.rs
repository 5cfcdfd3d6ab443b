//! Interception scripts: management (the admin API and `scimd scripts …` both
//! come here), validation through the script manager before anything is stored,
//! and the hot reload that makes the stored set the running one in every scimd
//! process on the database (`reload_scripts_if_changed`, polled by
//! `feed::spawn_maintenance`).

use crate::service::{store_error, Service};
use scim_hooks::{ScriptDef, ScriptError, ScriptManager};
use scim_proto::{ScimError, ScimResult};
use scim_store::{ScriptRecord, StoreError};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Longest script name (names appear in URLs, logs and error details).
pub const MAX_SCRIPT_NAME: usize = 64;

/// A manager that accepts every script and runs none: what a server without a
/// script engine uses, so scripts can still be managed.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAllScripts;

impl ScriptManager for AcceptAllScripts {
    fn check(&self, _: &ScriptDef) -> Result<(), ScriptError> {
        Ok(())
    }

    fn load(&self, _: Vec<ScriptDef>) -> Vec<ScriptError> {
        Vec::new()
    }
}

/// What an update changes; `None` keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptChange {
    pub order: Option<i64>,
    pub enabled: Option<bool>,
    pub source: Option<String>,
    /// Replaces the whole map when given.
    pub properties: Option<BTreeMap<String, String>>,
}

/// A script name: 1 to 64 of letters, digits, `_`, `-` and `.`.
pub fn check_script_name(name: &str) -> ScimResult<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SCRIPT_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ScimError::invalid_value(format!(
            "script name '{name}' must be 1 to {MAX_SCRIPT_NAME} letters, digits, '_', '-' or '.'"
        )))
    }
}

fn check_properties(properties: &BTreeMap<String, String>) -> ScimResult<()> {
    if properties.keys().any(|k| k.trim().is_empty()) {
        return Err(ScimError::invalid_value(
            "script property names must not be empty",
        ));
    }
    Ok(())
}

/// The definition the script manager sees.
pub fn script_def(r: &ScriptRecord) -> ScriptDef {
    ScriptDef {
        name: r.name.clone(),
        order: r.order,
        enabled: r.enabled,
        source: r.source.clone(),
        properties: r.properties.clone(),
    }
}

/// A script the manager refused: the client sees its line and message.
fn refused(e: &ScriptError) -> ScimError {
    ScimError::invalid_value(format!("refused: {e}"))
}

fn unknown(name: &str) -> impl Fn(StoreError) -> ScimError + '_ {
    move |e| match e {
        StoreError::NotFound => ScimError::not_found(format!("no script '{name}'")),
        other => store_error(other),
    }
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A script as the admin API lists it (no source).
pub fn script_summary(r: &ScriptRecord) -> Value {
    json!({
        "name": r.name,
        "order": r.order,
        "enabled": r.enabled,
        "properties": r.properties,
        "created": time(r.created),
        "updated": time(r.updated),
        "lastError": r.last_error,
        "lastErrorAt": r.last_error_at.map(time),
    })
}

/// A script as the admin API shows one: the summary and its source.
pub fn script_json(r: &ScriptRecord) -> Value {
    let mut v = script_summary(r);
    v["source"] = json!(r.source);
    v
}

/// An admin API body (`POST` and `PUT /admin/scripts…`): its name, if any, and
/// the values it sets. Wrong JSON shape is invalidSyntax, wrong values
/// invalidValue.
pub fn parse_script_body(body: &Value) -> ScimResult<(Option<String>, ScriptChange)> {
    let obj: &Map<String, Value> = body.as_object().ok_or_else(|| {
        ScimError::invalid_syntax(
            "a script body is a JSON object: name, order, enabled, source, properties",
        )
    })?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["name", "order", "enabled", "source", "properties"].contains(&k.as_str()))
    {
        return Err(ScimError::invalid_syntax(format!(
            "unknown script field '{k}' (name, order, enabled, source, properties)"
        )));
    }
    let wrong = |field: &str, what: &str| {
        ScimError::invalid_value(format!("script field '{field}' must be {what}"))
    };
    let present = |k: &str| obj.get(k).filter(|v| !v.is_null());
    let name = present("name")
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| wrong("name", "a string"))
        })
        .transpose()?;
    let order = present("order")
        .map(|v| v.as_i64().ok_or_else(|| wrong("order", "an integer")))
        .transpose()?;
    let enabled = present("enabled")
        .map(|v| v.as_bool().ok_or_else(|| wrong("enabled", "true or false")))
        .transpose()?;
    let source = present("source")
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| wrong("source", "a string"))
        })
        .transpose()?;
    let properties = present("properties")
        .map(|v| {
            let m = v
                .as_object()
                .ok_or_else(|| wrong("properties", "an object of strings"))?;
            m.iter()
                .map(|(k, v)| {
                    v.as_str()
                        .map(|s| (k.clone(), s.to_string()))
                        .ok_or_else(|| wrong("properties", "an object of strings"))
                })
                .collect::<ScimResult<BTreeMap<_, _>>>()
        })
        .transpose()?;
    Ok((
        name,
        ScriptChange {
            order,
            enabled,
            source,
            properties,
        },
    ))
}

/// `Service::updating` keys (resource ids are UUIDs, so these never collide):
/// one script's read-modify-write, and the reload.
fn script_key(name: &str) -> String {
    format!("script:{}", name.to_lowercase())
}
const RELOAD_KEY: &str = "scripts:reload";

/// Where a script runs when its order is not given.
pub const DEFAULT_SCRIPT_ORDER: i64 = 0;

/// A new script from a name and the values given: the source is required, a
/// script is enabled unless told otherwise.
pub fn new_script_def(name: Option<String>, change: ScriptChange) -> ScimResult<ScriptDef> {
    let name = name.ok_or_else(|| ScimError::invalid_value("a script needs a name"))?;
    let source = change
        .source
        .ok_or_else(|| ScimError::invalid_value(format!("script '{name}' needs its source")))?;
    Ok(ScriptDef {
        name,
        order: change.order.unwrap_or(DEFAULT_SCRIPT_ORDER),
        enabled: change.enabled.unwrap_or(true),
        source,
        properties: change.properties.unwrap_or_default(),
    })
}

impl Service {
    /// Every stored script, in the order they run.
    pub fn list_scripts(&self) -> ScimResult<Vec<ScriptRecord>> {
        self.store.scripts().map_err(store_error)
    }

    pub fn script(&self, name: &str) -> ScimResult<ScriptRecord> {
        self.store.script(name).map_err(unknown(name))
    }

    /// Store a new script once the manager accepts it (compiles, `init` succeeds),
    /// then make the enabled set the running one.
    pub fn add_script(&self, def: ScriptDef) -> ScimResult<ScriptRecord> {
        check_script_name(&def.name)?;
        check_properties(&def.properties)?;
        self.scripts.check(&def).map_err(|e| refused(&e))?;
        let now = self.clock.now();
        let record = ScriptRecord {
            name: def.name,
            order: def.order,
            enabled: def.enabled,
            source: def.source,
            properties: def.properties,
            created: now,
            updated: now,
            last_error: None,
            last_error_at: None,
        };
        self.store.create_script(&record).map_err(|e| match e {
            StoreError::Uniqueness => {
                ScimError::uniqueness(format!("script '{}' already exists", record.name))
            }
            other => store_error(other),
        })?;
        self.reload_scripts()?;
        self.script(&record.name)
    }

    /// Change a script; the result is checked when its source changes or it is
    /// enabled (so disabling, or reordering a disabled script, always works).
    pub fn update_script(&self, name: &str, change: ScriptChange) -> ScimResult<ScriptRecord> {
        // Updates of one script in this process queue rather than lose each other.
        let key = script_key(name);
        let queued = self.updating.lock(&key);
        let mut record = self.script(name)?;
        let new_source = change.source.as_ref().is_some_and(|s| *s != record.source);
        if let Some(p) = &change.properties {
            check_properties(p)?;
        }
        record.order = change.order.unwrap_or(record.order);
        record.enabled = change.enabled.unwrap_or(record.enabled);
        record.source = change.source.unwrap_or(record.source);
        record.properties = change.properties.unwrap_or(record.properties);
        if new_source || record.enabled {
            self.scripts
                .check(&script_def(&record))
                .map_err(|e| refused(&e))?;
        }
        record.updated = self.clock.now();
        self.store.replace_script(&record).map_err(unknown(name))?;
        drop(queued);
        self.reload_scripts()?;
        self.script(name)
    }

    pub fn enable_script(&self, name: &str) -> ScimResult<ScriptRecord> {
        let change = ScriptChange {
            enabled: Some(true),
            ..ScriptChange::default()
        };
        self.update_script(name, change)
    }

    pub fn disable_script(&self, name: &str) -> ScimResult<ScriptRecord> {
        let change = ScriptChange {
            enabled: Some(false),
            ..ScriptChange::default()
        };
        self.update_script(name, change)
    }

    pub fn remove_script(&self, name: &str) -> ScimResult<()> {
        self.store.remove_script(name).map_err(unknown(name))?;
        self.reload_scripts()
    }

    /// Make the stored enabled scripts the running set; a script that fails to
    /// load is left out and its error recorded (shown by `scimd scripts show`).
    pub fn reload_scripts(&self) -> ScimResult<()> {
        // One reload at a time, each listing then loading: the set loaded last is
        // the one listed last (interleaved, an older list could be loaded last).
        let _one = self.updating.lock(RELOAD_KEY);
        let defs: Vec<ScriptDef> = self
            .list_scripts()?
            .iter()
            .filter(|r| r.enabled)
            .map(script_def)
            .collect();
        let loaded = defs.len();
        let errors = self.scripts.load(defs);
        let now = self.clock.now();
        for e in &errors {
            tracing::warn!(target: "scimd::scripts", script = %e.script, line = e.line, error = %e.message, "script not loaded");
            let message = match e.line {
                Some(l) => format!("line {l}: {}", e.message),
                None => e.message.clone(),
            };
            match self.store.record_script_error(&e.script, &message, now) {
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(other) => return Err(store_error(other)),
            }
        }
        tracing::debug!(
            scripts = loaded,
            failed = errors.len(),
            "interception scripts loaded"
        );
        Ok(())
    }

    /// Reload when the stored scripts changed since revision `seen` (always when
    /// `None`); returns the revision now running.
    /// The running scripts' runtime errors newer than those already recorded go to
    /// the store, so `scimd scripts show` in any process shows the last one.
    pub fn record_runtime_errors(
        &self,
        recorded: &mut BTreeMap<String, chrono::DateTime<chrono::Utc>>,
    ) -> ScimResult<()> {
        for (name, message, at) in self.scripts.runtime_errors() {
            if recorded.get(&name).is_some_and(|t| *t >= at) {
                continue;
            }
            match self.store.record_script_error(&name, &message, at) {
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(store_error(e)),
            }
            recorded.insert(name, at);
        }
        Ok(())
    }

    pub fn reload_scripts_if_changed(&self, seen: Option<i64>) -> ScimResult<i64> {
        // Read before loading: a change committed meanwhile shows as a newer
        // revision at the next poll, so none is missed.
        let revision = self.store.scripts_revision().map_err(store_error)?;
        if seen != Some(revision) {
            self.reload_scripts()?;
        }
        Ok(revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerConfig;
    use scim_proto::clock::SystemClock;
    use scim_proto::schema::{RegistryOptions, SchemaRegistry, SharedRegistry};
    use scim_proto::ScimType;
    use scim_store::sqlite::SqliteStore;
    use std::sync::{Arc, Mutex};

    /// Refuses a source containing "syntax error" (line 3, like a compiler);
    /// `load` remembers the names of each set and fails scripts whose source
    /// contains "init fails".
    #[derive(Default)]
    struct Fake {
        loads: Mutex<Vec<Vec<String>>>,
    }

    impl ScriptManager for Fake {
        fn runtime_errors(&self) -> Vec<(String, String, chrono::DateTime<chrono::Utc>)> {
            let at = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
                .map(|t| t.with_timezone(&chrono::Utc))
                .expect("time");
            vec![
                ("keep".into(), "getUser, line 7: boom".into(), at),
                ("gone".into(), "getUser: no such script any more".into(), at),
            ]
        }

        fn check(&self, def: &ScriptDef) -> Result<(), ScriptError> {
            if def.source.contains("syntax error") {
                return Err(ScriptError {
                    script: def.name.clone(),
                    line: Some(3),
                    message: "syntax error near 'end'".into(),
                });
            }
            Ok(())
        }

        fn load(&self, defs: Vec<ScriptDef>) -> Vec<ScriptError> {
            self.loads
                .lock()
                .expect("lock")
                .push(defs.iter().map(|d| d.name.clone()).collect());
            defs.iter()
                .filter(|d| d.source.contains("init fails"))
                .map(|d| ScriptError {
                    script: d.name.clone(),
                    line: None,
                    message: "init returned false".into(),
                })
                .collect()
        }
    }

    fn service(fake: Arc<Fake>) -> (tempfile::TempDir, Service) {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = ServerConfig::default();
        let registry = Arc::new(SharedRegistry::new(SchemaRegistry::build(
            &RegistryOptions {
                devices: config.devices,
                custom: Some((config.custom_schema_urn.clone(), vec![])),
            },
        )));
        let store = SqliteStore::open(&dir.path().join("scim.db"), registry.clone()).expect("open");
        let svc = Service {
            registry,
            store: Arc::new(store),
            clock: Arc::new(SystemClock),
            config,
            updating: Default::default(),
            hooks: Arc::new(scim_hooks::NoHooks),
            scripts: fake,
        };
        (dir, svc)
    }

    fn def(name: &str, order: i64, source: &str) -> ScriptDef {
        ScriptDef {
            name: name.into(),
            order,
            enabled: true,
            source: source.into(),
            properties: [("k".to_string(), "v".to_string())].into(),
        }
    }

    fn last_load(fake: &Fake) -> Vec<String> {
        fake.loads
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn a_refused_script_is_not_stored_and_names_line_and_message() {
        let fake = Arc::new(Fake::default());
        let (_dir, svc) = service(fake.clone());
        let e = svc
            .add_script(def("broken", 1, "function init()\n\n syntax error end"))
            .expect_err("refused");
        assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidValue)));
        assert!(
            e.detail.contains("line 3") && e.detail.contains("syntax error near 'end'"),
            "{}",
            e.detail
        );
        assert!(svc.list_scripts().expect("list").is_empty());
        assert!(
            fake.loads.lock().expect("lock").is_empty(),
            "nothing reloaded"
        );

        // An update to a broken source is refused too, and keeps the old one.
        svc.add_script(def("good", 1, "-- fine")).expect("add");
        let e = svc
            .update_script(
                "good",
                ScriptChange {
                    source: Some("syntax error".into()),
                    ..ScriptChange::default()
                },
            )
            .expect_err("refused");
        assert!(e.detail.contains("line 3"), "{}", e.detail);
        assert_eq!(svc.script("GOOD").expect("get").source, "-- fine");
    }

    #[test]
    fn runtime_errors_reach_the_store_once() {
        let fake = Arc::new(Fake::default());
        let (_dir, svc) = service(fake);
        svc.add_script(def("keep", 1, "-- k")).expect("add");
        let mut recorded = BTreeMap::new();
        svc.record_runtime_errors(&mut recorded).expect("record");
        let got = svc.script("keep").expect("get");
        assert_eq!(got.last_error.as_deref(), Some("getUser, line 7: boom"));
        assert!(got.last_error_at.is_some());
        assert!(recorded.contains_key("keep"));
        assert!(
            svc.script("gone").is_err(),
            "no script is made for an error"
        );
        // Recorded once: a later change clears it and the same error stays cleared.
        svc.update_script(
            "keep",
            ScriptChange {
                source: Some("-- k2".into()),
                ..ScriptChange::default()
            },
        )
        .expect("update");
        svc.record_runtime_errors(&mut recorded).expect("record");
        assert_eq!(svc.script("keep").expect("get").last_error, None);
    }

    #[test]
    fn changes_reload_the_enabled_set_in_order() {
        let fake = Arc::new(Fake::default());
        let (_dir, svc) = service(fake.clone());
        svc.add_script(def("b", 20, "-- b")).expect("add");
        assert_eq!(last_load(&fake), ["b"]);
        svc.add_script(def("a", 10, "-- a")).expect("add");
        assert_eq!(last_load(&fake), ["a", "b"]);
        let e = svc.add_script(def("A", 1, "--")).expect_err("taken");
        assert_eq!((e.status, e.scim_type), (409, Some(ScimType::Uniqueness)));

        let off = svc.disable_script("a").expect("disable");
        assert!(!off.enabled);
        assert_eq!(last_load(&fake), ["b"]);
        svc.enable_script("a").expect("enable");
        assert_eq!(last_load(&fake), ["a", "b"]);
        let moved = svc
            .update_script(
                "b",
                ScriptChange {
                    order: Some(1),
                    properties: Some([("x".to_string(), "y".to_string())].into()),
                    ..ScriptChange::default()
                },
            )
            .expect("update");
        assert_eq!(moved.source, "-- b", "absent fields keep their value");
        assert_eq!(moved.properties.get("x").map(String::as_str), Some("y"));
        assert_eq!(last_load(&fake), ["b", "a"]);
        svc.remove_script("B").expect("remove");
        assert_eq!(last_load(&fake), ["a"]);

        for e in [
            svc.script("nope").expect_err("unknown"),
            svc.enable_script("nope").expect_err("unknown"),
            svc.remove_script("nope").expect_err("unknown"),
        ] {
            assert_eq!(e.status, 404, "{}", e.detail);
        }
        for bad in ["", "has space", "a/b", &"x".repeat(65)] {
            let e = svc.add_script(def(bad, 1, "--")).expect_err("bad name");
            assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidValue)));
        }
    }

    #[test]
    fn load_errors_are_recorded_and_reload_follows_the_revision() {
        let fake = Arc::new(Fake::default());
        let (_dir, svc) = service(fake.clone());
        svc.add_script(def("flaky", 1, "-- init fails"))
            .expect("add");
        let got = svc.script("flaky").expect("get");
        assert_eq!(got.last_error.as_deref(), Some("init returned false"));
        assert!(got.last_error_at.is_some());

        let loads = || fake.loads.lock().expect("lock").len();
        let rev = svc.reload_scripts_if_changed(None).expect("first");
        let before = loads();
        assert_eq!(svc.reload_scripts_if_changed(Some(rev)).expect("same"), rev);
        assert_eq!(loads(), before, "no change, no reload");
        // A change made elsewhere (another process, the CLI) is picked up.
        svc.store.remove_script("flaky").expect("remove");
        let next = svc.reload_scripts_if_changed(Some(rev)).expect("changed");
        assert_ne!(next, rev);
        assert_eq!(loads(), before + 1);
        assert!(last_load(&fake).is_empty());
    }

    #[test]
    fn bodies_are_checked() {
        let (name, change) = parse_script_body(&json!({
            "name": "n", "order": 3, "enabled": false, "source": "--", "properties": {"a": "b"}
        }))
        .expect("parse");
        assert_eq!(name.as_deref(), Some("n"));
        assert_eq!(change.order, Some(3));
        assert_eq!(change.enabled, Some(false));
        let (_, empty) = parse_script_body(&json!({})).expect("parse");
        assert_eq!(empty, ScriptChange::default());
        for (bad, kind) in [
            (json!([]), ScimType::InvalidSyntax),
            (json!({"nmae": "x"}), ScimType::InvalidSyntax),
            (json!({"order": "1"}), ScimType::InvalidValue),
            (json!({"enabled": 1}), ScimType::InvalidValue),
            (json!({"source": 5}), ScimType::InvalidValue),
            (json!({"properties": {"a": 1}}), ScimType::InvalidValue),
            (json!({"properties": "a=b"}), ScimType::InvalidValue),
        ] {
            let e = parse_script_body(&bad).expect_err("bad");
            assert_eq!((e.status, e.scim_type), (400, Some(kind)), "{bad}");
        }
    }
}
