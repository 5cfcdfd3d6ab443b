//! Users and groups: searched and paged through the service's indexed search
//! (never "list all"), created, edited and deleted through the service, so
//! validation, interception scripts, the change feed and the audit trail apply
//! as for the API.

use crate::pages::{csrf, error_box, failed, layout, ok, quoted};
use crate::session::Admin;
use crate::{see, Page, Shared, Visit};
use axum::extract::{Form, Path, Query, State};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use scim_proto::messages::{SearchRequest, PATCH_OP};
use scim_proto::schema::custom::{CustomAttribute, CustomType};
use scim_proto::schema::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};
use scim_proto::ScimError;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Rows per page of a list.
const PAGE: u64 = 25;
/// Members per page of a group.
const MEMBERS_PAGE: usize = 50;

type Fields = HashMap<String, String>;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/ui/users", get(users).post(create_user))
        .route("/ui/users/new", get(new_user))
        .route("/ui/users/{id}", get(user).post(save_user))
        .route("/ui/users/{id}/active", post(set_active))
        .route("/ui/users/{id}/password", post(set_password))
        .route(
            "/ui/users/{id}/delete",
            get(confirm_user_delete).post(delete_user),
        )
        .route(
            "/ui/users/{id}/devices/{kind}/{device}/delete",
            post(remove_device),
        )
        .route("/ui/groups", get(groups).post(create_group))
        .route("/ui/groups/{id}", get(group).post(rename_group))
        .route("/ui/groups/{id}/members", post(add_member))
        .route("/ui/groups/{id}/members/remove", post(remove_member))
        .route(
            "/ui/groups/{id}/delete",
            get(confirm_group_delete).post(delete_group),
        )
}

/// A search box's text as a SCIM filter: a filter as typed when it looks like
/// one (`userName eq "x"`, `emails[type eq "work"]`), else a match on names
/// and emails.
fn filter_of(q: &str, plain: impl Fn(&str) -> String) -> Option<String> {
    let q = q.trim();
    if q.is_empty() {
        return None;
    }
    let ops = [
        " eq ", " ne ", " co ", " sw ", " ew ", " gt ", " ge ", " lt ", " le ", " pr",
    ];
    let lower = q.to_ascii_lowercase();
    if q.contains('[') || ops.iter().any(|op| lower.contains(op)) {
        Some(q.to_string())
    } else {
        Some(plain(&quoted(q)))
    }
}

fn user_filter(q: &str) -> Option<String> {
    filter_of(q, |v| {
        format!("userName sw {v} or displayName co {v} or emails co {v}")
    })
}

fn group_filter(q: &str) -> Option<String> {
    filter_of(q, |v| format!("displayName co {v}"))
}

/// One page of a search, as the service answers it, with only `attributes`.
pub(crate) async fn search(
    c: &Shared,
    endpoint: &str,
    req: SearchRequest,
    attributes: &'static str,
) -> Result<Value, ScimError> {
    let rt = c
        .service
        .resource_type(endpoint)
        .ok_or_else(|| ScimError::internal("no such type"))?;
    c.call(move |s| {
        let mut ctx = s.local_ctx();
        ctx.projection = scim_proto::project::Projection::parse(Some(attributes), None)?;
        let q = s.prepare_search(&rt, &req, &ctx)?;
        s.search(&q, &ctx)
    })
    .await
}

fn start_of(q: &Fields) -> u64 {
    q.get("start")
        .and_then(|s| s.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

/// Previous / next links of a paged list.
fn pager(base: &str, start: u64, shown: u64, total: u64, size: u64) -> Markup {
    let sep = if base.contains('?') { '&' } else { '?' };
    html! {
        nav.pager aria-label="Pages" {
            span { (start.min(total)) "–" ((start + shown).saturating_sub(1)) " of " (total) }
            @if start > 1 {
                a href=(format!("{base}{sep}start={}", start.saturating_sub(size).max(1))) { "Previous" }
            }
            @if start + shown <= total && shown > 0 {
                a href=(format!("{base}{sep}start={}", start + shown)) { "Next" }
            }
        }
    }
}

/// The custom user attributes (Gluu's extension) the user form shows.
struct Custom {
    urn: String,
    attrs: Vec<CustomAttribute>,
}

async fn custom_of(c: &Shared) -> Custom {
    let attrs = c.call(|s| s.custom_attributes()).await.unwrap_or_default();
    Custom {
        urn: c.service.config.custom_schema_urn.clone(),
        attrs,
    }
}

/// A custom attribute's value as the form shows it (several joined by commas).
fn shown_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(shown_value).collect::<Vec<_>>().join(", "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A form value as the attribute's JSON: numbers and booleans typed when they
/// parse (else sent as typed, for the schema's own message), several split at commas.
fn typed_value(a: &CustomAttribute, text: &str) -> Value {
    let one = |t: &str| match a.kind {
        CustomType::Numeric => match (t.parse::<i64>(), t.parse::<f64>()) {
            (Ok(n), _) => json!(n),
            (_, Ok(n)) => serde_json::Number::from_f64(n).map_or_else(|| json!(t), Value::Number),
            _ => json!(t),
        },
        CustomType::Boolean => match t {
            "true" => json!(true),
            "false" => json!(false),
            other => json!(other),
        },
        CustomType::String | CustomType::Date => json!(t),
    };
    if a.multi_valued {
        Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(one)
                .collect(),
        )
    } else {
        one(text.trim())
    }
}

fn custom_fields(u: &Value, custom: &Custom) -> Markup {
    html! {
        @if !custom.attrs.is_empty() {
            fieldset {
                legend { "Custom attributes" }
                @for a in &custom.attrs {
                    @let name = format!("custom.{}", a.name);
                    @let value = shown_value(&u[custom.urn.as_str()][a.name.as_str()]);
                    label {
                        (a.name) " (" (a.kind.as_str()) @if a.multi_valued { ", several separated by commas" } ")"
                        @match (a.kind, a.multi_valued) {
                            (CustomType::Boolean, false) => select name=(name) {
                                option value="" selected[value.is_empty()] { "—" }
                                option value="true" selected[value == "true"] { "true" }
                                option value="false" selected[value == "false"] { "false" }
                            },
                            _ => input name=(name) value=(value);,
                        }
                    }
                }
            }
        }
    }
}

/// Put the form's custom attribute values into `doc` (empty ones removed).
fn apply_custom(doc: &mut Value, f: &Fields, custom: &Custom) {
    let Some(o) = doc.as_object_mut() else { return };
    let mut ext = o
        .get(&custom.urn)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for a in &custom.attrs {
        let text = f
            .get(&format!("custom.{}", a.name))
            .map(String::as_str)
            .unwrap_or("");
        let value = typed_value(a, text);
        let empty = text.trim().is_empty() || value.as_array().is_some_and(Vec::is_empty);
        if empty {
            ext.remove(&a.name);
        } else {
            ext.insert(a.name.clone(), value);
        }
    }
    if ext.is_empty() {
        o.remove(&custom.urn);
    } else {
        o.insert(custom.urn.clone(), Value::Object(ext));
    }
}

fn str_of<'v>(v: &'v Value, path: &[&str]) -> &'v str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or("")
}

fn primary_email(u: &Value) -> &str {
    let emails = u["emails"].as_array();
    let pick = emails.and_then(|es| {
        es.iter()
            .find(|e| e["primary"] == true)
            .or_else(|| es.first())
    });
    pick.map_or("", |e| e["value"].as_str().unwrap_or(""))
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

// ------------------------------------------------------------------ users

async fn users(State(c): State<Shared>, v: Visit, Query(q): Query<Fields>) -> Page {
    let admin = v.admin()?;
    let text = q.get("q").cloned().unwrap_or_default();
    let sort = match q.get("sort").map(String::as_str) {
        // The sorts the store answers from an index (a page, not a sort of all).
        Some(s @ ("userName" | "meta.created")) => s.to_string(),
        _ => "userName".to_string(),
    };
    let descending = q.get("order").is_some_and(|o| o == "descending");
    let start = start_of(&q);
    let req = SearchRequest {
        filter: user_filter(&text),
        sort_by: Some(sort.clone()),
        sort_order: Some(
            if descending {
                "descending"
            } else {
                "ascending"
            }
            .to_string(),
        ),
        start_index: Some(start as i64),
        count: Some(PAGE as i64),
        ..SearchRequest::default()
    };
    let shown = "userName,displayName,emails,active,meta.created";
    let (list, error) = match search(&c, "Users", req, shown).await {
        Ok(l) => (l, None),
        Err(e) => (json!({"Resources": [], "totalResults": 0}), Some(e.detail)),
    };
    let rows = list["Resources"].as_array().cloned().unwrap_or_default();
    let total = list["totalResults"].as_u64().unwrap_or(0);
    let base = format!(
        "/ui/users?q={}&sort={sort}&order={}",
        encode(&text),
        if descending {
            "descending"
        } else {
            "ascending"
        }
    );
    let sort_link = |field: &str, label: &str| {
        let order = if sort == field && !descending {
            "descending"
        } else {
            "ascending"
        };
        let mark = match (sort == field, descending) {
            (true, false) => " ▲",
            (true, true) => " ▼",
            _ => "",
        };
        html! { a href=(format!("/ui/users?q={}&sort={field}&order={order}", encode(&text))) { (label) (mark) } }
    };
    let body = html! {
        form method="get" action="/ui/users" role="search" {
            label { "Search (a name or email, or a SCIM filter)"
                // With scripts on, the table follows the box as one types.
                input name="q" type="search" value=(text) placeholder="mi, or userName sw \"mi\""
                    hx-get="/ui/users" hx-trigger="input changed delay:300ms, search"
                    hx-target="#results" hx-select="#results" hx-swap="outerHTML" hx-push-url="true"; }
            button type="submit" { "Search" }
            " " a href="/ui/users/new" { "New user" }
        }
        div id="results" {
        (error_box(error.as_deref()))
        table {
            thead { tr {
                th { (sort_link("userName", "User name")) }
                th { "Display name" }
                th.wide { "Email" }
                th { "Active" }
                th.wide { (sort_link("meta.created", "Created")) }
            } }
            tbody {
                @for u in &rows {
                    tr {
                        td { a href=(format!("/ui/users/{}", str_of(u, &["id"]))) { (str_of(u, &["userName"])) } }
                        td { (str_of(u, &["displayName"])) }
                        td.wide { (primary_email(u)) }
                        td { @if u["active"] == false { "no" } @else { "yes" } }
                        td.wide { (str_of(u, &["meta", "created"])) }
                    }
                }
            }
        }
        (pager(&base, start, rows.len() as u64, total, PAGE))
        }
    };
    ok(layout("Users", Some(admin), "/ui/users", body))
}

/// The user form's fields, filled from `u` (a user document) when editing.
fn user_fields(u: &Value, creating: bool, custom: &Custom) -> Markup {
    let ent = &u[ENTERPRISE_USER_SCHEMA];
    let text = |name: &str, label: &str, value: &str, required: bool| {
        html! { label { (label) input name=(name) value=(value) required[required]; } }
    };
    html! {
        (text("userName", "User name", str_of(u, &["userName"]), true))
        (text("displayName", "Display name", str_of(u, &["displayName"]), false))
        (text("givenName", "Given name", str_of(u, &["name", "givenName"]), false))
        (text("familyName", "Family name", str_of(u, &["name", "familyName"]), false))
        label { "Email" input name="email" type="email" value=(primary_email(u)); }
        (text("title", "Title", str_of(u, &["title"]), false))
        (text("employeeNumber", "Employee number", ent["employeeNumber"].as_str().unwrap_or(""), false))
        (text("department", "Department", ent["department"].as_str().unwrap_or(""), false))
        label.check { input type="checkbox" name="active" value="true" checked[u["active"] != false]; "Active" }
        (custom_fields(u, custom))
        @if creating {
            label { "Password (optional)" input name="password" type="password" autocomplete="new-password"; }
        }
    }
}

/// Set or remove (when empty) a string at `path` of `doc`.
fn put(doc: &mut Value, path: &[&str], value: &str) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = doc;
    for p in parents {
        if !cur[*p].is_object() {
            cur[*p] = json!({});
        }
        cur = &mut cur[*p];
    }
    let Some(o) = cur.as_object_mut() else { return };
    let value = value.trim();
    if value.is_empty() {
        o.remove(*last);
    } else {
        o.insert(last.to_string(), json!(value));
    }
}

/// `doc` with the form's values in it (other attributes kept as they are).
fn apply_user_form(mut doc: Value, f: &Fields, custom: &Custom) -> Value {
    apply_custom(&mut doc, f, custom);
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    put(&mut doc, &["userName"], get("userName"));
    put(&mut doc, &["displayName"], get("displayName"));
    put(&mut doc, &["name", "givenName"], get("givenName"));
    put(&mut doc, &["name", "familyName"], get("familyName"));
    put(&mut doc, &["title"], get("title"));
    put(
        &mut doc,
        &[ENTERPRISE_USER_SCHEMA, "employeeNumber"],
        get("employeeNumber"),
    );
    put(
        &mut doc,
        &[ENTERPRISE_USER_SCHEMA, "department"],
        get("department"),
    );
    for key in ["name", ENTERPRISE_USER_SCHEMA] {
        if doc[key].as_object().is_some_and(Map::is_empty) {
            if let Some(o) = doc.as_object_mut() {
                o.remove(key);
            }
        }
    }
    let email = get("email").trim().to_string();
    let emails = doc["emails"].as_array().cloned().unwrap_or_default();
    let mut kept: Vec<Value> = emails
        .into_iter()
        .filter(|e| !(e["primary"] == true || e["type"] == "work"))
        .collect();
    if !email.is_empty() {
        kept.insert(0, json!({"value": email, "type": "work", "primary": true}));
    }
    if let Some(o) = doc.as_object_mut() {
        if kept.is_empty() {
            o.remove("emails");
        } else {
            o.insert("emails".into(), Value::Array(kept));
        }
        o.insert("active".into(), json!(f.contains_key("active")));
        let mut schemas = vec![json!(USER_SCHEMA)];
        if o.contains_key(ENTERPRISE_USER_SCHEMA) {
            schemas.push(json!(ENTERPRISE_USER_SCHEMA));
        }
        if o.contains_key(&custom.urn) {
            schemas.push(json!(custom.urn));
        }
        let given = o.get("schemas").and_then(Value::as_array).cloned();
        for s in given.unwrap_or_default() {
            if !schemas.contains(&s) && o.contains_key(s.as_str().unwrap_or("")) {
                schemas.push(s);
            }
        }
        o.insert("schemas".into(), Value::Array(schemas));
    }
    doc
}

fn new_user_page(admin: &Admin, f: &Fields, error: Option<&str>, custom: &Custom) -> Markup {
    let draft = apply_user_form(json!({}), f, custom);
    let body = html! {
        (error_box(error))
        form.stack method="post" action="/ui/users" {
            (csrf(admin))
            (user_fields(&if f.is_empty() { json!({"active": true}) } else { draft }, true, custom))
            button type="submit" { "Create user" }
        }
    };
    layout("New user", Some(admin), "/ui/users", body)
}

async fn new_user(State(c): State<Shared>, v: Visit) -> Page {
    let admin = v.admin()?;
    ok(new_user_page(
        admin,
        &Fields::new(),
        None,
        &custom_of(&c).await,
    ))
}

async fn create_user(State(c): State<Shared>, v: Visit, Form(f): Form<Fields>) -> Page {
    let admin = v.poster(&f)?;
    let custom = custom_of(&c).await;
    let mut doc = apply_user_form(json!({}), &f, &custom);
    if let Some(pw) = f.get("password").filter(|p| !p.is_empty()) {
        doc["password"] = json!(pw);
    }
    let ctx = v.ctx(&c);
    let rt = users_rt(&c)?;
    match c.call(move |s| s.create(&rt, &doc, &ctx)).await {
        Ok(r) => Ok(see(&format!("/ui/users/{}", str_of(&r.doc, &["id"])))),
        Err(e) => Err(crate::pages::respond(
            status_of(&e),
            new_user_page(admin, &f, Some(&e.detail), &custom),
        )),
    }
}

fn status_of(e: &ScimError) -> axum::http::StatusCode {
    axum::http::StatusCode::from_u16(e.status).unwrap_or(axum::http::StatusCode::BAD_REQUEST)
}

fn users_rt(c: &Shared) -> Result<scim_proto::schema::ResourceTypeDef, axum::response::Response> {
    c.service
        .resource_type("Users")
        .ok_or_else(|| failed(&ScimError::internal("no User type")))
}

fn groups_rt(c: &Shared) -> Result<scim_proto::schema::ResourceTypeDef, axum::response::Response> {
    c.service
        .resource_type("Groups")
        .ok_or_else(|| failed(&ScimError::internal("no Group type")))
}

async fn get_doc(
    c: &Shared,
    rt: scim_proto::schema::ResourceTypeDef,
    id: String,
) -> Result<(Value, i64), axum::response::Response> {
    c.call(move |s| s.get(&rt, &id, &s.local_ctx()).map(|r| (r.doc, r.version)))
        .await
        .map_err(|e| failed(&e))
}

/// FIDO devices of a user, from each device type's search.
async fn devices_of(c: &Shared, user_id: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let types: Vec<_> = c
        .service
        .registry()
        .resource_types()
        .iter()
        .filter(|rt| rt.kind.is_device())
        .cloned()
        .collect();
    for rt in types {
        let req = SearchRequest {
            user_id: Some(user_id.to_string()),
            count: Some(50),
            ..SearchRequest::default()
        };
        let name = rt.name.clone();
        let found = c
            .call(move |s| {
                let ctx = s.local_ctx();
                s.search(&s.prepare_search(&rt, &req, &ctx)?, &ctx)
            })
            .await;
        if let Ok(list) = found {
            for d in list["Resources"].as_array().cloned().unwrap_or_default() {
                out.push((name.clone(), d));
            }
        }
    }
    out
}

fn user_page(
    admin: &Admin,
    doc: &Value,
    version: i64,
    devices: &[(String, Value)],
    custom: &Custom,
    error: Option<&str>,
    notice: Option<&str>,
) -> Markup {
    let id = str_of(doc, &["id"]);
    let active = doc["active"] != false;
    let groups = doc["groups"].as_array().cloned().unwrap_or_default();
    let body = html! {
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        (error_box(error))
        p.muted { "id " code { (id) } " · version " (version) " · created " (str_of(doc, &["meta", "created"])) }
        form.stack method="post" action=(format!("/ui/users/{id}")) {
            (csrf(admin))
            input type="hidden" name="version" value=(version);
            (user_fields(doc, false, custom))
            button type="submit" { "Save" }
        }
        h2 { "Status" }
        form.inline method="post" action=(format!("/ui/users/{id}/active")) {
            (csrf(admin))
            input type="hidden" name="active" value=(if active { "false" } else { "true" });
            button type="submit" { @if active { "Deactivate" } @else { "Activate" } }
        }
        " " span { "The user is " strong { @if active { "active" } @else { "inactive" } } "." }
        h2 { "Password" }
        form.stack method="post" action=(format!("/ui/users/{id}/password")) {
            (csrf(admin))
            label { "New password" input name="password" type="password" autocomplete="new-password" required; }
            button type="submit" { "Set password" }
        }
        h2 { "Groups" }
        @if groups.is_empty() { p.muted { "Member of no group." } }
        ul { @for g in &groups {
            li { a href=(format!("/ui/groups/{}", str_of(g, &["value"]))) { (str_of(g, &["display"])) }
                 " (" (str_of(g, &["type"])) ")" }
        } }
        h2 { "FIDO devices" }
        @if devices.is_empty() { p.muted { "No devices." } }
        @for (kind, d) in devices {
            p { (kind) ": " (str_of(d, &["displayName"])) " " code { (str_of(d, &["id"])) } " "
                form.inline method="post" action=(format!("/ui/users/{id}/devices/{kind}/{}/delete", str_of(d, &["id"]))) {
                    (csrf(admin))
                    button.danger type="submit" aria-label=(format!("Remove device {}", str_of(d, &["id"]))) { "Remove" }
                }
            }
        }
        h2 { "Delete" }
        p { a href=(format!("/ui/users/{id}/delete")) { "Delete this user…" } }
    };
    layout(
        &format!("User {}", str_of(doc, &["userName"])),
        Some(admin),
        "/ui/users",
        body,
    )
}

async fn user(
    State(c): State<Shared>,
    v: Visit,
    Path(id): Path<String>,
    Query(q): Query<Fields>,
) -> Page {
    let admin = v.admin()?;
    let (doc, version) = get_doc(&c, users_rt(&c)?, id.clone()).await?;
    let devices = devices_of(&c, &id).await;
    let notice = q.get("saved").map(|s| match s.as_str() {
        "password" => "Password set.",
        "active" => "Status changed.",
        "device" => "Device removed.",
        _ => "Saved.",
    });
    let custom = custom_of(&c).await;
    ok(user_page(
        admin, &doc, version, &devices, &custom, None, notice,
    ))
}

async fn save_user(
    State(c): State<Shared>,
    v: Visit,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Page {
    let admin = v.poster(&f)?;
    let rt = users_rt(&c)?;
    let (doc, version) = get_doc(&c, rt.clone(), id.clone()).await?;
    let if_match = f
        .get("version")
        .and_then(|v| v.parse().ok())
        .or(Some(version));
    let custom = custom_of(&c).await;
    let mut edited = apply_user_form(doc.clone(), &f, &custom);
    if let Some(o) = edited.as_object_mut() {
        o.remove("meta");
        o.remove("groups");
    }
    let ctx = v.ctx(&c);
    let (rid, rrt) = (id.clone(), rt.clone());
    match c
        .call(move |s| s.replace(&rrt, &rid, &edited, if_match, &ctx))
        .await
    {
        Ok(_) => Ok(see(&format!("/ui/users/{id}?saved=1"))),
        Err(e) => {
            let devices = devices_of(&c, &id).await;
            let detail = if e.status == 412 {
                "Someone changed this user meanwhile: this is the current version, make your change again.".to_string()
            } else {
                e.detail.clone()
            };
            Err(crate::pages::respond(
                status_of(&e),
                user_page(admin, &doc, version, &devices, &custom, Some(&detail), None),
            ))
        }
    }
}

/// PATCH a resource with these operations, under the admin's name.
async fn patch(
    c: &Shared,
    v: &Visit,
    rt: scim_proto::schema::ResourceTypeDef,
    id: &str,
    ops: Value,
) -> Result<(), axum::response::Response> {
    let body = json!({"schemas": [PATCH_OP], "Operations": ops});
    let (ctx, id) = (v.ctx(c), id.to_string());
    c.call(move |s| s.patch(&rt, &id, &body, None, &ctx).map(|_| ()))
        .await
        .map_err(|e| failed(&e))
}

async fn set_active(
    State(c): State<Shared>,
    v: Visit,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Page {
    v.poster(&f)?;
    let active = f.get("active").is_some_and(|a| a == "true");
    patch(
        &c,
        &v,
        users_rt(&c)?,
        &id,
        json!([{"op": "replace", "path": "active", "value": active}]),
    )
    .await?;
    Ok(see(&format!("/ui/users/{id}?saved=active")))
}

async fn set_password(
    State(c): State<Shared>,
    v: Visit,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Page {
    v.poster(&f)?;
    let pw = f.get("password").cloned().unwrap_or_default();
    if pw.is_empty() {
        return Err(failed(&ScimError::invalid_value("the password is empty")));
    }
    patch(
        &c,
        &v,
        users_rt(&c)?,
        &id,
        json!([{"op": "replace", "path": "password", "value": pw}]),
    )
    .await?;
    // Sessions of that user (if an admin) start over with the new password.
    if v.admin.as_ref().is_none_or(|a| a.user_id != id) {
        c.sessions.end_all_of(&id);
    }
    Ok(see(&format!("/ui/users/{id}?saved=password")))
}

fn confirm_page(admin: &Admin, what: &str, action: &str, back: &str) -> Markup {
    let body = html! {
        p { "Delete " strong { (what) } "? This cannot be undone." }
        form.inline method="post" action=(action) {
            (csrf(admin))
            button.danger type="submit" { "Delete" }
        }
        " " a href=(back) { "Cancel" }
    };
    layout("Confirm deletion", Some(admin), "", body)
}

/// What a deletion page says of a user or group (`page`: `users` or `groups`).
fn deletable(
    c: &Shared,
    page: &str,
) -> Result<
    (
        scim_proto::schema::ResourceTypeDef,
        &'static str,
        &'static str,
    ),
    axum::response::Response,
> {
    match page {
        "users" => Ok((users_rt(c)?, "user", "userName")),
        _ => Ok((groups_rt(c)?, "group", "displayName")),
    }
}

/// The confirmation page of a user's or group's deletion.
async fn confirm_delete(c: &Shared, v: &Visit, page: &str, id: String) -> Page {
    let admin = v.admin()?;
    let (rt, label, name) = deletable(c, page)?;
    let (doc, _) = get_doc(c, rt, id.clone()).await?;
    ok(confirm_page(
        admin,
        &format!("{label} {}", str_of(&doc, &[name])),
        &format!("/ui/{page}/{id}/delete"),
        &format!("/ui/{page}/{id}"),
    ))
}

/// Delete a user or group (confirmed), then back to the list.
async fn delete(c: &Shared, v: &Visit, f: &Fields, page: &str, id: String) -> Page {
    v.poster(f)?;
    let (rt, _, _) = deletable(c, page)?;
    let (ctx, rid) = (v.ctx(c), id.clone());
    c.call(move |s| s.delete(&rt, &rid, None, &ctx))
        .await
        .map_err(|e| failed(&e))?;
    // A deleted admin's sessions end with it.
    c.sessions.end_all_of(&id);
    Ok(see(&format!("/ui/{page}")))
}

async fn confirm_user_delete(State(c): State<Shared>, v: Visit, Path(id): Path<String>) -> Page {
    confirm_delete(&c, &v, "users", id).await
}

async fn delete_user(
    State(c): State<Shared>,
    v: Visit,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Page {
    delete(&c, &v, &f, "users", id).await
}

async fn confirm_group_delete(State(c): State<Shared>, v: Visit, Path(id): Path<String>) -> Page {
    confirm_delete(&c, &v, "groups", id).await
}

async fn delete_group(
    State(c): State<Shared>,
    v: Visit,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Page {
    delete(&c, &v, &f, "groups", id).await
}

/// Remove one of a user's FIDO devices (`kind`: the device type's name).
async fn remove_device(
    State(c): State<Shared>,
    v: Visit,
    Path((id, kind, device)): Path<(String, String, String)>,
    Form(f): Form<Fields>,
) -> Page {
    v.poster(&f)?;
    let rt = c
        .service
        .registry()
        .resource_types()
        .iter()
        .find(|rt| rt.kind.is_device() && rt.name == kind)
        .cloned()
        .ok_or_else(|| failed(&ScimError::not_found(format!("no device type {kind}"))))?;
    let ctx = v.ctx(&c);
    c.call(move |s| s.delete(&rt, &device, None, &ctx))
        .await
        .map_err(|e| failed(&e))?;
    Ok(see(&format!("/ui/users/{id}?saved=device")))
}

// ------------------------------------------------------------------ groups

async fn groups(State(c): State<Shared>, v: Visit, Query(q): Query<Fields>) -> Page {
    let admin = v.admin()?;
    let text = q.get("q").cloned().unwrap_or_default();
    let start = start_of(&q);
    let req = SearchRequest {
        filter: group_filter(&text),
        sort_by: Some("displayName".into()),
        start_index: Some(start as i64),
        count: Some(PAGE as i64),
        ..SearchRequest::default()
    };
    let (list, error) = match search(&c, "Groups", req, "displayName").await {
        Ok(l) => (l, None),
        Err(e) => (json!({"Resources": [], "totalResults": 0}), Some(e.detail)),
    };
    let rows = list["Resources"].as_array().cloned().unwrap_or_default();
    let total = list["totalResults"].as_u64().unwrap_or(0);
    let body = html! {
        form method="get" action="/ui/groups" role="search" {
            label { "Search (a name, or a SCIM filter)" input name="q" type="search" value=(text); }
            button type="submit" { "Search" }
        }
        (error_box(error.as_deref()))
        table {
            thead { tr { th { "Display name" } th.wide { "id" } } }
            tbody { @for g in &rows { tr {
                td { a href=(format!("/ui/groups/{}", str_of(g, &["id"]))) { (str_of(g, &["displayName"])) } }
                td.wide { code { (str_of(g, &["id"])) } }
            } } }
        }
        (pager(&format!("/ui/groups?q={}", encode(&text)), start, rows.len() as u64, total, PAGE))
        h2 { "New group" }
        form.stack method="post" action="/ui/groups" {
            (csrf(admin))
            label { "Display name" input name="displayName" required; }
            button type="submit" { "Create group" }
        }
    };
    ok(layout("Groups", Some(admin), "/ui/groups", body))
}

async fn create_group(State(c): State<Shared>, v: Visit, Form(f): Form<Fields>) -> Page {
    v.poster(&f)?;
    let name = f.get("displayName").cloned().unwrap_or_default();
    let doc = json!({"schemas": [GROUP_SCHEMA], "displayName": name.trim()});
    let (rt, ctx) = (groups_rt(&c)?, v.ctx(&c));
    let r = c
        .call(move |s| s.create(&rt, &doc, &ctx))
        .await
        .map_err(|e| failed(&e))?;
    Ok(see(&format!("/ui/groups/{}", str_of(&r.doc, &["id"]))))
}

async fn group(
    State(c): State<Shared>,
    v: Visit,
    Path(id): Path<String>,
    Query(q): Query<Fields>,
) -> Page {
    let admin = v.admin()?;
    let rt = groups_rt(&c)?;
    let gid = id.clone();
    let (name, version) = c
        .call(move |s| {
            // Not the member list: a group may have 100,000 members.
            let mut ctx = s.local_ctx();
            ctx.projection = scim_proto::project::Projection::parse(Some("displayName"), None)?;
            s.get(&rt, &gid, &ctx)
                .map(|r| (str_of(&r.doc, &["displayName"]).to_string(), r.version))
        })
        .await
        .map_err(|e| failed(&e))?;
    let start = start_of(&q) as usize;
    let mid = id.clone();
    // One page from the store: a group of 100,000 costs what a group of 50 does.
    let (total, page) = c
        .call(move |s| {
            s.store
                .members_page(&mid, start - 1, MEMBERS_PAGE)
                .map_err(scim_server::service::store_error)
        })
        .await
        .map_err(|e| failed(&e))?;
    let find = q.get("find").cloned().unwrap_or_default();
    let candidates = if find.trim().is_empty() {
        Vec::new()
    } else {
        let req = SearchRequest {
            filter: user_filter(&find),
            count: Some(10),
            ..SearchRequest::default()
        };
        search(&c, "Users", req, "userName,displayName")
            .await
            .ok()
            .and_then(|l| l["Resources"].as_array().cloned())
            .unwrap_or_default()
    };
    let body = html! {
        p.muted { "id " code { (id) } " · version " (version) " · " (total) " members" }
        form.stack method="post" action=(format!("/ui/groups/{id}")) {
            (csrf(admin))
            label { "Display name" input name="displayName" value=(name) required; }
            button type="submit" { "Rename" }
        }
        h2 { "Members" }
        table {
            thead { tr { th { "Member" } th { "Type" } th { "" } } }
            tbody { @for m in &page { tr {
                td { @if m.kind == scim_store::MemberKind::User {
                        a href=(format!("/ui/users/{}", m.id)) { (m.display.as_deref().unwrap_or(&m.id)) }
                     } @else {
                        a href=(format!("/ui/groups/{}", m.id)) { (m.display.as_deref().unwrap_or(&m.id)) }
                     } }
                td { (m.kind.as_str()) }
                td { form.inline method="post" action=(format!("/ui/groups/{id}/members/remove")) {
                    (csrf(admin))
                    input type="hidden" name="member" value=(m.id);
                    button.plain type="submit" aria-label=(format!("Remove {}", m.display.as_deref().unwrap_or(&m.id))) { "Remove" }
                } }
            } } }
        }
        (pager(&format!("/ui/groups/{id}"), start as u64, page.len() as u64, total, MEMBERS_PAGE as u64))
        h2 { "Add members" }
        form method="get" action=(format!("/ui/groups/{id}")) role="search" {
            label { "Find users" input name="find" type="search" value=(find); }
            button type="submit" { "Find" }
        }
        @for u in &candidates {
            form.inline method="post" action=(format!("/ui/groups/{id}/members")) {
                (csrf(admin))
                input type="hidden" name="member" value=(str_of(u, &["id"]));
                button type="submit" { "Add " (str_of(u, &["userName"])) }
            }
            " "
        }
        h2 { "Delete" }
        p { a href=(format!("/ui/groups/{id}/delete")) { "Delete this group…" } }
    };
    ok(layout(
        &format!("Group {name}"),
        Some(admin),
        "/ui/groups",
        body,
    ))
}

async fn rename_group(
    State(c): State<Shared>,
    v: Visit,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Page {
    v.poster(&f)?;
    let name = f.get("displayName").cloned().unwrap_or_default();
    patch(
        &c,
        &v,
        groups_rt(&c)?,
        &id,
        json!([{"op": "replace", "path": "displayName", "value": name.trim()}]),
    )
    .await?;
    Ok(see(&format!("/ui/groups/{id}")))
}

async fn add_member(
    State(c): State<Shared>,
    v: Visit,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Page {
    v.poster(&f)?;
    let member = f.get("member").cloned().unwrap_or_default();
    patch(
        &c,
        &v,
        groups_rt(&c)?,
        &id,
        json!([{"op": "add", "path": "members", "value": [{"value": member}]}]),
    )
    .await?;
    Ok(see(&format!("/ui/groups/{id}")))
}

async fn remove_member(
    State(c): State<Shared>,
    v: Visit,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Page {
    v.poster(&f)?;
    let member = f.get("member").cloned().unwrap_or_default();
    let path = format!("members[value eq {}]", quoted(&member));
    patch(
        &c,
        &v,
        groups_rt(&c)?,
        &id,
        json!([{"op": "remove", "path": path}]),
    )
    .await?;
    Ok(see(&format!("/ui/groups/{id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_searches_names_and_emails_and_filters_pass_through() {
        assert_eq!(
            user_filter("mi").as_deref(),
            Some(r#"userName sw "mi" or displayName co "mi" or emails co "mi""#)
        );
        assert_eq!(
            user_filter(r#"userName eq "x""#).as_deref(),
            Some(r#"userName eq "x""#)
        );
        assert_eq!(user_filter("title pr").as_deref(), Some("title pr"));
        assert_eq!(user_filter("  "), None);
        assert_eq!(
            group_filter(r#"a "b""#).as_deref(),
            Some(r#"displayName co "a \"b\"""#)
        );
    }

    #[test]
    fn the_form_edits_its_fields_and_keeps_the_rest() {
        let doc = json!({"schemas": [USER_SCHEMA], "userName": "a", "nickName": "keep",
            "emails": [{"value": "old@x", "type": "work", "primary": true}, {"value": "h@x", "type": "home"}],
            "name": {"givenName": "A", "formatted": "A B"}});
        let f: Fields = [
            ("userName", "b"),
            ("givenName", ""),
            ("email", "new@x"),
            ("department", "Ops"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let none = Custom {
            urn: "urn:x".into(),
            attrs: Vec::new(),
        };
        let out = apply_user_form(doc, &f, &none);
        assert_eq!(out["userName"], "b");
        assert_eq!(out["nickName"], "keep");
        assert_eq!(out["name"], json!({"formatted": "A B"}));
        assert_eq!(out["emails"][0]["value"], "new@x");
        assert_eq!(out["emails"][1]["value"], "h@x");
        assert_eq!(out["active"], false);
        assert_eq!(out[ENTERPRISE_USER_SCHEMA]["department"], "Ops");
        assert_eq!(out["schemas"], json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA]));
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }
}
