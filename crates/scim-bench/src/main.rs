//! scimd-bench: load generator and benchmarks for scimd (and any SCIM 2.0 server
//! reachable over plain HTTP). See docs/benchmarks.md.

mod client;
mod common;
mod docs;
mod groups;
mod load;
mod run;
mod search;
mod stats;

use clap::{Parser, Subcommand};
use client::Target;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "scimd-bench",
    version,
    about = "Load generator and benchmarks for scimd and other SCIM 2.0 servers"
)]
struct Cli {
    /// SCIM base URL (plain http).
    #[arg(
        long,
        global = true,
        env = "SCIMD_BENCH_BASE",
        default_value = "http://127.0.0.1:8080/scim/v2"
    )]
    base: String,
    /// Bearer token sent on every request.
    #[arg(long, global = true, env = "SCIMD_BENCH_TOKEN")]
    token: Option<String>,
    /// Per-request timeout in seconds.
    #[arg(long, global = true, default_value_t = 120.0)]
    timeout: f64,
    /// Runtime worker threads of the load generator (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create users user{start}..user{start+N-1} (409s skipped, so it resumes).
    Load {
        #[arg(long)]
        users: u64,
        /// First user number.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Also create this many groups `group{j}`.
        #[arg(long, default_value_t = 0)]
        groups: u64,
        /// Members of each of those groups (taken from the users created).
        #[arg(long, default_value_t = 10)]
        group_size: usize,
        /// Requests in flight.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Users per Bulk request (capped by the server's maxOperations and maxPayloadSize).
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Use POST /Users even when the server offers /Bulk.
        #[arg(long)]
        no_bulk: bool,
    },
    /// Run fixed-duration closed-loop scenarios.
    Run {
        /// Scenario(s), comma-separated: get-by-id, filter-username-eq, filter-email-eq,
        /// filter-email-co, filter-username-co, filter-username-sw, filter-email-ew,
        /// sorted-page, sorted-page-deep, post-user, patch-user,
        /// patch-add-member-large-group, mixed; or `all`, `reads`.
        #[arg(long, value_delimiter = ',', required = true)]
        scenario: Vec<String>,
        /// Seconds measured per scenario.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Seconds of unrecorded warm-up before each scenario.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Users loaded (user0..user{N-1}); default: totalResults of /Users.
        #[arg(long)]
        users: Option<u64>,
        /// How many user ids to resolve for get-by-id / patch scenarios.
        #[arg(long, default_value_t = 2000)]
        sample_ids: usize,
        /// Members of the group of patch-add-member-large-group (built once, reused).
        #[arg(long, default_value_t = 100_000)]
        group_members: u64,
        /// Server process to read the peak RSS (VmHWM) of after each scenario.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Reset the server's peak RSS before each scenario (per-scenario peaks).
        #[arg(long)]
        reset_peak: bool,
        /// Append result rows to this TSV file.
        #[arg(long)]
        tsv: Option<String>,
        /// Label of the TSV rows (e.g. the server and N).
        #[arg(long, default_value = "run")]
        label: String,
    },
    /// The issue-4 benchmark: one group with M members, one with 10.
    Groups {
        #[arg(long, default_value_t = 100_000)]
        members: u64,
        /// Repetitions of each timing (median reported).
        #[arg(long, default_value_t = 50)]
        reps: usize,
        /// Synthetic members added per PATCH while building the large group.
        #[arg(long, default_value_t = 5000)]
        chunk: u64,
        /// Operations of the timed Bulk request.
        #[arg(long, default_value_t = 1000)]
        bulk_ops: usize,
        /// Repetitions of the Bulk request.
        #[arg(long, default_value_t = 3)]
        bulk_reps: usize,
        /// Stop repeating one GET measurement after this many seconds (min 3 reps).
        #[arg(long, default_value_t = 15.0)]
        max_secs: f64,
        #[arg(long)]
        server_pid: Option<u32>,
        /// Reset the server's peak RSS first (a peak of this benchmark alone).
        #[arg(long)]
        reset_peak: bool,
        #[arg(long)]
        tsv: Option<String>,
        #[arg(long, default_value = "groups")]
        label: String,
    },
    /// The issue-3 figures: eq and co search latency and throughput.
    Search {
        /// Users loaded (user0..user{N-1}); default: totalResults of /Users.
        #[arg(long)]
        users: Option<u64>,
        /// Sequential requests per query for the latency figures.
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Connections for the throughput figures.
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Seconds of the throughput run of each query.
        #[arg(long, default_value_t = 3.0)]
        duration: f64,
        /// Stop the sequential requests of one query after this many seconds (min 10).
        #[arg(long, default_value_t = 30.0)]
        max_secs: f64,
        #[arg(long)]
        server_pid: Option<u32>,
        /// Reset the server's peak RSS first (a peak of this benchmark alone).
        #[arg(long)]
        reset_peak: bool,
        #[arg(long)]
        tsv: Option<String>,
        #[arg(long, default_value = "search")]
        label: String,
    },
}

fn expand_scenarios(list: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for s in list {
        match s.trim() {
            "all" => out.extend(run::SCENARIOS.iter().map(|s| s.to_string())),
            "reads" => out.extend(
                [
                    "get-by-id",
                    "filter-username-eq",
                    "filter-email-eq",
                    "filter-email-co",
                    "filter-username-co",
                    "filter-username-sw",
                    "filter-email-ew",
                    "sorted-page",
                    "sorted-page-deep",
                ]
                .iter()
                .map(|s| s.to_string()),
            ),
            "" => {}
            other => out.push(other.to_string()),
        }
    }
    out
}

fn reset(pid: Option<u32>, yes: bool) {
    if let (Some(pid), true) = (pid, yes) {
        if !stats::reset_peak(pid) {
            eprintln!("note: cannot reset the peak RSS of pid {pid}");
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cli.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scimd-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let target = match Target::parse(
        &cli.base,
        cli.token.clone(),
        Duration::from_secs_f64(cli.timeout.max(0.001)),
    ) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            eprintln!("scimd-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Load {
                users,
                start,
                groups,
                group_size,
                concurrency,
                batch,
                no_bulk,
            } => {
                load::load(
                    target,
                    load::LoadArgs {
                        users,
                        start,
                        groups,
                        group_size,
                        concurrency,
                        batch,
                        no_bulk,
                    },
                )
                .await
            }
            Command::Run {
                scenario,
                duration,
                warmup,
                connections,
                users,
                sample_ids,
                group_members,
                server_pid,
                reset_peak,
                tsv,
                label,
            } => {
                run::run(
                    target,
                    run::RunArgs {
                        scenarios: expand_scenarios(scenario),
                        duration: Duration::from_secs_f64(duration.max(0.1)),
                        warmup: Duration::from_secs_f64(warmup.max(0.0)),
                        connections,
                        users,
                        sample_ids,
                        group_members,
                        server_pid,
                        reset_peak,
                        tsv,
                        label,
                    },
                )
                .await
            }
            Command::Groups {
                members,
                reps,
                chunk,
                bulk_ops,
                bulk_reps,
                max_secs,
                server_pid,
                reset_peak,
                tsv,
                label,
            } => {
                reset(server_pid, reset_peak);
                groups::groups(
                    target,
                    groups::GroupsArgs {
                        members,
                        reps: reps.max(1),
                        chunk: chunk.max(1),
                        bulk_ops,
                        bulk_reps,
                        max_secs_per_measure: max_secs,
                        server_pid,
                        tsv,
                        label,
                    },
                )
                .await
            }
            Command::Search {
                users,
                requests,
                connections,
                duration,
                max_secs,
                server_pid,
                reset_peak,
                tsv,
                label,
            } => {
                reset(server_pid, reset_peak);
                search::search(
                    target,
                    search::SearchArgs {
                        users,
                        requests: requests.max(1),
                        connections,
                        duration: Duration::from_secs_f64(duration.max(0.1)),
                        max_secs: Duration::from_secs_f64(max_secs.max(0.0)),
                        server_pid,
                        tsv,
                        label,
                    },
                )
                .await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scimd-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
