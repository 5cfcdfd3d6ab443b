//! `scimd clients …` and `scimd keys …`: administration of the built-in
//! authorization server, straight on the database (works while servers run).

use crate::config::{DatabaseArgs, Settings};
use chrono::Utc;
use clap::{Args, Subcommand};
use scim_auth::admin::{client_json, create_client, parse_scopes, rotate_secret, ORIGIN_CLI};
use scim_auth::keys::rotate_keys;
use scim_auth::secrets::SecretHasher;
use scim_auth::ScopePolicy;
use scim_store::clients::ClientStore;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Args, Debug)]
pub(crate) struct ClientsArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(subcommand)]
    command: ClientsCommand,
}

#[derive(Subcommand, Debug)]
enum ClientsCommand {
    /// Register a client; prints its id and secret (the secret is shown only now).
    Create {
        #[arg(long)]
        name: String,
        /// Scopes, space- or comma-separated: short names (users.read, bulk, …),
        /// full scope strings, or `all`.
        #[arg(long, default_value = "")]
        scope: String,
        /// The client stops working after this many days.
        #[arg(long, value_name = "DAYS")]
        expires_in: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// List clients.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one client.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Disable a client: no new tokens, and its live tokens stop working.
    Disable { id: String },
    /// Enable a disabled client (also lifts a lock-out).
    Enable { id: String },
    /// Delete a client; its live tokens stop working.
    Delete { id: String },
    /// Replace a client's secret; prints the new one (shown only now).
    RotateSecret {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub(crate) struct KeysArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// List signing keys (public parts only).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Make a new signing key; older keys keep verifying until their tokens expire.
    Rotate,
}

/// The authorization server's store on the configured database (SQLite or
/// PostgreSQL, as `scimd serve` would open it).
fn open(db: DatabaseArgs) -> Result<(Arc<dyn ClientStore>, Settings), String> {
    let settings = db.settings()?;
    let store = scim_store::open_clients(&settings.database_url(), &settings.open_options())
        .map_err(crate::store_error)?;
    Ok((store, settings))
}

fn not_found(id: &str) -> impl Fn(scim_store::StoreError) -> String + '_ {
    move |e| match e {
        scim_store::StoreError::NotFound => format!("no client '{id}'"),
        other => other.to_string(),
    }
}

fn print(v: &Value, as_json: bool, text: impl FnOnce() -> String) {
    if as_json {
        println!("{v}");
    } else {
        println!("{}", text());
    }
}

fn describe(v: &Value) -> String {
    let field = |k: &str| match &v[k] {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    format!(
        "client_id: {}\nname:      {}\nstatus:    {}\nscopes:    {}\ncreated:   {}\nexpires:   {}\norigin:    {}",
        field("client_id"),
        field("name"),
        field("status"),
        field("scopes"),
        field("created"),
        field("expires"),
        field("origin")
    )
}

pub(crate) fn run_clients(args: ClientsArgs) -> Result<(), String> {
    let (store, settings) = open(args.db)?;
    let now = Utc::now();
    let err = |e: &dyn std::fmt::Display| e.to_string();
    match args.command {
        ClientsCommand::Create {
            name,
            scope,
            expires_in,
            json,
        } => {
            let policy = ScopePolicy::new(&settings.auth.scope_prefix);
            let scopes = parse_scopes(&policy, &scope)?;
            let hasher = SecretHasher::load(store.as_ref()).map_err(|e| err(&e))?;
            let expires = expires_in.map(|d| now + chrono::Duration::days(i64::from(d)));
            let (record, secret) = create_client(
                store.as_ref(),
                &hasher,
                &name,
                scopes,
                now,
                expires,
                ORIGIN_CLI,
            )
            .map_err(|e| err(&e))?;
            let mut v = client_json(&record, now);
            v["client_secret"] = json!(secret);
            print(&v, json, || {
                format!(
                    "{}\nclient_secret: {secret}\n\nThe secret is shown only now: store it safely.",
                    describe(&v)
                )
            });
        }
        ClientsCommand::List { json } => {
            let clients = store.list_clients().map_err(|e| err(&e))?;
            let list: Vec<Value> = clients.iter().map(|c| client_json(c, now)).collect();
            print(&Value::Array(list.clone()), json, || {
                if list.is_empty() {
                    return "no clients".into();
                }
                list.iter()
                    .map(|c| {
                        format!(
                            "{}  {:<8}  {}  [{}]",
                            c["client_id"].as_str().unwrap_or_default(),
                            c["status"].as_str().unwrap_or_default(),
                            c["name"].as_str().unwrap_or_default(),
                            c["scopes"].as_array().map(|a| a.len()).unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ClientsCommand::Show { id, json } => {
            let c = store
                .get_client(&id)
                .map_err(|e| err(&e))?
                .ok_or_else(|| format!("no client '{id}'"))?;
            let v = client_json(&c, now);
            print(&v, json, || describe(&v));
        }
        ClientsCommand::Disable { id } => {
            store
                .set_client_disabled(&id, true)
                .map_err(not_found(&id))?;
            println!("client {id} disabled");
        }
        ClientsCommand::Enable { id } => {
            store
                .set_client_disabled(&id, false)
                .map_err(not_found(&id))?;
            println!("client {id} enabled");
        }
        ClientsCommand::Delete { id } => {
            store.delete_client(&id).map_err(not_found(&id))?;
            println!("client {id} deleted");
        }
        ClientsCommand::RotateSecret { id, json } => {
            let hasher = SecretHasher::load(store.as_ref()).map_err(|e| err(&e))?;
            let secret = rotate_secret(store.as_ref(), &hasher, &id).map_err(|e| match e {
                scim_auth::AuthError::Store(s) => not_found(&id)(s),
                other => other.to_string(),
            })?;
            let v = json!({"client_id": id, "client_secret": secret});
            print(&v, json, || {
                format!("client_id: {id}\nclient_secret: {secret}\n\nThe secret is shown only now: store it safely.")
            });
        }
    }
    Ok(())
}

pub(crate) fn run_keys(args: KeysArgs) -> Result<(), String> {
    let (store, _) = open(args.db)?;
    match args.command {
        KeysCommand::List { json } => {
            let keys = store.signing_keys().map_err(|e| e.to_string())?;
            let list: Vec<Value> = keys
                .iter()
                .map(|k| {
                    json!({
                        "kid": k.kid,
                        "alg": k.alg,
                        "created": k.created.to_rfc3339(),
                        "retired": k.retired.map(|r| r.to_rfc3339()),
                    })
                })
                .collect();
            print(&Value::Array(list.clone()), json, || {
                list.iter()
                    .map(|k| {
                        format!(
                            "{}  {}  created {}  {}",
                            k["kid"].as_str().unwrap_or_default(),
                            k["alg"].as_str().unwrap_or_default(),
                            k["created"].as_str().unwrap_or_default(),
                            k["retired"]
                                .as_str()
                                .map(|r| format!("retired {r}"))
                                .unwrap_or_else(|| "active".into())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KeysCommand::Rotate => {
            let key = rotate_keys(store.as_ref(), Utc::now()).map_err(|e| e.to_string())?;
            println!(
                "new signing key {}; running servers switch to it within 30 s",
                key.kid
            );
        }
    }
    Ok(())
}
