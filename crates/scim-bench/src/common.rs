//! Pieces shared by the subcommands: discovery, id sampling, the closed-loop
//! engine and result rows.

use crate::client::{enc, Conn, Resp, Target};
use crate::stats::{memory_mib, Recorder, Rng};
use bytes::Bytes;
use hyper::Method;
use serde_json::Value;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the server says about /Bulk in its ServiceProviderConfig.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BulkLimits {
    pub supported: bool,
    pub max_operations: usize,
    pub max_payload: usize,
}

pub(crate) async fn bulk_limits(c: &mut Conn) -> Result<BulkLimits, String> {
    let r = c.get("/ServiceProviderConfig").await?;
    if !r.ok() {
        return Err(format!("GET /ServiceProviderConfig: {}", r.describe()));
    }
    let v = r.json()?;
    let b = &v["bulk"];
    Ok(BulkLimits {
        supported: b["supported"].as_bool().unwrap_or(false),
        max_operations: b["maxOperations"].as_u64().unwrap_or(0) as usize,
        max_payload: b["maxPayloadSize"].as_u64().unwrap_or(0) as usize,
    })
}

/// totalResults of a list query (`/Users?count=0`, falling back to count=1 for
/// servers that do not take 0).
pub(crate) async fn total(c: &mut Conn, endpoint: &str) -> Result<u64, String> {
    for count in [0, 1] {
        let r = c.get(&format!("/{endpoint}?count={count}")).await?;
        if r.ok() {
            if let Some(n) = r.json()?["totalResults"].as_u64() {
                return Ok(n);
            }
        }
    }
    Err(format!("cannot count /{endpoint}"))
}

/// The id of the user `userName eq name`, if any.
pub(crate) async fn user_id(c: &mut Conn, user_name: &str) -> Result<Option<String>, String> {
    let filter = format!("userName eq \"{user_name}\"");
    let r = c
        .get(&format!("/Users?filter={}&attributes=id", enc(&filter)))
        .await?;
    if !r.ok() {
        return Err(r.describe());
    }
    Ok(r.json()?["Resources"][0]["id"].as_str().map(str::to_string))
}

/// Resolve the ids of `k` random benchmark users (`user{i}`, `i < n_users`) by
/// `userName eq` lookups on `conns` connections.
pub(crate) async fn sample_ids(
    target: &Arc<Target>,
    n_users: u64,
    k: usize,
    conns: usize,
) -> Result<Vec<String>, String> {
    if n_users == 0 || k == 0 {
        return Ok(vec![]);
    }
    let k = (k as u64).min(n_users);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..conns.max(1) {
        let target = target.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::new(target);
            let mut rng = Rng::seeded(1000 + w as u64);
            let mut out = Vec::new();
            let mut misses = 0u64;
            while next.fetch_add(1, Ordering::Relaxed) < k {
                // A few tries in case of gaps (a partial load).
                let mut found = None;
                for _ in 0..4 {
                    let i = rng.below(n_users);
                    if let Some(id) = user_id(&mut c, &format!("user{i}")).await? {
                        found = Some(id);
                        break;
                    }
                    misses += 1;
                }
                if let Some(id) = found {
                    out.push(id);
                }
            }
            Ok::<_, String>((out, misses))
        }));
    }
    let mut ids = Vec::new();
    let mut misses = 0;
    for t in tasks {
        let (mut v, m) = t.await.map_err(|e| e.to_string())??;
        ids.append(&mut v);
        misses += m;
    }
    if ids.is_empty() {
        return Err(format!(
            "none of the sampled users user0..user{} exists: load users first",
            n_users - 1
        ));
    }
    if misses > 0 {
        eprintln!("note: {misses} sampled userNames did not exist (partial load?)");
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// One request of a closed-loop scenario.
pub(crate) struct Req {
    pub method: Method,
    pub path: String,
    pub body: Option<Bytes>,
    pub headers: &'static [(&'static str, &'static str)],
}

impl Req {
    pub(crate) fn get(path: String) -> Self {
        Req {
            method: Method::GET,
            path,
            body: None,
            headers: &[],
        }
    }
}

/// Builds the next request of a worker: (kind index, request).
pub(crate) type MakeReq = dyn Fn(&mut Rng, usize, u64) -> (usize, Req) + Send + Sync;

/// Result of a closed-loop run: one recorder per request kind.
pub(crate) struct LoopResult {
    pub per_kind: Vec<Recorder>,
    pub elapsed: Duration,
}

impl LoopResult {
    pub(crate) fn overall(&self) -> Recorder {
        let mut all = Recorder::default();
        for r in &self.per_kind {
            all.merge(r);
        }
        all
    }
}

/// `conns` workers, each on its own connection, send requests back to back for
/// `warmup + duration`; requests completed after the warm-up are recorded, and
/// the rate is over the time from the end of the warm-up to the last completion.
pub(crate) async fn closed_loop(
    target: &Arc<Target>,
    conns: usize,
    kinds: usize,
    warmup: Duration,
    duration: Duration,
    make: Arc<MakeReq>,
) -> Result<LoopResult, String> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let deadline = measure_from + duration;
    let mut tasks = Vec::new();
    for w in 0..conns.max(1) {
        let target = target.clone();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::new(target);
            let mut rng = Rng::seeded(w as u64);
            let mut recs: Vec<Recorder> = (0..kinds).map(|_| Recorder::default()).collect();
            let mut seq = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= deadline {
                    break;
                }
                let (kind, req) = make(&mut rng, w, seq);
                seq += 1;
                let r = c.send(req.method, &req.path, req.body, req.headers).await;
                // Every request that completes inside the measured window counts
                // (also one started during the warm-up: slow requests must show).
                if Instant::now() >= measure_from {
                    if let Some(rec) = recs.get_mut(kind) {
                        rec.record(t0.elapsed(), &r);
                    }
                }
                if r.is_err() {
                    // Do not spin on a dead server.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            recs
        }));
    }
    let mut per_kind: Vec<Recorder> = (0..kinds).map(|_| Recorder::default()).collect();
    for t in tasks {
        let recs = t.await.map_err(|e| e.to_string())?;
        for (all, r) in per_kind.iter_mut().zip(recs.iter()) {
            all.merge(r);
        }
    }
    let elapsed = Instant::now().saturating_duration_since(measure_from);
    Ok(LoopResult { per_kind, elapsed })
}

/// Turns a 2xx response into an error message when its content is wrong.
pub(crate) type Check = dyn Fn(usize, &Resp) -> Option<String> + Sync;

/// Send `n` requests one after the other on one connection (stopping after
/// `budget` once 10 are done); `check` may turn a 2xx response into an error
/// (e.g. a wrong totalResults).
pub(crate) async fn sequential(
    target: &Arc<Target>,
    n: usize,
    budget: Duration,
    make: &MakeReq,
    check: Option<&Check>,
) -> Recorder {
    let t_all = Instant::now();
    let mut c = Conn::new(target.clone());
    let mut rng = Rng::seeded(77);
    let mut rec = Recorder::default();
    // One unrecorded request opens the connection.
    let (_, first) = make(&mut rng, 0, 0);
    let _ = c
        .send(first.method, &first.path, first.body, first.headers)
        .await;
    for seq in 0..n as u64 {
        if seq >= 10 && t_all.elapsed() > budget {
            break;
        }
        let (kind, req) = make(&mut rng, 0, seq + 1);
        let t0 = Instant::now();
        let r = c.send(req.method, &req.path, req.body, req.headers).await;
        let lat = t0.elapsed();
        match (&r, check) {
            (Ok(resp), Some(f)) if resp.ok() => {
                if let Some(problem) = f(kind, resp) {
                    let _ = rec.hist.record((lat.as_micros() as u64).max(1));
                    rec.error("unexpected result".into(), problem);
                    continue;
                }
                rec.record(lat, &r);
            }
            _ => rec.record(lat, &r),
        }
    }
    rec
}

/// One printed/recorded result row.
pub(crate) struct Row {
    pub label: String,
    pub name: String,
    pub conns: usize,
    pub rec: Recorder,
    pub rps: f64,
    pub peak_mib: Option<f64>,
}

pub(crate) fn header() {
    println!(
        "{:<30} {:>5} {:>9} {:>10} {:>8} {:>8} {:>8} {:>7} {:>10}",
        "scenario",
        "conns",
        "requests",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "peak RSS"
    );
}

impl Row {
    pub(crate) fn print(&self) {
        let rss = self
            .peak_mib
            .map_or_else(|| "-".to_string(), |m| format!("{m:.0} MiB"));
        println!(
            "{:<30} {:>5} {:>9} {:>10.1} {:>8.2} {:>8.2} {:>8.1} {:>7} {:>10}",
            self.name,
            self.conns,
            self.rec.total(),
            self.rps,
            self.rec.p(0.5),
            self.rec.p(0.99),
            self.rec.max_ms(),
            self.rec.errors,
            rss
        );
    }

    /// Append `label scenario conns requests rps p50 p99 max errors peak` to a TSV file.
    pub(crate) fn append_tsv(&self, path: Option<&str>) -> Result<(), String> {
        let Some(path) = path else { return Ok(()) };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{path}: {e}"))?;
        writeln!(
            f,
            "{}\t{}\t{}\t{}\t{:.1}\t{:.3}\t{:.3}\t{:.3}\t{}\t{}",
            self.label,
            self.name,
            self.conns,
            self.rec.total(),
            self.rps,
            self.rec.p(0.5),
            self.rec.p(0.99),
            self.rec.max_ms(),
            self.rec.errors,
            self.peak_mib
                .map_or_else(|| "-".into(), |m| format!("{m:.1}"))
        )
        .map_err(|e| format!("{path}: {e}"))
    }
}

pub(crate) fn peak_of(pid: Option<u32>) -> Option<f64> {
    pid.and_then(memory_mib).map(|(hwm, _)| hwm)
}

pub(crate) fn print_memory(pid: Option<u32>) {
    if let Some(pid) = pid {
        match memory_mib(pid) {
            Some((hwm, rss)) => {
                println!(
                    "server pid {pid}: peak RSS (VmHWM) {hwm:.1} MiB, current RSS {rss:.1} MiB"
                )
            }
            None => println!("server pid {pid}: /proc/{pid}/status not readable"),
        }
    }
}

/// A short per-run tag that keeps names unique across runs.
pub(crate) fn run_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    format!("{:x}", t & 0xffff_ffff_ffff)
}

pub(crate) fn json_status(v: &Value) -> u16 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0) as u16,
        _ => 0,
    }
}
