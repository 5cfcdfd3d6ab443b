//! Custom attributes and interception scripts.

use crate::pages::{csrf, error_box, failed, layout, ok, respond};
use crate::{see, Page, Shared, Visit};
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use maud::html;
use scim_server::scripts::ScriptChange;
use serde_json::json;
use std::collections::HashMap;

type Fields = HashMap<String, String>;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/ui/attributes", get(attributes).post(add_attribute))
        .route("/ui/attributes/{name}/delete", post(remove_attribute))
        .route("/ui/scripts", get(scripts))
        .route("/ui/scripts/{name}", get(script).post(save_script))
        .route("/ui/scripts/{name}/enabled", post(set_enabled))
}

async fn attributes_page(c: &Shared, v: &Visit, error: Option<&str>, status: StatusCode) -> Page {
    let admin = v.admin()?;
    let list = c
        .call(|s| s.custom_attributes())
        .await
        .map_err(|e| failed(&e))?;
    let body = html! {
        (error_box(error))
        table {
            thead { tr { th { "Name" } th { "Type" } th { "Multi-valued" } th.wide { "Description" } th { "" } } }
            tbody { @for a in &list { tr {
                td { code { (a.name) } } td { (a.kind.as_str()) }
                td { @if a.multi_valued { "yes" } @else { "no" } }
                td.wide { (a.description) }
                td { form.inline method="post" action=(format!("/ui/attributes/{}/delete", a.name)) {
                    (csrf(admin))
                    label.check { input type="checkbox" name="force" value="true"; "also clear it from users" }
                    button.danger type="submit" { "Remove" }
                } }
            } } }
        }
        h2 { "New attribute" }
        form.stack method="post" action="/ui/attributes" {
            (csrf(admin))
            label { "Name" input name="name" required pattern="[A-Za-z][A-Za-z0-9_$-]*"; }
            label { "Type" select name="type" {
                option value="string" { "string" } option value="numeric" { "numeric" }
                option value="boolean" { "boolean" } option value="date" { "date" }
            } }
            label.check { input type="checkbox" name="multiValued" value="true"; "Multi-valued" }
            label { "Description" input name="description"; }
            button type="submit" { "Add attribute" }
        }
    };
    Ok(respond(
        status,
        layout("Custom attributes", Some(admin), "/ui/attributes", body),
    ))
}

async fn attributes(State(c): State<Shared>, v: Visit) -> Page {
    attributes_page(&c, &v, None, StatusCode::OK).await
}

async fn add_attribute(State(c): State<Shared>, v: Visit, Form(f): Form<Fields>) -> Page {
    v.poster(&f)?;
    let body = json!({
        "name": f.get("name").map(|s| s.trim()).unwrap_or(""),
        "type": f.get("type").map(String::as_str).unwrap_or("string"),
        "multiValued": f.contains_key("multiValued"),
        "description": f.get("description").cloned().unwrap_or_default(),
    });
    let added = match scim_server::admin::parse_custom_attribute(&body) {
        Ok(a) => {
            c.call(move |s: &scim_server::service::Service| s.add_custom_attribute(&a))
                .await
        }
        Err(e) => Err(e),
    };
    match added {
        Ok(()) => Ok(see("/ui/attributes")),
        Err(e) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
            Err(attributes_page(&c, &v, Some(&e.detail), status)
                .await
                .unwrap_or_else(|r| r))
        }
    }
}

async fn remove_attribute(
    State(c): State<Shared>,
    v: Visit,
    Path(name): Path<String>,
    Form(f): Form<Fields>,
) -> Page {
    v.poster(&f)?;
    let force = f.contains_key("force");
    match c
        .call(move |s| s.remove_custom_attribute(&name, force))
        .await
    {
        Ok(_) => Ok(see("/ui/attributes")),
        Err(e) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
            Err(attributes_page(&c, &v, Some(&e.detail), status)
                .await
                .unwrap_or_else(|r| r))
        }
    }
}

async fn scripts(State(c): State<Shared>, v: Visit) -> Page {
    let admin = v.admin()?;
    let list = c.call(|s| s.list_scripts()).await.map_err(|e| failed(&e))?;
    let body = html! {
        @if list.is_empty() { p.muted { "No interception scripts. Add them with " code { "scimd scripts add" } " or the admin API." } }
        table {
            thead { tr { th { "Order" } th { "Name" } th { "Enabled" } th { "Last error" } th { "" } } }
            tbody { @for s in &list { tr {
                td { (s.order) }
                td { a href=(format!("/ui/scripts/{}", s.name)) { (s.name) } }
                td { @if s.enabled { "yes" } @else { "no" } }
                td { (s.last_error.as_deref().unwrap_or("")) }
                td { form.inline method="post" action=(format!("/ui/scripts/{}/enabled", s.name)) {
                    (csrf(admin))
                    input type="hidden" name="enabled" value=(if s.enabled { "false" } else { "true" });
                    button.plain type="submit" { @if s.enabled { "Disable" } @else { "Enable" } }
                } }
            } } }
        }
    };
    ok(layout(
        "Interception scripts",
        Some(admin),
        "/ui/scripts",
        body,
    ))
}

async fn script_page(
    c: &Shared,
    v: &Visit,
    name: String,
    source: Option<String>,
    error: Option<&str>,
    status: StatusCode,
) -> Page {
    let admin = v.admin()?;
    let s = c
        .call(move |s| s.script(&name))
        .await
        .map_err(|e| failed(&e))?;
    let body = html! {
        (error_box(error))
        p.muted { "Order " (s.order) " · " @if s.enabled { "enabled" } @else { "disabled" } " · updated " (s.updated.to_rfc3339()) }
        @if let Some(e) = &s.last_error { p.error { "Last error: " (e) } }
        form.stack method="post" action=(format!("/ui/scripts/{}", s.name)) {
            (csrf(admin))
            label { "Order" input name="order" type="number" value=(s.order); }
            label { "Source (Luau; compiled before it is saved)"
                textarea name="source" rows="24" spellcheck="false" { (source.as_deref().unwrap_or(&s.source)) } }
            button type="submit" { "Check and save" }
        }
    };
    Ok(respond(
        status,
        layout(
            &format!("Script {}", s.name),
            Some(admin),
            "/ui/scripts",
            body,
        ),
    ))
}

async fn script(
    State(c): State<Shared>,
    v: Visit,
    Path(name): Path<String>,
    Query(_): Query<Fields>,
) -> Page {
    script_page(&c, &v, name, None, None, StatusCode::OK).await
}

async fn save_script(
    State(c): State<Shared>,
    v: Visit,
    Path(name): Path<String>,
    Form(f): Form<Fields>,
) -> Page {
    v.poster(&f)?;
    let source = f.get("source").cloned().unwrap_or_default();
    let change = ScriptChange {
        order: f.get("order").and_then(|o| o.trim().parse().ok()),
        source: Some(source.clone()),
        ..ScriptChange::default()
    };
    let n = name.clone();
    match c.call(move |s| s.update_script(&n, change)).await {
        Ok(_) => Ok(see(&format!("/ui/scripts/{name}"))),
        Err(e) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
            Err(
                script_page(&c, &v, name, Some(source), Some(&e.detail), status)
                    .await
                    .unwrap_or_else(|r| r),
            )
        }
    }
}

async fn set_enabled(
    State(c): State<Shared>,
    v: Visit,
    Path(name): Path<String>,
    Form(f): Form<Fields>,
) -> Page {
    v.poster(&f)?;
    let enable = f.get("enabled").is_some_and(|e| e == "true");
    c.call(move |s| {
        if enable {
            s.enable_script(&name)
        } else {
            s.disable_script(&name)
        }
    })
    .await
    .map_err(|e| failed(&e))?;
    Ok(see("/ui/scripts"))
}
