//! `scimd admins add`: make a SCIM user a console administrator (a member of
//! the admin group, with a password), creating the user and the group if they
//! do not exist. Through the service, so the password is hashed (Argon2id) and
//! the writes are on the audit trail as `admins`.

use crate::config::DatabaseArgs;
use clap::{Args, Subcommand};
use scim_proto::messages::{SearchRequest, PATCH_OP};
use scim_proto::schema::{GROUP_SCHEMA, USER_SCHEMA};
use scim_proto::ScimError;
use scim_server::service::{RequestCtx, Service};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Shortest console password accepted.
const MIN_PASSWORD: usize = 8;

#[derive(Subcommand, Debug)]
pub(crate) enum AdminsCommand {
    /// Create or promote a console administrator.
    Add(AddArgs),
}

#[derive(Args, Debug)]
pub(crate) struct AddArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// The SCIM user's userName (created when there is none).
    #[arg(long)]
    user_name: String,
    /// File holding the password (its first line; never on the command line).
    #[arg(long)]
    password_file: PathBuf,
    /// The admin group (as `scimd serve --admin-group`).
    #[arg(long, env = "SCIMD_ADMIN_GROUP", default_value = "scimd-admins")]
    admin_group: String,
}

pub(crate) fn run(cmd: AdminsCommand) -> Result<(), String> {
    match cmd {
        AdminsCommand::Add(args) => add(args),
    }
}

fn add(args: AddArgs) -> Result<(), String> {
    let password = read_password(&args.password_file)?;
    let settings = args.db.settings()?;
    let (service, _) = crate::open_service(&settings)?;
    let mut ctx = service.local_ctx();
    ctx.actor = scim_store::Actor::system("admins");
    let err = |e: ScimError| e.detail;
    let user_id = upsert_user(&service, &ctx, &args.user_name, &password).map_err(err)?;
    let group_id = ensure_member(&service, &ctx, &args.admin_group, &user_id).map_err(err)?;
    println!(
        "{} ({user_id}) is a console administrator: member of {} ({group_id})",
        args.user_name, args.admin_group
    );
    Ok(())
}

fn read_password(path: &PathBuf) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --password-file {}: {e}", path.display()))?;
    let pw = text.lines().next().unwrap_or("").to_string();
    if pw.chars().count() < MIN_PASSWORD {
        return Err(format!(
            "the password in {} is shorter than {MIN_PASSWORD} characters",
            path.display()
        ));
    }
    Ok(pw)
}

/// The id of the only resource at `endpoint` matching `filter`, if any.
fn find(service: &Service, endpoint: &str, filter: String) -> Result<Option<String>, ScimError> {
    let rt = service
        .resource_type(endpoint)
        .ok_or_else(|| ScimError::internal(format!("no {endpoint} type")))?;
    let req = SearchRequest {
        filter: Some(filter),
        count: Some(1),
        ..SearchRequest::default()
    };
    let ctx = service.local_ctx();
    let list = service.search(&service.prepare_search(&rt, &req, &ctx)?, &ctx)?;
    Ok(list["Resources"][0]["id"].as_str().map(str::to_string))
}

fn literal(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn upsert_user(
    service: &Service,
    ctx: &RequestCtx,
    user_name: &str,
    password: &str,
) -> Result<String, ScimError> {
    let rt = service
        .resource_type("Users")
        .ok_or_else(|| ScimError::internal("no User type"))?;
    match find(
        service,
        "Users",
        format!("userName eq {}", literal(user_name)),
    )? {
        Some(id) => {
            let body = json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "path": "password", "value": password},
                {"op": "replace", "path": "active", "value": true}]});
            service.patch(&rt, &id, &body, None, ctx)?;
            Ok(id)
        }
        None => {
            let doc = json!({"schemas": [USER_SCHEMA], "userName": user_name,
                "password": password, "active": true});
            let r = service.create(&rt, &doc, ctx)?;
            Ok(r.doc["id"].as_str().unwrap_or_default().to_string())
        }
    }
}

fn ensure_member(
    service: &Service,
    ctx: &RequestCtx,
    group: &str,
    user_id: &str,
) -> Result<String, ScimError> {
    let rt = service
        .resource_type("Groups")
        .ok_or_else(|| ScimError::internal("no Group type"))?;
    match find(
        service,
        "Groups",
        format!("displayName eq {}", literal(group)),
    )? {
        Some(id) => {
            let member = vec![user_id.to_string()];
            if service
                .store
                .members_among(&id, &member)
                .map_err(scim_server::service::store_error)?
                .is_empty()
            {
                let body = json!({"schemas": [PATCH_OP], "Operations": [
                    {"op": "add", "path": "members", "value": [{"value": user_id}]}]});
                service.patch(&rt, &id, &body, None, ctx)?;
            }
            Ok(id)
        }
        None => {
            let doc = json!({"schemas": [GROUP_SCHEMA], "displayName": group,
                "members": [{"value": user_id}]});
            let r = service.create(&rt, &doc, ctx)?;
            Ok(r.doc["id"].as_str().unwrap_or_default().to_string())
        }
    }
}
