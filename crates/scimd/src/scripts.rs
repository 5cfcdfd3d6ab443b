//! `scimd scripts …`: interception scripts straight on the database, validated
//! by the same service calls as the admin API (running servers pick changes up
//! within 3 s).

use crate::config::DatabaseArgs;
use clap::{Args, Subcommand};
use scim_server::scripts::{new_script_def, script_summary, ScriptChange};
use scim_store::ScriptRecord;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub(crate) struct ScriptsArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(subcommand)]
    command: ScriptsCommand,
}

#[derive(Subcommand, Debug)]
enum ScriptsCommand {
    /// Add a script (refused with line and message if it does not compile or its
    /// init fails).
    Add {
        #[arg(long)]
        name: String,
        /// The Luau source file.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// Scripts run in ascending order (ties: by name).
        #[arg(long)]
        order: Option<i64>,
        /// Store it without running it.
        #[arg(long)]
        disabled: bool,
        /// A configuration property (`config` in every call); repeatable.
        #[arg(long = "property", value_name = "K=V", value_parser = parse_property)]
        properties: Vec<(String, String)>,
    },
    /// List the scripts in the order they run.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a script: source, properties, the last runtime error and its time.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a script; what is not given keeps its value (`--property` replaces
    /// all properties).
    Update {
        name: String,
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        #[arg(long)]
        order: Option<i64>,
        #[arg(long = "property", value_name = "K=V", value_parser = parse_property)]
        properties: Vec<(String, String)>,
    },
    /// Run a disabled script again.
    Enable { name: String },
    /// Keep a script stored but stop running it.
    Disable { name: String },
    /// Delete a script.
    Remove { name: String },
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

fn read_source(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn properties(given: Vec<(String, String)>) -> Option<BTreeMap<String, String>> {
    (!given.is_empty()).then(|| given.into_iter().collect())
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One line of `list`: name, order, enabled/disabled, last error if any.
fn line(r: &ScriptRecord) -> String {
    let state = if r.enabled { "enabled" } else { "disabled" };
    let error = match (&r.last_error, r.last_error_at) {
        (Some(e), Some(at)) => format!("\tlast error at {}: {e}", time(at)),
        (Some(e), None) => format!("\tlast error: {e}"),
        _ => String::new(),
    };
    format!("{}\t{}\t{state}{error}", r.name, r.order)
}

fn show(r: &ScriptRecord) -> String {
    let mut out = format!(
        "name: {}\norder: {}\nenabled: {}\ncreated: {}\nupdated: {}\n",
        r.name,
        r.order,
        r.enabled,
        time(r.created),
        time(r.updated)
    );
    out.push_str("properties:\n");
    for (k, v) in &r.properties {
        out.push_str(&format!("  {k}={v}\n"));
    }
    match (&r.last_error, r.last_error_at) {
        (Some(e), at) => out.push_str(&format!(
            "last error: {e}\nlast error at: {}\n",
            at.map(time).unwrap_or_default()
        )),
        (None, _) => out.push_str("last error: none\n"),
    }
    out.push_str("source:\n");
    out.push_str(&r.source);
    if !r.source.ends_with('\n') {
        out.push('\n');
    }
    out
}

pub(crate) fn run_scripts(args: ScriptsArgs) -> Result<(), String> {
    let settings = args.db.settings()?;
    let (service, _) = crate::open_service(&settings)?;
    let fail = |e: scim_proto::ScimError| e.detail;
    match args.command {
        ScriptsCommand::Add {
            name,
            file,
            order,
            disabled,
            properties: given,
        } => {
            let change = ScriptChange {
                order,
                enabled: Some(!disabled),
                source: Some(read_source(&file)?),
                properties: properties(given),
            };
            let def = new_script_def(Some(name), change).map_err(fail)?;
            let r = service.add_script(def).map_err(fail)?;
            println!("added {}", line(&r));
        }
        ScriptsCommand::List { json } => {
            let all = service.list_scripts().map_err(fail)?;
            if json {
                let list: Vec<_> = all.iter().map(script_summary).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                );
            } else {
                for r in &all {
                    println!("{}", line(r));
                }
            }
        }
        ScriptsCommand::Show { name, json } => {
            let r = service.script(&name).map_err(fail)?;
            if json {
                let v = scim_server::scripts::script_json(&r);
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print!("{}", show(&r));
            }
        }
        ScriptsCommand::Update {
            name,
            file,
            order,
            properties: given,
        } => {
            let change = ScriptChange {
                order,
                enabled: None,
                source: file.as_deref().map(read_source).transpose()?,
                properties: properties(given),
            };
            let r = service.update_script(&name, change).map_err(fail)?;
            println!("updated {}", line(&r));
        }
        ScriptsCommand::Enable { name } => {
            let r = service.enable_script(&name).map_err(fail)?;
            println!("enabled {}", r.name);
        }
        ScriptsCommand::Disable { name } => {
            let r = service.disable_script(&name).map_err(fail)?;
            println!("disabled {}", r.name);
        }
        ScriptsCommand::Remove { name } => {
            service.remove_script(&name).map_err(fail)?;
            println!("removed {name}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_are_key_value() {
        assert_eq!(
            parse_property("url=https://x/?a=b"),
            Ok(("url".into(), "https://x/?a=b".into()))
        );
        assert_eq!(
            parse_property("empty="),
            Ok(("empty".into(), String::new()))
        );
        assert!(parse_property("novalue").is_err());
        assert!(parse_property("=v").is_err());
    }
}
