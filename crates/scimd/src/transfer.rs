//! `scimd migrate`, `scimd export` and `scimd import`: moving a deployment between
//! databases (SQLite → PostgreSQL, or back) without losing anything.
//!
//! The export is JSON lines, streamed: a header line, one line per resource
//! (document, id, version, timestamps, password hash, group members in order),
//! the interception scripts, then the authorization server's state (the client-secret key, signing keys,
//! clients). Index rows are not exported: import derives them from the documents.
//! The change feed is not exported either: its positions belong to one database,
//! so feed consumers start over against the new one.

use crate::config::{DatabaseArgs, Settings};
use base64::Engine;
use chrono::{DateTime, Utc};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use scim_proto::schema::custom::CustomAttribute;
use scim_proto::schema::{RegistryOptions, SchemaRegistry, SharedRegistry};
use scim_store::clients::{ClientRecord, SigningKeyRecord};
use scim_store::{ExportRecord, Query, ScriptRecord, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, BufWriter, Write as _};
use std::sync::Arc;

/// The version of the export format this build writes and reads.
const FORMAT: u32 = 1;

#[derive(Args, Debug)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    db: DatabaseArgs,
}

#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// File to write, or `-` for standard output.
    #[arg(long, default_value = "-")]
    out: String,
}

#[derive(Args, Debug)]
pub(crate) struct ImportArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// File to read, or `-` for standard input.
    #[arg(long = "in", default_value = "-")]
    input: String,
    /// Resources written per transaction.
    #[arg(long, default_value_t = 500)]
    batch: usize,
}

/// One line of an export.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Line {
    Header {
        format: u32,
        /// How many resources follow (for the progress bar).
        resources: u64,
        exported: DateTime<Utc>,
    },
    /// A custom user attribute: before the resources, which may use it.
    CustomAttribute(CustomAttribute),
    /// An interception script, with its last error.
    Script(ScriptRecord),
    Resource(ExportRecord),
    ServerSecret {
        name: String,
        value: String,
    },
    SigningKey(KeyLine),
    Client(ClientRecord),
}

#[derive(Debug, Serialize, Deserialize)]
struct KeyLine {
    kid: String,
    alg: String,
    /// PKCS#8 DER, base64.
    private_key: String,
    public_jwk: String,
    created: DateTime<Utc>,
    retired: Option<DateTime<Utc>>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl From<SigningKeyRecord> for KeyLine {
    fn from(k: SigningKeyRecord) -> Self {
        KeyLine {
            kid: k.kid,
            alg: k.alg,
            private_key: b64().encode(&k.private_key),
            public_jwk: k.public_jwk,
            created: k.created,
            retired: k.retired,
        }
    }
}

impl TryFrom<KeyLine> for SigningKeyRecord {
    type Error = String;
    fn try_from(k: KeyLine) -> Result<Self, String> {
        Ok(SigningKeyRecord {
            private_key: b64()
                .decode(&k.private_key)
                .map_err(|e| format!("signing key {}: {e}", k.kid))?,
            kid: k.kid,
            alg: k.alg,
            public_jwk: k.public_jwk,
            created: k.created,
            retired: k.retired,
        })
    }
}

pub(crate) fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    // Drawn on stderr, and only when it is a terminal.
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}

/// `scimd migrate`: apply the schema migrations and exit.
pub(crate) fn migrate(args: MigrateArgs) -> Result<(), String> {
    let settings = args.db.settings()?;
    let report = scim_store::migrate(&settings.database_url()).map_err(crate::store_error)?;
    eprintln!("scimd: {report}");
    Ok(())
}

fn registry(settings: &Settings) -> Arc<SharedRegistry> {
    Arc::new(SharedRegistry::new(SchemaRegistry::build(
        &settings.registry_options(),
    )))
}

/// `scimd export`: every resource and the authorization server's state as JSON lines.
pub(crate) fn export(args: ExportArgs) -> Result<(), String> {
    let settings = args.db.settings()?;
    let registry = registry(&settings);
    let scim_store::Stores {
        resources: store,
        clients,
        ..
    } = crate::open_stores(&settings, registry.clone())?;
    let out: Box<dyn std::io::Write> = if args.out == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            std::fs::File::create(&args.out)
                .map_err(|e| format!("cannot create {}: {e}", args.out))?,
        )
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let expected = count_resources(store.as_ref(), &registry.load())?;
    let bar = progress(expected, "export");
    let io = |e: std::io::Error| format!("writing {}: {e}", args.out);
    write_line(
        &mut out,
        &Line::Header {
            format: FORMAT,
            resources: expected,
            exported: Utc::now(),
        },
    )
    .map_err(io)?;
    let custom = store
        .custom_attributes()
        .map_err(|e| format!("reading custom attributes: {e}"))?;
    for attr in custom {
        write_line(&mut out, &Line::CustomAttribute(attr)).map_err(io)?;
    }
    let scripts = store
        .scripts()
        .map_err(|e| format!("reading interception scripts: {e}"))?;
    let script_count = scripts.len();
    for s in scripts {
        write_line(&mut out, &Line::Script(s)).map_err(io)?;
    }
    let mut write_error = None;
    let n = store
        .export(&mut |rec| {
            if let Err(e) = write_line(&mut out, &Line::Resource(rec)) {
                write_error = Some(e.to_string());
                return Err(StoreError::Backend("export output failed".into()));
            }
            bar.inc(1);
            Ok(())
        })
        .map_err(|e| match write_error.take() {
            Some(w) => format!("writing {}: {w}", args.out),
            None => format!("reading the database: {e}"),
        })?;
    bar.finish_and_clear();
    let client_list = clients
        .list_clients()
        .map_err(|e| format!("reading clients: {e}"))?;
    if !client_list.is_empty() {
        // Client secrets are stored as keyed hashes: the key must move with them.
        // (A candidate is needed by the get-or-create call; clients exist, so the
        // key does too and the candidate is not stored.)
        let candidate =
            scim_auth::secrets::random_bytes(32).map_err(|e| format!("random bytes: {e}"))?;
        let key = clients
            .server_secret(scim_auth::secrets::HMAC_KEY_NAME, &candidate)
            .map_err(|e| format!("reading the client-secret key: {e}"))?;
        write_line(
            &mut out,
            &Line::ServerSecret {
                name: scim_auth::secrets::HMAC_KEY_NAME.to_string(),
                value: b64().encode(key),
            },
        )
        .map_err(io)?;
    }
    let keys = clients
        .signing_keys()
        .map_err(|e| format!("reading signing keys: {e}"))?;
    let key_count = keys.len();
    for k in keys {
        write_line(&mut out, &Line::SigningKey(k.into())).map_err(io)?;
    }
    let client_count = client_list.len();
    for c in client_list {
        write_line(&mut out, &Line::Client(c)).map_err(io)?;
    }
    out.flush().map_err(io)?;
    eprintln!("scimd: exported {n} resources, {script_count} scripts, {client_count} clients, {key_count} signing keys");
    Ok(())
}

fn write_line(out: &mut impl std::io::Write, line: &Line) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")
}

fn count_resources(store: &dyn Store, registry: &SchemaRegistry) -> Result<u64, String> {
    let mut total = 0;
    for rt in registry.resource_types() {
        let page = store
            .search(rt, &Query::default())
            .map_err(|e| format!("counting {}: {e}", rt.name))?;
        total += page.total;
    }
    Ok(total)
}

/// `scimd import`: write an export into this database, in batched transactions.
/// Running it again (say after an interruption) gives the same result.
pub(crate) fn import(args: ImportArgs) -> Result<(), String> {
    let settings = args.db.settings()?;
    let registry = registry(&settings);
    let scim_store::Stores {
        resources: store,
        clients,
        ..
    } = crate::open_stores(&settings, registry.clone())?;
    // Index rows are derived through the registry: it must know the target's
    // custom attributes, and those the export brings.
    let reload = || -> Result<(), String> {
        let custom = store
            .custom_attributes()
            .map_err(|e| format!("reading custom attributes: {e}"))?;
        registry.replace(SchemaRegistry::build(&RegistryOptions {
            devices: settings.devices,
            custom: Some((settings.custom_schema_urn.clone(), custom)),
        }));
        Ok(())
    };
    reload()?;
    let input: Box<dyn std::io::Read> = if args.input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(&args.input)
                .map_err(|e| format!("cannot open {}: {e}", args.input))?,
        )
    };
    let reader = BufReader::with_capacity(1 << 20, input);
    let batch_size = args.batch.max(1);
    let mut batch: Vec<ExportRecord> = Vec::with_capacity(batch_size);
    let mut bar = None;
    let (mut resources, mut client_count, mut key_count) = (0u64, 0u64, 0u64);
    let mut script_count = 0u64;
    let flush = |batch: &mut Vec<ExportRecord>, bar: &Option<ProgressBar>| -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        store
            .import(batch)
            .map_err(|e| format!("writing resources: {e}"))?;
        if let Some(b) = bar {
            b.inc(batch.len() as u64);
        }
        batch.clear();
        Ok(())
    };
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("reading {}: {e}", args.input))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(&line)
            .map_err(|e| format!("{} line {}: {e}", args.input, n + 1))?;
        match parsed {
            Line::Header {
                format, resources, ..
            } => {
                if format != FORMAT {
                    return Err(format!(
                        "{} is export format {format}; this scimd reads format {FORMAT}",
                        args.input
                    ));
                }
                bar = Some(progress(resources, "import"));
            }
            _ if n == 0 => {
                return Err(format!(
                    "{} does not start with an export header",
                    args.input
                ))
            }
            Line::CustomAttribute(attr) => {
                flush(&mut batch, &bar)?;
                match store.add_custom_attribute(&attr) {
                    Ok(()) | Err(StoreError::Uniqueness) => {}
                    Err(e) => return Err(format!("writing custom attribute {}: {e}", attr.name)),
                }
                reload()?;
            }
            // As exported (not checked again): a restore, not an operator's change.
            Line::Script(s) => match store.create_script(&s) {
                Ok(()) => script_count += 1,
                Err(StoreError::Uniqueness) => store
                    .replace_script(&s)
                    .map_err(|e| format!("writing script {}: {e}", s.name))?,
                Err(e) => return Err(format!("writing script {}: {e}", s.name)),
            },
            Line::Resource(rec) => {
                resources += 1;
                batch.push(rec);
                if batch.len() >= batch_size {
                    flush(&mut batch, &bar)?;
                }
            }
            Line::ServerSecret { name, value } => {
                flush(&mut batch, &bar)?;
                let value = b64()
                    .decode(&value)
                    .map_err(|e| format!("server secret {name}: {e}"))?;
                let stored = clients
                    .server_secret(&name, &value)
                    .map_err(|e| format!("writing server secret {name}: {e}"))?;
                if stored != value {
                    return Err(format!(
                        "the target database already has a different '{name}' key (a scimd \
                         has started on it); import into a database before the first start, \
                         or the imported clients' secrets would not verify"
                    ));
                }
            }
            Line::SigningKey(k) => {
                let k = SigningKeyRecord::try_from(k)?;
                match clients.add_signing_key(&k) {
                    Ok(()) => key_count += 1,
                    Err(StoreError::Uniqueness) => {}
                    Err(e) => return Err(format!("writing signing key {}: {e}", k.kid)),
                }
            }
            Line::Client(c) => match clients.create_client(&c) {
                Ok(()) => client_count += 1,
                Err(StoreError::Uniqueness) => {}
                Err(e) => return Err(format!("writing client {}: {e}", c.id)),
            },
        }
    }
    flush(&mut batch, &bar)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    eprintln!(
        "scimd: imported {resources} resources, {script_count} new scripts, {client_count} new clients, {key_count} new signing keys"
    );
    Ok(())
}
