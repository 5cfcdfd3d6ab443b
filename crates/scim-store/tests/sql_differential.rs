//! The filter-to-SQL compiler against the in-memory evaluator, on real SQLite:
//! for random User documents and random filters, the ids SQL selects must be
//! exactly those `scim_proto::filter::matches` accepts. Plus EXPLAIN QUERY PLAN
//! checks that selective filters are answered from an index.

// A test crate: a failed expectation should stop the test loudly.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use rusqlite::{params, params_from_iter, Connection};
use scim_proto::filter::{matches, parse_filter, AttrPath, CompareOp, Filter, Literal};
use scim_proto::schema::{ResourceTypeDef, SchemaRegistry};
use scim_store::dialect::{Postgres, Sqlite};
use scim_store::index::{index_rows, IndexValue};
use scim_store::postgres::ScratchSchema;
use scim_store::sql::{compile_filter, compile_sort, SqlParam};
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::str::FromStr;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Strings chosen to collide under case folding (ASCII and not), to be prefixes,
/// suffixes and substrings of each other, and to contain LIKE metacharacters.
const WORDS: &[&str] = &[
    "alice",
    "Alice",
    "ALICE",
    "al",
    "ice",
    "bob",
    "Bob",
    "École",
    "ÉCOLE",
    "école",
    "éc",
    "ole",
    "STRASSE",
    "straße",
    "Straße",
    "strasse",
    "SSE",
    "ab",
    "abc",
    "abd",
    "a",
    "",
    "zoë",
    "ZOË",
    "ΣΑΣ",
    "σας",
    "Σ",
    "x_y%z",
    "x%",
    "_",
    "İstanbul",
    "i̇stanbul",
    "a@x.org",
    "A@X.ORG",
    "b@y.com",
    "@x.org",
    "ORG",
    "work",
    "Work",
    "home",
    "\u{10FFFF}",
    "a\u{10FFFF}",
];
const TYPES: &[&str] = &["work", "Work", "home", "other", ""];

fn registry() -> SchemaRegistry {
    SchemaRegistry::standard()
}

fn user_rt(reg: &SchemaRegistry) -> ResourceTypeDef {
    reg.resource_type("User")
        .cloned()
        .expect("User resource type")
}

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(WORDS).prop_map(str::to_string)
}

fn opt<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop::option::weighted(0.7, s)
}

/// Instants a few seconds apart, with microsecond fractions (as the store writes them).
fn base_time(k: u32) -> chrono::DateTime<chrono::Utc> {
    let start = chrono::DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
        .expect("constant")
        .with_timezone(&chrono::Utc);
    start + chrono::Duration::microseconds(i64::from(k) * 250_000)
}

fn email() -> impl Strategy<Value = Option<Value>> {
    (
        opt(word()),
        opt(prop::sample::select(TYPES)),
        opt(any::<bool>()),
        opt(word()),
    )
        .prop_map(|(value, ty, primary, display)| {
            let mut m = Map::new();
            if let Some(v) = value {
                m.insert("value".into(), json!(v));
            }
            if let Some(d) = display {
                m.insert("display".into(), json!(d));
            }
            if let Some(t) = ty {
                m.insert("type".into(), json!(t));
            }
            if let Some(p) = primary {
                m.insert("primary".into(), json!(p));
            }
            // Canonical documents never hold empty objects.
            (!m.is_empty()).then_some(Value::Object(m))
        })
}

fn user() -> impl Strategy<Value = Value> {
    (
        (word(), opt(word()), opt(word()), opt(word()), opt(word())),
        (opt(any::<bool>()), prop::collection::vec(email(), 0..4)),
        (opt(word()), opt(word()), 0u32..8, 0u32..8),
    )
        .prop_map(
            |((user_name, display, nick, given, family), (active, emails), (ext, emp, c, m))| {
                let mut d = Map::new();
                d.insert("userName".into(), json!(user_name));
                let mut name = Map::new();
                if let Some(g) = given {
                    name.insert("givenName".into(), json!(g));
                }
                if let Some(f) = family {
                    name.insert("familyName".into(), json!(f));
                }
                if !name.is_empty() {
                    d.insert("name".into(), Value::Object(name));
                }
                if let Some(v) = display {
                    d.insert("displayName".into(), json!(v));
                }
                if let Some(v) = nick {
                    d.insert("nickName".into(), json!(v));
                }
                if let Some(v) = active {
                    d.insert("active".into(), json!(v));
                }
                let emails: Vec<Value> = emails.into_iter().flatten().collect();
                if !emails.is_empty() {
                    d.insert("emails".into(), Value::Array(emails));
                }
                if let Some(v) = ext {
                    d.insert("externalId".into(), json!(v));
                }
                if let Some(v) = emp {
                    d.insert(ENTERPRISE.into(), json!({ "employeeNumber": v }));
                }
                d.insert(
                    "meta".into(),
                    json!({
                        "resourceType": "User",
                        "created": scim_store::db_time(base_time(c)),
                        "lastModified": scim_store::db_time(base_time(c + m)),
                    }),
                );
                Value::Object(d)
            },
        )
}

fn path(s: &str) -> AttrPath {
    let (urn, rest) = match s.rfind(':') {
        Some(i) => (Some(s[..i].to_string()), &s[i + 1..]),
        None => (None, s),
    };
    let (attr, sub) = match rest.split_once('.') {
        Some((a, b)) => (a.to_string(), Some(b.to_string())),
        None => (rest.to_string(), None),
    };
    AttrPath {
        urn,
        attr,
        sub_attr: sub,
    }
}

const STRING_PATHS: &[&str] = &[
    "userName",
    "USERNAME",
    "displayName",
    "nickName",
    "name.givenName",
    "name.familyName",
    "emails",
    "emails.value",
    "emails.type",
    "emails.display",
    "externalId",
    "id",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:EMPLOYEENUMBER",
    "urn:ietf:params:scim:schemas:core:2.0:User:userName",
];
const ANY_PATHS: &[&str] = &[
    "userName",
    "displayName",
    "nickName",
    "name",
    "name.givenName",
    "emails",
    "emails.value",
    "emails.type",
    "emails.primary",
    "active",
    "externalId",
    "id",
    "meta",
    "meta.created",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
];
const ALL_OPS: &[CompareOp] = &[
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
const ORDER_OPS: &[CompareOp] = &[
    CompareOp::Eq,
    CompareOp::Ne,
    CompareOp::Gt,
    CompareOp::Lt,
    CompareOp::Ge,
    CompareOp::Le,
];

/// A string literal: a word, or one with its case changed.
fn string_literal() -> impl Strategy<Value = Literal> {
    (word(), 0u8..4).prop_map(|(w, how)| {
        Literal::String(match how {
            0 => w.to_uppercase(),
            1 => w.to_lowercase(),
            _ => w,
        })
    })
}

/// A dateTime near the documents' times: equal, or off by less than a microsecond,
/// and written with or without an offset.
fn time_literal() -> impl Strategy<Value = Literal> {
    (
        0u32..16,
        prop::sample::select(&[-1000i64, -500, -1, 0, 0, 1, 500, 1000][..]),
        any::<bool>(),
    )
        .prop_map(|(k, nanos, offset)| {
            let t = base_time(k) + chrono::Duration::nanoseconds(nanos);
            let s = if offset {
                let tz = chrono::FixedOffset::east_opt(3600).expect("constant");
                t.with_timezone(&tz)
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, false)
            } else {
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            };
            Literal::String(s)
        })
}

fn compare(p: &str, op: CompareOp, value: Literal) -> Filter {
    Filter::Compare {
        path: path(p),
        op,
        value,
    }
}

fn leaf() -> impl Strategy<Value = Filter> {
    prop_oneof![
        6 => (prop::sample::select(STRING_PATHS), prop::sample::select(ALL_OPS), string_literal())
            .prop_map(|(p, op, v)| compare(p, op, v)),
        1 => (prop::sample::select(&["active", "emails.primary"][..]),
              prop::sample::select(&[CompareOp::Eq, CompareOp::Ne][..]), any::<bool>())
            .prop_map(|(p, op, b)| compare(p, op, Literal::Bool(b))),
        1 => (prop::sample::select(ANY_PATHS), prop::sample::select(&[CompareOp::Eq, CompareOp::Ne][..]))
            .prop_map(|(p, op)| compare(p, op, Literal::Null)),
        2 => prop::sample::select(ANY_PATHS).prop_map(|p| Filter::Present(path(p))),
        2 => (prop::sample::select(&["meta.created", "meta.lastModified"][..]),
              prop::sample::select(ORDER_OPS), time_literal())
            .prop_map(|(p, op, v)| compare(p, op, v)),
        1 => (prop::sample::select(&["meta.resourceType"][..]),
              prop::sample::select(ALL_OPS),
              prop::sample::select(&["User", "user", "Us", "Group"][..]))
            .prop_map(|(p, op, v)| compare(p, op, Literal::String(v.to_string()))),
        3 => value_path(),
    ]
}

fn element_leaf(subs: &'static [&'static str]) -> impl Strategy<Value = Filter> {
    prop_oneof![
        4 => (prop::sample::select(subs), prop::sample::select(ALL_OPS), string_literal())
            .prop_map(|(p, op, v)| compare(p, op, v)),
        1 => (prop::sample::select(subs), prop::sample::select(&[CompareOp::Eq, CompareOp::Ne][..]))
            .prop_map(|(p, op)| compare(p, op, Literal::Null)),
        1 => prop::sample::select(subs).prop_map(|p| Filter::Present(path(p))),
    ]
}

fn combine(inner: BoxedStrategy<Filter>) -> BoxedStrategy<Filter> {
    prop_oneof![
        (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
        (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
        inner.prop_map(|a| Filter::Not(Box::new(a))),
    ]
    .boxed()
}

fn value_path() -> impl Strategy<Value = Filter> {
    let email_inner = prop_oneof![
        element_leaf(&["value", "type", "display"]).boxed(),
        (
            prop::sample::select(&[CompareOp::Eq, CompareOp::Ne][..]),
            any::<bool>()
        )
            .prop_map(|(op, b)| compare("primary", op, Literal::Bool(b)))
            .boxed(),
    ]
    .boxed()
    .prop_recursive(2, 6, 2, combine);
    let name_inner = element_leaf(&["givenName", "familyName"])
        .boxed()
        .prop_recursive(2, 6, 2, combine);
    prop_oneof![
        3 => email_inner.prop_map(|f| Filter::ValuePath { path: path("emails"), filter: Box::new(f) }),
        1 => name_inner.prop_map(|f| Filter::ValuePath { path: path("name"), filter: Box::new(f) }),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    leaf().boxed().prop_recursive(3, 12, 2, combine)
}

fn to_sql(p: &SqlParam) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match p {
        SqlParam::Text(t) => V::Text(t.clone()),
        SqlParam::Num(n) => V::Real(*n),
        SqlParam::Bool(b) => V::Integer(i64::from(*b)),
        SqlParam::Int(i) => V::Integer(*i),
    }
}

/// Where a test database lives: SQLite in memory, or a scratch PostgreSQL schema
/// shared by every case of one test (emptied before each).
enum Engine<'c> {
    Sqlite(Connection),
    Postgres(&'c RefCell<postgres::Client>),
}

struct Db<'c> {
    engine: Engine<'c>,
    reg: SchemaRegistry,
    rt: ResourceTypeDef,
    docs: Vec<Value>,
}

impl Db<'static> {
    fn new(docs: Vec<Value>) -> Db<'static> {
        let conn = Connection::open_in_memory().expect("open");
        for step in scim_store::ddl::SQLITE_MIGRATIONS {
            conn.execute_batch(step).expect("migrate");
        }
        Db::load(Engine::Sqlite(conn), docs)
    }
}

impl<'c> Db<'c> {
    /// `docs` in the (emptied) schema of `client`.
    fn postgres(client: &'c RefCell<postgres::Client>, docs: Vec<Value>) -> Db<'c> {
        client
            .borrow_mut()
            .batch_execute("TRUNCATE resources, attr_index")
            .expect("truncate");
        Db::load(Engine::Postgres(client), docs)
    }

    fn load(engine: Engine<'c>, docs: Vec<Value>) -> Db<'c> {
        let reg = registry();
        let rt = user_rt(&reg);
        let mut db = Db {
            engine,
            reg,
            rt,
            docs: Vec::new(),
        };
        for (n, mut doc) in docs.into_iter().enumerate() {
            // Ids differ only in case between some resources, to check that `id`
            // is compared exactly.
            let id = if n % 2 == 0 {
                format!("id{n}")
            } else {
                format!("ID{n}")
            };
            doc["id"] = json!(id);
            doc["meta"]["resourceType"] = json!("User");
            db.insert(&doc);
            db.docs.push(doc);
        }
        match &db.engine {
            Engine::Sqlite(conn) => {
                // The rows were written here, not by the store's writer, which
                // queues each one for the trigram index itself.
                conn.execute_batch(
                    "INSERT INTO trigram_queue (id, added)
                     SELECT id, 1 FROM attr_index WHERE length(v_text) >= 3",
                )
                .expect("queue");
                scim_store::sqlite::flush_trigrams(conn).expect("trigrams");
            }
            Engine::Postgres(c) => c.borrow_mut().batch_execute("ANALYZE").expect("analyze"),
        }
        db
    }

    fn insert(&self, doc: &Value) {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let id = text(&doc["id"]);
        let (created, modified) = (
            text(&doc["meta"]["created"]),
            text(&doc["meta"]["lastModified"]),
        );
        const RESOURCE: [&str; 2] = [
            "INSERT INTO resources (id, rtype, doc, version, created, modified)
             VALUES (?1, 'User', ?2, 1, ?3, ?4)",
            "INSERT INTO resources (id, rtype, doc, version, created, modified)
             VALUES ($1, 'User', $2, 1, $3, $4)",
        ];
        const ROW: [&str; 2] = [
            "INSERT INTO attr_index (res_id, rtype, path, elem, v_text, v_num, v_bool)
             VALUES (?1, 'User', ?2, ?3, ?4, ?5, ?6)",
            "INSERT INTO attr_index (res_id, rtype, path, elem, v_text, v_num, v_bool)
             VALUES ($1, 'User', $2, $3, $4, $5, $6)",
        ];
        let rows = index_rows(&self.reg, &self.rt, doc);
        let split = |v: &IndexValue| match v {
            IndexValue::Text(t) => (Some(t.clone()), None, None),
            IndexValue::Num(n) => (None, Some(*n), None),
            IndexValue::Bool(b) => (None, None, Some(*b)),
        };
        match &self.engine {
            Engine::Sqlite(conn) => {
                conn.execute(RESOURCE[0], params![id, doc.to_string(), created, modified])
                    .expect("insert resource");
                for row in &rows {
                    let (t, n, b) = split(&row.value);
                    conn.execute(ROW[0], params![id, row.path, row.elem, t, n, b])
                        .expect("insert index row");
                }
            }
            Engine::Postgres(c) => {
                let mut c = c.borrow_mut();
                c.execute(RESOURCE[1], &[&id, &doc.to_string(), &created, &modified])
                    .expect("insert resource");
                for row in &rows {
                    let (t, n, b) = split(&row.value);
                    c.execute(ROW[1], &[&id, &row.path, &row.elem, &t, &n, &b])
                        .expect("insert index row");
                }
            }
        }
    }

    fn sql_ids(&self, f: &Filter) -> Result<BTreeSet<String>, String> {
        let (sql, all) = self.select(f, "SELECT r.id")?;
        match &self.engine {
            Engine::Sqlite(conn) => {
                let mut stmt = conn.prepare(&sql).map_err(|e| format!("{e}: {sql}"))?;
                let rows = stmt
                    .query_map(params_from_iter(all.iter().map(to_sql)), |r| {
                        r.get::<_, String>(0)
                    })
                    .map_err(|e| format!("{e}: {sql}"))?;
                rows.collect::<Result<_, _>>()
                    .map_err(|e| format!("{e}: {sql}"))
            }
            Engine::Postgres(c) => {
                let bound: Vec<Box<dyn postgres::types::ToSql + Sync>> =
                    all.iter().map(to_pg).collect();
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    bound.iter().map(|b| b.as_ref()).collect();
                let rows = c
                    .borrow_mut()
                    .query(&sql, &refs)
                    .map_err(|e| format!("{e}: {sql}"))?;
                Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
            }
        }
    }

    /// `what` over the resources `f` selects, with its parameters.
    fn select(&self, f: &Filter, what: &str) -> Result<(String, Vec<SqlParam>), String> {
        let (frag, rtype) = match &self.engine {
            Engine::Sqlite(_) => (compile_filter(&Sqlite, &self.reg, &self.rt, f, 2), "?1"),
            Engine::Postgres(_) => (
                compile_filter(&Postgres, &self.reg, &self.rt, f, 2),
                "$1::text",
            ),
        };
        let frag = frag.map_err(|e| e.to_string())?;
        let sql = format!(
            "{what} FROM resources r WHERE r.rtype = {rtype} AND ({})",
            frag.sql
        );
        let mut all = vec![SqlParam::Text("User".into())];
        all.extend(frag.params);
        Ok((sql, all))
    }

    fn eval_ids(&self, f: &Filter) -> BTreeSet<String> {
        self.docs
            .iter()
            .filter(|d| matches(f, d, &self.reg, &self.rt))
            .map(|d| d["id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn check(&self, f: &Filter) -> Result<(), TestCaseError> {
        let sql = self
            .sql_ids(f)
            .map_err(|e| TestCaseError::fail(format!("{f}: {e}")))?;
        let eval = self.eval_ids(f);
        if std::env::var_os("SQL_DIFF_STATS").is_some() {
            eprintln!("STAT {} {}", eval.len(), self.docs.len());
        }
        prop_assert_eq!(sql, eval, "filter: {}", f);
        Ok(())
    }

    /// SQLite's plan for `filter`.
    fn plan(&self, filter: &str) -> String {
        let f = parse_filter(filter).expect("parse");
        let (sql, all) = self
            .select(&f, "EXPLAIN QUERY PLAN SELECT r.id")
            .expect("compile");
        let Engine::Sqlite(conn) = &self.engine else {
            panic!("plans are SQLite's")
        };
        let mut stmt = conn.prepare(&sql).expect("prepare");
        let rows = stmt
            .query_map(params_from_iter(all.iter().map(to_sql)), |r| {
                r.get::<_, String>(3)
            })
            .expect("explain");
        rows.map(|r| r.expect("row")).collect::<Vec<_>>().join("\n")
    }

    fn sqlite(&self) -> &Connection {
        match &self.engine {
            Engine::Sqlite(conn) => conn,
            Engine::Postgres(_) => panic!("not SQLite"),
        }
    }
}

fn to_pg(p: &SqlParam) -> Box<dyn postgres::types::ToSql + Sync> {
    match p {
        SqlParam::Text(t) => Box::new(t.clone()),
        SqlParam::Num(n) => Box::new(*n),
        SqlParam::Bool(b) => Box::new(*b),
        SqlParam::Int(i) => Box::new(*i),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn sql_selects_what_the_evaluator_matches(
        docs in prop::collection::vec(user(), 1..50),
        filters in prop::collection::vec(filter(), 20),
    ) {
        let db = Db::new(docs);
        for f in &filters {
            db.check(f)?;
        }
    }
}

/// The same property on PostgreSQL (its own SQL: `LIKE` on the trigram index,
/// `strpos`, `COLLATE "C"` ranges), in one scratch schema emptied per case.
#[test]
fn sql_selects_what_the_evaluator_matches_on_postgres() {
    let Some(schema) = ScratchSchema::for_tests("sql_diff") else {
        return;
    };
    let mut client = postgres::Config::from_str(&schema.url)
        .and_then(|c| c.connect(postgres::NoTls))
        .expect("connect");
    scim_store::postgres::migrate(&mut client).expect("migrate");
    let client = RefCell::new(client);
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    let cases = (
        prop::collection::vec(user(), 1..50),
        prop::collection::vec(filter(), 20),
    );
    let outcome = runner.run(&cases, |(docs, filters)| {
        let db = Db::postgres(&client, docs);
        for f in &filters {
            db.check(f)?;
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

fn fixed_db() -> Db<'static> {
    let docs = vec![
        json!({"userName": "ÉCOLE", "emails": [{"value": "a@x.org", "type": "work"}, {"value": "b@y.com", "type": "home", "primary": true}],
               "meta": {"created": "2024-05-01T10:00:00.000000Z", "lastModified": "2024-05-01T10:00:00.000000Z"}}),
        json!({"userName": "straße", "name": {"givenName": ""}, "emails": [{"value": "", "type": "work"}], "active": false,
               "meta": {"created": "2024-05-01T10:00:01.000000Z", "lastModified": "2024-05-01T10:00:02.000000Z"}}),
        json!({"userName": "x_y%z", "externalId": "Ext", ENTERPRISE: {"employeeNumber": "007"}, "active": true,
               "meta": {"created": "2024-05-01T10:00:02.000001Z", "lastModified": "2024-05-01T10:00:03.000000Z"}}),
    ];
    Db::new(docs)
}

#[test]
fn hand_written_filters_agree() {
    let db = fixed_db();
    let cases = [
        r#"userName eq "école""#,
        r#"userName sw "ÉC""#,
        r#"userName co "%""#,
        r#"userName ew "_Y%Z""#,
        r#"userName gt "x""#,
        r#"emails[type eq "work" and value co "@"]"#,
        r#"emails[type eq "home" and value ew ".org"]"#,
        r#"emails[not (value pr)]"#,
        r#"emails[type eq "work"] and not (emails[value eq ""])"#,
        r#"emails.value pr"#,
        r#"emails pr"#,
        r#"name pr"#,
        r#"name.givenName pr"#,
        r#"name.givenName eq """#,
        r#"emails eq "A@X.ORG""#,
        r#"emails.primary eq true"#,
        r#"active ne true"#,
        r#"active eq null"#,
        r#"externalId eq "ext""#,
        r#"externalId eq "Ext""#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber sw "00""#,
        r#"meta.created gt "2024-05-01T10:00:02Z""#,
        r#"meta.created ge "2024-05-01T10:00:02.0000005Z""#,
        r#"meta.created le "2024-05-01T11:00:01+01:00""#,
        r#"meta.created eq "2024-05-01T10:00:02.0000010Z""#,
        r#"meta.lastModified lt "2024-05-01T10:00:02.000000001Z""#,
        r#"meta.resourceType eq "User""#,
        r#"meta pr"#,
        r#"id eq "id0" or id eq "ID1""#,
        r#"userName sw """#,
        r#"userName ew """#,
        r#"userName co """#,
    ];
    for c in cases {
        let f = parse_filter(c).expect(c);
        if let Err(e) = db.check(&f) {
            panic!("{c}: {e}");
        }
    }
}

#[test]
fn invalid_filters_are_rejected_like_the_evaluator() {
    let db = fixed_db();
    for c in [
        r#"active gt true"#,
        r#"nope eq "x""#,
        r#"name eq "x""#,
        r#"emails[value[type eq "x"]]"#,
        r#"userName co null"#,
    ] {
        let err = match parse_filter(c) {
            Ok(f) => compile_filter(&Sqlite, &db.reg, &db.rt, &f, 1).err(),
            Err(e) => Some(e),
        };
        let err = err.unwrap_or_else(|| panic!("{c} accepted"));
        assert_eq!(err.status, 400, "{c}");
        assert_eq!(
            err.scim_type.map(|t| t.as_str()),
            Some("invalidFilter"),
            "{c}"
        );
    }
}

#[test]
fn sort_takes_the_primary_element() {
    let db = fixed_db();
    let frag = compile_sort(&Sqlite, &db.reg, &db.rt, &path("emails"), 1).expect("sort");
    let sql = format!(
        "SELECT r.id FROM resources r ORDER BY ({s}) IS NULL, {s}, r.id",
        s = frag.sql
    );
    let mut stmt = db.sqlite().prepare(&sql).expect("prepare");
    let ids: Vec<String> = stmt
        .query_map(params_from_iter(frag.params.iter().map(to_sql)), |r| {
            r.get(0)
        })
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    // id0's primary email is b@y.com, id1's only email is "": "" < "b@y.com"; id2 has none.
    assert_eq!(ids, vec!["ID1", "id0", "id2"]);
}

/// Many resources so the planner's choice is the one production sees.
fn big_db() -> Db<'static> {
    let docs = (0..300)
        .map(|n| {
            json!({
                "userName": format!("user{n}"),
                "emails": [{"value": format!("u{n}@x.org"), "type": "work"}],
                "meta": {"created": "2024-05-01T10:00:00.000000Z", "lastModified": "2024-05-01T10:00:00.000000Z"}
            })
        })
        .collect();
    let db = Db::new(docs);
    db.sqlite().execute_batch("ANALYZE").expect("analyze");
    db
}

fn assert_uses_index(plan: &str, filter: &str) {
    println!("{filter}:\n{plan}\n");
    assert!(
        plan.contains("USING INDEX attr_index_text")
            || plan.contains("USING COVERING INDEX attr_index_text"),
        "{filter}: {plan}"
    );
    assert!(!plan.contains("SCAN i"), "{filter}: {plan}");
    assert!(!plan.contains("SCAN attr_index"), "{filter}: {plan}");
}

const SELECTIVE: &[&str] = &[
    r#"userName eq "user7""#,
    r#"emails.value eq "u7@x.org""#,
    r#"userName sw "ab""#,
    r#"emails[value eq "u7@x.org" and type eq "work"]"#,
];

#[test]
fn selective_filters_search_the_index() {
    for db in [fixed_db(), big_db()] {
        for f in SELECTIVE {
            assert_uses_index(&db.plan(f), f);
        }
    }
}

/// With statistics (ANALYZE; without them SQLite 3.46 guesses that `rtype = ?` is
/// selective and walks the type's resources, probing the subquery's result set)
/// the matching ids drive primary-key lookups of `resources`
/// instead of a walk over every resource of the type.
#[test]
fn with_statistics_resources_are_fetched_by_primary_key() {
    let db = big_db();
    for f in SELECTIVE {
        let plan = db.plan(f);
        assert!(
            plan.contains("SEARCH r USING INDEX sqlite_autoindex_resources_1 (id=?)"),
            "{f}: {plan}"
        );
    }
    let f = r#"userName eq "a" or emails.value eq "b""#;
    let plan = db.plan(f);
    println!("{f}:\n{plan}\n");
    assert!(plan.contains("MULTI-INDEX OR"), "{f}: {plan}");
}

/// A page sorted by a required attribute (userName) walks the value index in
/// order and stops after offset + count rows, instead of sorting every resource.
#[test]
fn sorted_pages_walk_the_index_in_order() {
    let db = big_db();
    for order in [
        scim_store::SortOrder::Ascending,
        scim_store::SortOrder::Descending,
    ] {
        let q = scim_store::Query {
            sort_by: Some(AttrPath::simple("userName")),
            sort_order: order.clone(),
            start_index: 101,
            count: 100,
            ..scim_store::Query::default()
        };
        let s = scim_store::sql::search_sql(&Sqlite, &db.reg, &db.rt, &q, None).expect("sql");
        let page_sql = s.page_sql.expect("page");
        let mut stmt = db
            .sqlite()
            .prepare(&format!("EXPLAIN QUERY PLAN {page_sql}"))
            .expect("prepare");
        let plan = stmt
            .query_map(params_from_iter(s.params.iter().map(to_sql)), |r| {
                r.get::<_, String>(3)
            })
            .expect("explain")
            .map(|r| r.expect("row"))
            .collect::<Vec<_>>()
            .join("\n");
        println!("{order:?}:\n{plan}\n");
        assert!(
            plan.contains("SEARCH s USING INDEX attr_index_text")
                || plan.contains("SEARCH s USING COVERING INDEX attr_index_text"),
            "{plan}"
        );
        // The page's ids come from the index walk without a sort; only the page
        // itself (count rows, after `SCAN p`) is put back in order.
        let walk = plan.split("SCAN p").next().unwrap_or_default();
        assert!(!walk.contains("TEMP B-TREE"), "no sort of all rows: {plan}");
        assert!(plan.contains("COVERING INDEX attr_index_text"), "{plan}");
        // And the page is the right one.
        let mut stmt = db.sqlite().prepare(&page_sql).expect("prepare");
        let names: Vec<String> = stmt
            .query_map(params_from_iter(s.params.iter().map(to_sql)), |r| {
                r.get::<_, String>(1)
            })
            .expect("query")
            .map(|r| {
                let doc: Value = serde_json::from_str(&r.expect("row")).expect("json");
                doc["userName"].as_str().unwrap_or_default().to_string()
            })
            .collect();
        let mut all: Vec<String> = (0..300).map(|n| format!("user{n}")).collect();
        all.sort();
        if order == scim_store::SortOrder::Descending {
            all.reverse();
        }
        assert_eq!(names, all[100..200].to_vec());
    }
}

/// `co` and `ew` with a needle of three characters or more take their candidate
/// rows from the trigram index, by id, not from a scan of the attribute's values;
/// a shorter needle scans only the attribute's slice of the covering text index.
#[test]
fn substring_filters_use_the_trigram_index() {
    let db = big_db();
    for f in [
        r#"emails.value co "7@x""#,
        r#"userName ew "r17""#,
        r#"emails[value co "17@" and type eq "work"]"#,
        r#"userName co "ser1" and emails.value co "@x.o""#,
    ] {
        let plan = db.plan(f);
        println!("{f}:\n{plan}\n");
        assert!(plan.contains("attr_trigrams VIRTUAL TABLE"), "{f}: {plan}");
        assert!(
            plan.contains("INTEGER PRIMARY KEY (rowid=?)"),
            "{f}: {plan}"
        );
        assert!(!plan.contains("(rtype=? AND path=?)"), "{f}: {plan}");
    }
    let f = r#"emails.value co "7@""#;
    let plan = db.plan(f);
    println!("{f}:\n{plan}\n");
    assert!(
        plan.contains("USING COVERING INDEX attr_index_text (rtype=? AND path=?)"),
        "{plan}"
    );
    assert!(!plan.contains("attr_trigrams"), "{plan}");
}
