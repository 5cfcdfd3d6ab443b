//! OAuth clients and signing keys. A client's secret exists in clear once: on
//! the page that answers its creation or rotation (stored hashed, never logged).

use crate::pages::{csrf, failed, layout, ok, respond};
use crate::session::Admin;
use crate::{see, Page, Shared, Visit};
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use scim_auth::admin::{create_client, rotate_secret, ORIGIN_CLI};
use scim_auth::scope::SCOPE_NAMES;
use scim_proto::ScimError;
use std::collections::HashMap;

type Fields = HashMap<String, String>;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/ui/clients", get(list).post(create))
        .route("/ui/clients/{id}/disable", post(disable))
        .route("/ui/clients/{id}/enable", post(enable))
        .route("/ui/clients/{id}/rotate", post(rotate))
        .route("/ui/clients/{id}/delete", post(delete))
        .route("/ui/keys/rotate", post(rotate_keys))
}

/// Client-store work on a blocking thread, as a page error when it fails.
async fn with_auth<T: Send + 'static>(
    c: &Shared,
    f: impl FnOnce(&scim_auth::Auth) -> Result<T, String> + Send + 'static,
) -> Result<T, axum::response::Response> {
    let auth = c.auth.clone();
    tokio::task::spawn_blocking(move || f(&auth))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
        .map_err(|e| failed(&ScimError::internal(e)))
}

fn secret_page(admin: &Admin, what: &str, id: &str, secret: &str) -> Markup {
    let body = html! {
        p.notice role="status" { (what) }
        p { "Client id " code { (id) } }
        p { "Its secret, shown this once (only a hash is kept): copy it now." }
        p.secret data-secret { (secret) }
        p { a href="/ui/clients" { "Back to the clients" } }
    };
    layout("Client secret", Some(admin), "/ui/clients", body)
}

async fn list(State(c): State<Shared>, v: Visit) -> Page {
    let admin = v.admin()?;
    let (clients, keys) = with_auth(&c, |a| {
        let clients = a.store().list_clients().map_err(|e| e.to_string())?;
        let keys = a.store().signing_keys().map_err(|e| e.to_string())?;
        Ok((clients, keys))
    })
    .await?;
    let now = c.now();
    let body = html! {
        table {
            thead { tr { th { "Name" } th { "Client id" } th.wide { "Scopes" } th { "Status" } th { "" } } }
            tbody { @for cl in &clients {
                @let status = scim_auth::admin::client_json(cl, now)["status"].as_str().unwrap_or("").to_string();
                tr {
                    td { (cl.name) }
                    td { code { (cl.id) } }
                    td.wide { (cl.scopes.join(" ")) }
                    td { (status) }
                    td {
                        @let action = if cl.disabled { "enable" } else { "disable" };
                        form.inline method="post" action=(format!("/ui/clients/{}/{action}", cl.id)) {
                            (csrf(admin)) button.plain type="submit" { (if cl.disabled { "Enable" } else { "Disable" }) }
                        }
                        " "
                        form.inline method="post" action=(format!("/ui/clients/{}/rotate", cl.id)) {
                            (csrf(admin)) button.plain type="submit" { "Rotate secret" }
                        }
                        " "
                        form.inline method="post" action=(format!("/ui/clients/{}/delete", cl.id)) {
                            (csrf(admin))
                            label.check { input type="checkbox" name="confirm" value="yes" required; "sure" }
                            button.danger type="submit" { "Delete" }
                        }
                    }
                }
            } }
        }
        h2 { "New client" }
        form.stack method="post" action="/ui/clients" {
            (csrf(admin))
            label { "Name" input name="name" required; }
            fieldset {
                legend { "Scopes" }
                @for s in SCOPE_NAMES {
                    label.check { input type="checkbox" name=(format!("scope.{s}")) value="on"; (s) }
                }
            }
            button type="submit" { "Create client" }
        }
        h2 { "Signing keys" }
        table {
            thead { tr { th { "Key id" } th { "Algorithm" } th { "Created" } th { "Retired" } } }
            tbody { @for k in &keys { tr {
                td { code { (k.kid) } } td { (k.alg) } td { (k.created.to_rfc3339()) }
                td { (k.retired.map(|r| r.to_rfc3339()).unwrap_or_default()) }
            } } }
        }
        form.inline method="post" action="/ui/keys/rotate" {
            (csrf(admin)) button type="submit" { "Rotate signing keys" }
        }
        p.muted { "Tokens signed by a retired key stay valid until they expire." }
    };
    ok(layout("OAuth clients", Some(admin), "/ui/clients", body))
}

async fn create(State(c): State<Shared>, v: Visit, Form(f): Form<Fields>) -> Page {
    let admin = v.poster(&f)?;
    let name = f
        .get("name")
        .map(|n| n.trim().to_string())
        .unwrap_or_default();
    if name.is_empty() {
        return Err(failed(&ScimError::invalid_value("a client needs a name")));
    }
    let chosen: Vec<&str> = SCOPE_NAMES
        .iter()
        .copied()
        .filter(|s| f.contains_key(&format!("scope.{s}")))
        .collect();
    let now = c.now();
    let who = admin.user_name.clone();
    let (record, secret) = with_auth(&c, move |a| {
        let scopes = chosen.iter().map(|s| a.policy().full(s)).collect();
        create_client(
            a.store().as_ref(),
            a.hasher(),
            &name,
            scopes,
            now,
            None,
            ORIGIN_CLI,
        )
        .map_err(|e| e.to_string())
    })
    .await?;
    tracing::info!(client = %record.id, admin = %who, "console: client created");
    Ok(respond(
        StatusCode::CREATED,
        secret_page(
            admin,
            &format!("Client {} created.", record.name),
            &record.id,
            &secret,
        ),
    ))
}

async fn set_disabled(c: &Shared, v: &Visit, f: &Fields, id: String, disabled: bool) -> Page {
    v.poster(f)?;
    let forget = id.clone();
    with_auth(c, move |a| {
        a.store()
            .set_client_disabled(&id, disabled)
            .map_err(|e| e.to_string())?;
        a.forget_client(&forget);
        Ok(())
    })
    .await?;
    Ok(see("/ui/clients"))
}

async fn disable(
    State(c): State<Shared>,
    v: Visit,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Page {
    set_disabled(&c, &v, &f, id, true).await
}

async fn enable(
    State(c): State<Shared>,
    v: Visit,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Page {
    set_disabled(&c, &v, &f, id, false).await
}

async fn rotate(
    State(c): State<Shared>,
    v: Visit,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Page {
    let admin = v.poster(&f)?;
    let cid = id.clone();
    let secret = with_auth(&c, move |a| {
        let s = rotate_secret(a.store().as_ref(), a.hasher(), &cid).map_err(|e| e.to_string())?;
        a.forget_client(&cid);
        Ok(s)
    })
    .await?;
    ok(secret_page(
        admin,
        "Secret rotated: the old one no longer works.",
        &id,
        &secret,
    ))
}

async fn delete(
    State(c): State<Shared>,
    v: Visit,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Page {
    v.poster(&f)?;
    if f.get("confirm").map(String::as_str) != Some("yes") {
        return Err(failed(&ScimError::invalid_value(
            "tick 'sure' to delete the client",
        )));
    }
    with_auth(&c, move |a| {
        a.store().delete_client(&id).map_err(|e| e.to_string())?;
        a.forget_client(&id);
        Ok(())
    })
    .await?;
    Ok(see("/ui/clients"))
}

async fn rotate_keys(State(c): State<Shared>, v: Visit, Form(f): Form<Fields>) -> Page {
    v.poster(&f)?;
    let now = c.now();
    with_auth(&c, move |a| {
        scim_auth::keys::rotate_keys(a.store().as_ref(), now)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await?;
    // Tokens are signed with the new key from the next refresh of the key set.
    let _ = c.auth.maintain().await;
    Ok(see("/ui/clients"))
}
