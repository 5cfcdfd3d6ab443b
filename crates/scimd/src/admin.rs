//! `scimd attributes …` and `scimd devices import`: administration straight on
//! the database (running servers pick the changes up within seconds).

use crate::config::DatabaseArgs;
use clap::{Args, Subcommand};
use scim_proto::schema::custom::{CustomAttribute, CustomType};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub(crate) struct AttributesArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(subcommand)]
    command: AttributesCommand,
}

#[derive(Subcommand, Debug)]
enum AttributesCommand {
    /// Register a custom attribute; it is published at once.
    Add {
        #[arg(long)]
        name: String,
        /// string, numeric, boolean or date.
        #[arg(long = "type")]
        kind: String,
        #[arg(long)]
        multi_valued: bool,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the custom attributes.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a custom attribute; with --force, users' values of it are deleted too.
    Remove {
        name: String,
        #[arg(long)]
        force: bool,
    },
}

pub(crate) fn run_attributes(args: AttributesArgs) -> Result<(), String> {
    let settings = args.db.settings()?;
    let (service, _) = crate::open_service(&settings)?;
    let fail = |e: scim_proto::ScimError| e.detail;
    match args.command {
        AttributesCommand::Add {
            name,
            kind,
            multi_valued,
            description,
        } => {
            let attr = CustomAttribute {
                name,
                kind: kind.parse::<CustomType>().map_err(fail)?,
                multi_valued,
                description,
            };
            service.add_custom_attribute(&attr).map_err(fail)?;
            println!("added {} ({})", attr.name, attr.kind.as_str());
        }
        AttributesCommand::List { json } => {
            let attrs = service.custom_attributes().map_err(fail)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&attrs).unwrap_or_default()
                );
            } else {
                for a in attrs {
                    let multi = if a.multi_valued {
                        " (multi-valued)"
                    } else {
                        ""
                    };
                    println!("{}\t{}{multi}\t{}", a.name, a.kind.as_str(), a.description);
                }
            }
        }
        AttributesCommand::Remove { name, force } => {
            let cleared = service
                .remove_custom_attribute(&name, force)
                .map_err(fail)?;
            println!("removed {name}; values deleted from {cleared} users");
        }
    }
    Ok(())
}

#[derive(Args, Debug)]
pub(crate) struct DevicesArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(subcommand)]
    command: DevicesCommand,
}

#[derive(Subcommand, Debug)]
enum DevicesCommand {
    /// Enrol devices from a JSON array or JSON lines (`-` for standard input).
    /// Each device names its type by `schemas` (FidoDevice / Fido2Device URN)
    /// and its owner by `userId`.
    Import {
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
    },
}

fn devices_from(text: &str) -> Result<Vec<Value>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).map_err(|e| format!("not a JSON array: {e}"));
    }
    BufReader::new(text.as_bytes())
        .lines()
        .enumerate()
        .filter(|(_, l)| l.as_ref().is_ok_and(|l| !l.trim().is_empty()))
        .map(|(i, l)| {
            let l = l.map_err(|e| e.to_string())?;
            serde_json::from_str(&l).map_err(|e| format!("line {}: {e}", i + 1))
        })
        .collect()
}

fn endpoint_of(device: &Value) -> Option<&'static str> {
    let schemas = device.get("schemas")?.as_array()?;
    if schemas
        .iter()
        .any(|s| s == scim_proto::schema::FIDO2_DEVICE_SCHEMA)
    {
        Some("Fido2Devices")
    } else if schemas
        .iter()
        .any(|s| s == scim_proto::schema::FIDO_DEVICE_SCHEMA)
    {
        Some("FidoDevices")
    } else {
        None
    }
}

pub(crate) fn run_devices(args: DevicesArgs) -> Result<(), String> {
    let settings = args.db.settings()?;
    let (service, _) = crate::open_service(&settings)?;
    let DevicesCommand::Import { input } = args.command;
    let mut text = String::new();
    if input.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
    } else {
        text = std::fs::read_to_string(&input)
            .map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    }
    let devices = devices_from(&text)?;
    let ctx = service.local_ctx();
    let mut enrolled = 0;
    for (i, d) in devices.iter().enumerate() {
        let endpoint = endpoint_of(d)
            .ok_or_else(|| format!("device {}: schemas names no device type", i + 1))?;
        let rt = service
            .resource_type(endpoint)
            .ok_or_else(|| "device types are disabled (--no-devices)".to_string())?;
        let r = service
            .enrol_device(&rt, d, &ctx)
            .map_err(|e| format!("device {}: {}", i + 1, e.detail))?;
        println!("{}\t{}", rt.name, r.doc["id"].as_str().unwrap_or_default());
        enrolled += 1;
    }
    eprintln!("enrolled {enrolled} devices");
    Ok(())
}

#[derive(Args, Debug)]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// Only writes of this resource id.
    #[arg(long)]
    resource: Option<String>,
    /// Only writes made by this client id (or admin principal).
    #[arg(long)]
    client: Option<String>,
    /// Only writes at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Most entries shown, newest first.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

/// `scimd audit`: who wrote what (the change log's audit columns).
pub(crate) fn run_audit(args: AuditArgs) -> Result<(), String> {
    let settings = args.db.settings()?;
    let (service, _) = crate::open_service(&settings)?;
    let since = args
        .since
        .as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| format!("--since {t}: {e}"))
        })
        .transpose()?;
    let q = scim_store::WriteQuery {
        resource: args.resource,
        principal: args.client,
        since,
        limit: args.limit.clamp(1, scim_store::MAX_AUDIT_ENTRIES),
    };
    let entries = service.store.writes(&q).map_err(crate::store_error)?;
    if args.json {
        for e in &entries {
            println!("{}", serde_json::to_string(e).map_err(|e| e.to_string())?);
        }
        return Ok(());
    }
    println!("at\top\ttype\tid\tversion\tclient\trequest\tsource");
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for e in &entries {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            e.at,
            e.op,
            e.resource_type,
            e.resource_id,
            e.version,
            dash(&e.principal),
            dash(&e.request_id),
            dash(&e.source_ip)
        );
    }
    Ok(())
}
