//! `scimd sync …`: test a connector, start (or execute) a run, show runs. The
//! runs are the database's: a serving scimd and this command see the same ones,
//! and the database keeps a mapping to one open run whoever starts it.

use super::{engine, load, SyncDir};
use crate::config::DatabaseArgs;
use clap::{Args, Subcommand};
use scim_store::sync::RunRecord;
use scim_sync_engine::remote::{test_connector, TestResult};
use scim_sync_engine::view::{run_json, Progress, Summaries};
use scim_sync_engine::{Engine, EngineError, RunKind};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub(crate) struct SyncArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// Directory of the connectors and sync.json (else the config file's sync-dir).
    #[arg(long, env = "SCIMD_SYNC_DIR", global = true)]
    sync_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: SyncCommand,
}

#[derive(Subcommand, Debug)]
enum SyncCommand {
    /// Test a connector: discover the remote and search its Users.
    Test {
        /// The connector's name.
        connector: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reconcile a mapping. Without --wait the run is queued for the serving
    /// scimd (it starts within seconds); with --wait this command executes it.
    Recon {
        mapping: String,
        /// Report what would happen, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Execute the run here, with a progress bar and a summary at the end.
        #[arg(long)]
        wait: bool,
    },
    /// Reconcile only what changed since the mapping's last successful run.
    Live {
        mapping: String,
        #[arg(long)]
        wait: bool,
    },
    /// One run (by id), or the latest run of each mapping.
    Status {
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The most recent runs.
    Runs {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

pub(crate) fn run_sync(args: SyncArgs) -> Result<(), String> {
    let settings = args.db.settings()?;
    let dir = args
        .sync_dir
        .or_else(|| settings.sync_dir.clone())
        .ok_or("no sync directory: give --sync-dir, SCIMD_SYNC_DIR or sync-dir in the config")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    if let SyncCommand::Test { connector, json } = &args.command {
        let connectors = scim_sync_engine::ConnectorDir::load(&dir)?;
        let c = connectors
            .get(connector)
            .ok_or_else(|| format!("no connector named '{connector}' in {}", dir.display()))?;
        let result = runtime.block_on(test_connector(&c, &dir));
        return report_test(&result, *json);
    }
    let (service, _) = crate::open_service(&settings)?;
    let sync = load(&dir, &service.registry())?;
    let engine = engine_of(&sync, &service)?;
    let engine_ref = &engine;
    let result = runtime.block_on(async move {
        let engine = engine_ref;
        match args.command {
            SyncCommand::Test { .. } => Ok(()),
            SyncCommand::Recon {
                mapping,
                dry_run,
                wait,
            } => start(engine, &mapping, RunKind::Recon, dry_run, wait).await,
            SyncCommand::Live { mapping, wait } => {
                start(engine, &mapping, RunKind::LiveSync, false, wait).await
            }
            SyncCommand::Status { id, json } => status(engine, id.as_deref(), json).await,
            SyncCommand::Runs { limit } => {
                let runs = engine.recent(limit).await.map_err(|e| e.to_string())?;
                print!("{}", runs_table(&runs));
                Ok(())
            }
        }
    });
    // The stores go last, on this thread: PostgreSQL's synchronous clients must not
    // be dropped on an async worker, and tasks the runtime still holds may keep
    // clones until it is gone.
    drop(runtime);
    drop(engine);
    drop(service);
    result
}

fn engine_of(
    sync: &SyncDir,
    service: &std::sync::Arc<scim_server::service::Service>,
) -> Result<Engine, String> {
    engine(sync, service).ok_or_else(|| format!("{} has no sync.json", sync.dir().display()))
}

async fn start(
    engine: &Engine,
    mapping: &str,
    kind: RunKind,
    dry_run: bool,
    wait: bool,
) -> Result<(), String> {
    let run = match engine.start(mapping, kind, dry_run, wait).await {
        Ok(r) => r,
        Err(EngineError::AlreadyOpen(open)) => {
            return Err(format!(
                "mapping '{mapping}' already has run {} ({}) in progress",
                open.id, open.state
            ))
        }
        Err(e) => return Err(e.to_string()),
    };
    if !wait {
        println!(
            "{}  queued (a serving scimd with this sync directory executes it)",
            run.id
        );
        return Ok(());
    }
    let run = follow(engine, &run.id).await?;
    print!("{}", summary_table(&run));
    match run.state.as_str() {
        "SUCCESS" | "WAITING" => Ok(()),
        other => Err(format!("run {} ended {other}", run.id)),
    }
}

/// Wait for the run, drawing its progress.
async fn follow(engine: &Engine, id: &str) -> Result<RunRecord, String> {
    let bar = crate::transfer::progress(0, "reconciling");
    let ticker = {
        let (engine, id, bar) = (engine.clone(), id.to_string(), bar.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(run) = engine.get(&id).await {
                    let p: Progress = serde_json::from_str(&run.progress).unwrap_or_default();
                    bar.set_length(p.source.total + p.target.total);
                    bar.set_position(p.source.processed + p.target.processed);
                    bar.set_message(run.stage.clone());
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let run = engine.wait(id).await.map_err(|e| e.to_string());
    ticker.abort();
    bar.finish_and_clear();
    run
}

async fn status(engine: &Engine, id: Option<&str>, json: bool) -> Result<(), String> {
    let runs = match id {
        Some(id) => vec![engine.get(id).await.map_err(|e| e.to_string())?],
        None => {
            let recent = engine.recent(200).await.map_err(|e| e.to_string())?;
            let mut latest: Vec<RunRecord> = Vec::new();
            for r in recent {
                if !latest.iter().any(|l| l.mapping == r.mapping) {
                    latest.push(r);
                }
            }
            latest
        }
    };
    if json {
        let list: Vec<_> = runs.iter().map(run_json).collect();
        let text = serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        for r in &runs {
            print!("{}", summary_table(r));
        }
    }
    Ok(())
}

fn report_test(result: &TestResult, json: bool) -> Result<(), String> {
    if json {
        let text = serde_json::to_string_pretty(&vec![result])
            .map_err(|e| format!("cannot write JSON: {e}"))?;
        println!("{text}");
    } else {
        print!("{}", test_table(result));
    }
    if result.ok {
        Ok(())
    } else {
        Err(format!("connector '{}' failed its test", result.name))
    }
}

/// Rows as aligned columns, the last column unpadded.
fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
                }
            }
            format!("{}\n", line.trim_end())
        })
        .collect()
}

fn test_table(r: &TestResult) -> String {
    let types = if r.object_types.is_empty() {
        "-".to_string()
    } else {
        r.object_types.join(",")
    };
    columns(&[
        ["NAME", "ENABLED", "OBJECT TYPES", "OK", "ERROR"]
            .map(str::to_string)
            .to_vec(),
        vec![
            r.name.clone(),
            r.enabled.to_string(),
            types,
            r.ok.to_string(),
            r.error.clone().unwrap_or_default(),
        ],
    ])
}

fn runs_table(runs: &[RunRecord]) -> String {
    let mut rows = vec![[
        "ID", "MAPPING", "STATE", "STAGE", "DRY RUN", "STARTED", "ENDED",
    ]
    .map(str::to_string)
    .to_vec()];
    for r in runs {
        let v = run_json(r);
        let text = |k: &str| v[k].as_str().unwrap_or("-").to_string();
        rows.push(vec![
            r.id.clone(),
            r.mapping.clone(),
            r.state.clone(),
            r.stage.clone(),
            r.dry_run.to_string(),
            text("started"),
            text("ended"),
        ]);
    }
    columns(&rows)
}

/// A run's state and counts: what `recon --wait` prints at the end.
fn summary_table(r: &RunRecord) -> String {
    let v = run_json(r);
    let summaries: Summaries = serde_json::from_str(&r.summaries).unwrap_or_default();
    let p: Progress = serde_json::from_str(&r.progress).unwrap_or_default();
    let mut out = format!(
        "run {}  mapping {}  {}{}  stage {}\n",
        r.id,
        r.mapping,
        r.state,
        if r.dry_run { " (dry run)" } else { "" },
        r.stage
    );
    out.push_str(&format!(
        "source {}/{}  target {}/{}\n",
        p.source.processed, p.source.total, p.target.processed, p.target.total
    ));
    let mut rows = vec![vec!["SITUATION".to_string(), "COUNT".to_string()]];
    rows.extend(
        summaries
            .situation_summary
            .iter()
            .map(|(s, n)| vec![s.clone(), n.to_string()]),
    );
    rows.push(vec!["STATUS".to_string(), "COUNT".to_string()]);
    rows.extend(
        summaries
            .status_summary
            .iter()
            .map(|(s, n)| vec![s.clone(), n.to_string()]),
    );
    out.push_str(&columns(&rows));
    if let Some(e) = v["error"].as_str() {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_table_aligns_its_columns() {
        let r = TestResult {
            name: "scim".into(),
            enabled: true,
            object_types: vec!["account".into(), "group".into()],
            ok: true,
            error: None,
        };
        assert_eq!(
            test_table(&r),
            "NAME  ENABLED  OBJECT TYPES   OK    ERROR\nscim  true     account,group  true\n"
        );
    }

    #[test]
    fn the_summary_lists_situations_and_statuses() {
        let r = RunRecord {
            id: "r1".into(),
            mapping: "m".into(),
            dry_run: true,
            state: "SUCCESS".into(),
            stage: "done".into(),
            progress: r#"{"source":{"processed":3,"total":3}}"#.into(),
            summaries:
                r#"{"situationSummary":{"ABSENT":2,"CONFIRMED":1},"statusSummary":{"DRY_RUN":3}}"#
                    .into(),
            cursor: None,
            started: chrono::Utc::now(),
            ended: None,
        };
        let t = summary_table(&r);
        assert!(
            t.starts_with(
                "run r1  mapping m  SUCCESS (dry run)  stage done\nsource 3/3  target 0/0\n"
            ),
            "{t}"
        );
        assert!(t.contains("ABSENT     2\n"), "{t}");
        assert!(t.contains("DRY_RUN    3\n"), "{t}");
    }
}
