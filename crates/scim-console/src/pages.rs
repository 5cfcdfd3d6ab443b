//! The frame every page shares, error pages, the dashboard and the audit trail.

use crate::session::Admin;
use crate::{Page, Shared, Visit};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use scim_proto::messages::SearchRequest;
use scim_proto::ScimError;
use scim_store::{WriteQuery, WriteRecord};
use std::collections::HashMap;

/// The console's sections, in the order the navigation shows them.
const SECTIONS: [(&str, &str); 8] = [
    ("/ui/", "Dashboard"),
    ("/ui/users", "Users"),
    ("/ui/groups", "Groups"),
    ("/ui/clients", "Clients"),
    ("/ui/attributes", "Attributes"),
    ("/ui/scripts", "Scripts"),
    ("/ui/sync", "Sync"),
    ("/ui/audit", "Audit"),
];

/// A whole page: navigation for `admin` (with `current` marked), the title, `body`.
pub(crate) fn layout(title: &str, admin: Option<&Admin>, current: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · scimd" }
                link rel="stylesheet" href="/ui/static/console.css";
                // htmx's own indicator styles would be an inline <style>, which the
                // page's Content-Security-Policy refuses.
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false}"#;
                script src="/ui/static/htmx.min.js" defer {}
            }
            body {
                header {
                    strong { "scimd" }
                    @if let Some(a) = admin {
                        nav aria-label="Sections" {
                            @for (href, name) in SECTIONS {
                                @if href == current {
                                    a href=(href) aria-current="page" { (name) }
                                } @else {
                                    a href=(href) { (name) }
                                }
                            }
                        }
                        span.who {
                            "Signed in as " strong { (a.user_name) } " "
                            form.inline method="post" action="/ui/logout" {
                                (csrf(a))
                                button.plain type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf(a: &Admin) -> Markup {
    html! { input type="hidden" name="csrf" value=(a.csrf); }
}

/// A rendered page with its status.
pub(crate) fn respond(status: StatusCode, page: Markup) -> Response {
    let mut r = (status, page.into_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Pages show directory data: never kept by a shared cache, never framed.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert("x-frame-options", HeaderValue::from_static("DENY"));
    r.headers_mut().insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ),
    );
    r
}

pub(crate) fn ok(page: Markup) -> Page {
    Ok(respond(StatusCode::OK, page))
}

/// An error page on its own (no navigation).
pub(crate) fn problem(status: StatusCode, message: &str) -> Response {
    respond(
        status,
        layout(
            status.canonical_reason().unwrap_or("Error"),
            None,
            "",
            html! { p.error role="alert" { (message) } p { a href="/ui/" { "Back to the console" } } },
        ),
    )
}

/// A SCIM error from the service as a page: its status and detail.
pub(crate) fn failed(e: &ScimError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    problem(status, &e.detail)
}

/// A message box for a SCIM error shown inside a form page.
pub(crate) fn error_box(e: Option<&str>) -> Markup {
    html! { @if let Some(e) = e { p.error role="alert" { (e) } } }
}

/// How many resources of a type there are (an unfiltered count: the type's counter).
pub(crate) async fn count(c: &Shared, endpoint: &str) -> Option<u64> {
    let req = SearchRequest {
        count: Some(0),
        ..SearchRequest::default()
    };
    let list = crate::directory::search(c, endpoint, req, "id")
        .await
        .ok()?;
    list["totalResults"].as_u64()
}

pub(crate) async fn dashboard(State(c): State<Shared>, v: Visit) -> Page {
    let admin = v.admin()?;
    let devices: Vec<String> = c
        .service
        .registry()
        .resource_types()
        .iter()
        .filter(|rt| rt.kind.is_device())
        .map(|rt| rt.endpoint.trim_start_matches('/').to_string())
        .collect();
    let mut device_count = 0;
    for d in &devices {
        device_count += count(&c, d).await.unwrap_or(0);
    }
    let (users, groups) = (count(&c, "Users").await, count(&c, "Groups").await);
    let auth = c.auth.clone();
    let clients = tokio::task::spawn_blocking(move || auth.store().list_clients())
        .await
        .ok()
        .and_then(Result::ok)
        .map(|l| l.len());
    let recent = writes(
        &c,
        WriteQuery {
            resource: None,
            principal: None,
            since: None,
            limit: 10,
        },
    )
    .await
    .unwrap_or_default();
    let card = |label: &str, n: Option<u64>| {
        html! { div.card { b { (n.map_or("–".to_string(), |n| n.to_string())) } (label) } }
    };
    let body = html! {
        section.cards aria-label="Counts" {
            (card("users", users))
            (card("groups", groups))
            (card("devices", Some(device_count)))
            (card("clients", clients.map(|n| n as u64)))
        }
        h2 { "Server" }
        p { "Protection mode: " strong { (c.service.config.protection.to_string()) }
            " · Database: " strong { (c.config.database) } }
        h2 { "Recent changes" }
        (writes_table(&recent))
        p { a href="/ui/audit" { "The whole audit trail" } }
    };
    ok(layout("Dashboard", Some(admin), "/ui/", body))
}

async fn writes(c: &Shared, q: WriteQuery) -> Result<Vec<WriteRecord>, ScimError> {
    c.call(move |s| {
        s.store
            .writes(&q)
            .map_err(scim_server::service::store_error)
    })
    .await
}

/// Where a write's resource is shown in the console.
fn resource_link(w: &WriteRecord) -> Markup {
    let page = match w.resource_type.as_str() {
        "User" => Some("users"),
        "Group" => Some("groups"),
        _ => None,
    };
    html! {
        @match (page, w.op.as_str()) {
            (Some(p), op) if op != "deleted" => a href=(format!("/ui/{p}/{}", w.resource_id)) { (w.resource_id) },
            _ => code { (w.resource_id) },
        }
    }
}

fn writes_table(list: &[WriteRecord]) -> Markup {
    html! {
        @if list.is_empty() {
            p.muted { "No changes yet." }
        } @else {
            table {
                thead { tr { th { "When" } th { "What" } th { "Type" } th { "Resource" } th { "Who" } th.wide { "From" } } }
                tbody {
                    @for w in list {
                        tr {
                            td { (w.at) }
                            td { (w.op) " (v" (w.version) ")" }
                            td { (w.resource_type) }
                            td { (resource_link(w)) }
                            td { (w.principal.as_deref().unwrap_or("–")) }
                            td.wide { (w.source_ip.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

/// `/ui/audit`: the audit trail, newest first, by who and by resource.
pub(crate) async fn audit(
    State(c): State<Shared>,
    v: Visit,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    let admin = v.admin()?;
    let field = |k: &str| {
        q.get(k)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let (who, resource) = (field("who"), field("resource"));
    let list = writes(
        &c,
        WriteQuery {
            resource: resource.clone(),
            principal: who.clone(),
            since: None,
            limit: 200,
        },
    )
    .await
    .map_err(|e| crate::pages::failed(&e))?;
    let body = html! {
        form method="get" action="/ui/audit" role="search" {
            label { "Who (client id or admin:NAME)" input name="who" value=(who.as_deref().unwrap_or("")); }
            label { "Resource id" input name="resource" value=(resource.as_deref().unwrap_or("")); }
            button type="submit" { "Filter" }
        }
        p.muted { "The 200 newest matching writes." }
        (writes_table(&list))
    };
    ok(layout("Audit trail", Some(admin), "/ui/audit", body))
}

/// Text as a SCIM filter string literal.
pub(crate) fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}
