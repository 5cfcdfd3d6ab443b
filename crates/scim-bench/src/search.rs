//! `scimd-bench search`: the issue-3 figures. For `userName eq`, `emails.value eq`
//! and a 100-result page of an `emails.value co` query: latency on one connection
//! (p50/p99 over R sequential requests, results checked) and throughput on C
//! connections for a few seconds.

use crate::client::{enc, Resp, Target};
use crate::common::{closed_loop, print_memory, sequential, total, MakeReq, Req, Row};
use crate::stats::Rng;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct SearchArgs {
    pub users: Option<u64>,
    pub requests: usize,
    pub connections: usize,
    pub duration: Duration,
    /// Time budget of the sequential latency phase of one query (min 10 requests).
    pub max_secs: Duration,
    pub server_pid: Option<u32>,
    pub tsv: Option<String>,
    pub label: String,
}

const QUERIES: [&str; 3] = [
    "userName eq",
    "emails.value eq",
    "emails.value co (page of 100)",
];

fn make(q: usize, n: u64) -> Arc<MakeReq> {
    Arc::new(move |rng: &mut Rng, _w: usize, _seq: u64| {
        let path = match q {
            0 => format!(
                "/Users?filter={}",
                enc(&format!("userName eq \"user{}\"", rng.below(n)))
            ),
            1 => format!(
                "/Users?filter={}",
                enc(&format!(
                    "emails.value eq \"user{}@example.com\"",
                    rng.below(n)
                ))
            ),
            _ => format!(
                "/Users?filter={}&count=100",
                enc(&crate::run::substring_filter(
                    crate::run::Kind::EmailCo,
                    rng
                ))
            ),
        };
        (0, Req::get(path))
    })
}

pub(crate) async fn search(target: Arc<Target>, a: SearchArgs) -> Result<(), String> {
    let mut c = crate::client::Conn::new(target.clone());
    let n = match a.users {
        Some(n) => n,
        None => total(&mut c, "Users").await?,
    }
    .max(1);
    println!(
        "search benchmark at {n} users: latency over {} sequential requests (at most {} s) on 1 connection, throughput on {} connections for {} s",
        a.requests,
        a.max_secs.as_secs_f64(),
        a.connections,
        a.duration.as_secs_f64()
    );
    println!(
        "{:<32} {:>8} {:>8} {:>8} {:>8} {:>12} {:>8} {:>7}",
        "query", "p50 ms", "p99 ms", "mean ms", "max ms", "req/s", "p99 ms", "errors"
    );
    println!(
        "{:<32} {:>35} {:>21} {:>7}",
        "",
        "(1 connection)",
        format!("({} connections)", a.connections),
        ""
    );
    for (qi, name) in QUERIES.iter().enumerate() {
        let m = make(qi, n);
        // eq on a loaded user must find exactly one; co pages must be full pages.
        let check = move |_k: usize, r: &Resp| -> Option<String> {
            let v = r.json().ok()?;
            let total = v["totalResults"].as_u64().unwrap_or(0);
            let listed = v["Resources"].as_array().map_or(0, Vec::len) as u64;
            match qi {
                0 | 1 if total != 1 => Some(format!("totalResults {total}, expected 1")),
                2 if listed != total.min(100) => {
                    Some(format!("{listed} resources listed of {total}"))
                }
                _ => None,
            }
        };
        let lat = sequential(&target, a.requests, a.max_secs, m.as_ref(), Some(&check)).await;
        let tp = closed_loop(
            &target,
            a.connections,
            1,
            Duration::from_millis(500),
            a.duration,
            m,
        )
        .await?;
        let all = tp.overall();
        let rps = all.total() as f64 / tp.elapsed.as_secs_f64().max(1e-9);
        println!(
            "{:<32} {:>8.2} {:>8.2} {:>8.2} {:>8.1} {:>12.1} {:>8.2} {:>7}",
            name,
            lat.p(0.5),
            lat.p(0.99),
            lat.mean_ms(),
            lat.max_ms(),
            rps,
            all.p(0.99),
            lat.errors + all.errors
        );
        lat.print_errors("      1 conn: ", 3);
        all.print_errors("      N conn: ", 3);
        let peak = crate::common::peak_of(a.server_pid);
        Row {
            label: a.label.clone(),
            name: format!("search {name} @{n} 1conn"),
            conns: 1,
            rps: lat.total() as f64 / (lat.mean_ms() * lat.total() as f64 / 1000.0).max(1e-9),
            rec: lat,
            peak_mib: peak,
        }
        .append_tsv(a.tsv.as_deref())?;
        Row {
            label: a.label.clone(),
            name: format!("search {name} @{n}"),
            conns: a.connections,
            rps,
            rec: all,
            peak_mib: peak,
        }
        .append_tsv(a.tsv.as_deref())?;
    }
    print_memory(a.server_pid);
    Ok(())
}
