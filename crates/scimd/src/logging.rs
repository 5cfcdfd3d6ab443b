//! Where scimd's log goes: stderr (filtered by `RUST_LOG`, default `info`) and,
//! with `--script-log FILE`, the interception scripts' log (target `scim_script`,
//! Gluu's scim_script.log) into a file of its own as well.

use std::path::Path;
use std::sync::Mutex;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The log target interception scripts write to.
pub(crate) const SCRIPT_TARGET: &str = "scim_script";

pub(crate) fn init(script_log: Option<&Path>) -> Result<(), String> {
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")));
    let file = match script_log {
        None => None,
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open the script log {}: {e}", path.display()))?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(Mutex::new(f))
                    .with_filter(Targets::new().with_target(SCRIPT_TARGET, LevelFilter::TRACE)),
            )
        }
    };
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))
}
