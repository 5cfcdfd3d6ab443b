//! `scimd-bench load`: create users `user{start}..user{start+N-1}` (and groups) as
//! fast as the server takes them: /Bulk in large batches when it is offered,
//! parallel POSTs otherwise. Existing users (409) are skipped, so a load can be
//! re-run to resume.

use crate::client::{Conn, Target};
use crate::common::{bulk_limits, json_status};
use crate::docs;
use bytes::Bytes;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) struct LoadArgs {
    pub users: u64,
    pub start: u64,
    pub groups: u64,
    pub group_size: usize,
    pub concurrency: usize,
    pub batch: usize,
    pub no_bulk: bool,
}

#[derive(Default)]
struct Counters {
    created: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
}

/// Approximate bytes one user takes inside a BulkRequest (measured: ~700).
const BYTES_PER_BULK_USER: usize = 900;

pub(crate) async fn load(target: Arc<Target>, a: LoadArgs) -> Result<(), String> {
    let mut c = Conn::new(target.clone());
    let limits = bulk_limits(&mut c).await?;
    let end = a.start + a.users;
    let batch = if limits.supported && !a.no_bulk {
        let by_payload = limits.max_payload.saturating_sub(200) / BYTES_PER_BULK_USER;
        a.batch.min(limits.max_operations).min(by_payload)
    } else {
        0
    };
    let counters = Arc::new(Counters::default());
    let ids: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let errors: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicU64::new(a.start));
    let t0 = Instant::now();
    if batch > 1 {
        println!(
            "load: {} users via /Bulk, {batch} per request (server maxOperations {}, maxPayloadSize {}), {} in flight",
            a.users, limits.max_operations, limits.max_payload, a.concurrency
        );
    } else {
        println!(
            "load: {} users via POST /Users on {} connections{}",
            a.users,
            a.concurrency,
            if a.no_bulk {
                ""
            } else {
                " (the server offers no usable /Bulk)"
            }
        );
    }
    let progress = {
        let counters = counters.clone();
        let total = a.users;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            tick.tick().await;
            loop {
                tick.tick().await;
                let done = counters.created.load(Ordering::Relaxed)
                    + counters.skipped.load(Ordering::Relaxed)
                    + counters.failed.load(Ordering::Relaxed);
                let s = t0.elapsed().as_secs_f64();
                println!(
                    "load: {done}/{total} after {s:.0} s ({:.0} users/s)",
                    done as f64 / s
                );
            }
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency.max(1) {
        let target = target.clone();
        let (next, counters, ids, errors) =
            (next.clone(), counters.clone(), ids.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::new(target);
            let note = |e: String| {
                if let Ok(mut v) = errors.lock() {
                    if v.len() < 5 {
                        v.push(e);
                    }
                }
            };
            if batch > 1 {
                loop {
                    let lo = next.fetch_add(batch as u64, Ordering::Relaxed);
                    if lo >= end {
                        break;
                    }
                    let hi = (lo + batch as u64).min(end);
                    let body = docs::bulk_users((lo..hi).map(|i| (format!("u{i}"), docs::user(i))));
                    let r = c.post_json("/Bulk", &body, &[]).await;
                    let n = hi - lo;
                    let resp = match r {
                        Ok(r) if r.ok() => r,
                        Ok(r) => {
                            counters.failed.fetch_add(n, Ordering::Relaxed);
                            note(format!("POST /Bulk: {}", r.describe()));
                            return Err(format!("POST /Bulk refused: {}", r.describe()));
                        }
                        Err(e) => {
                            counters.failed.fetch_add(n, Ordering::Relaxed);
                            note(e.clone());
                            continue;
                        }
                    };
                    let v: Value = match resp.json() {
                        Ok(v) => v,
                        Err(e) => {
                            counters.failed.fetch_add(n, Ordering::Relaxed);
                            note(e);
                            continue;
                        }
                    };
                    let ops = v["Operations"].as_array().cloned().unwrap_or_default();
                    let mut mine = Vec::new();
                    for op in &ops {
                        match json_status(&op["status"]) {
                            201 => {
                                counters.created.fetch_add(1, Ordering::Relaxed);
                                if let Some(id) =
                                    op["location"].as_str().and_then(docs::id_from_location)
                                {
                                    mine.push(id);
                                }
                            }
                            409 => {
                                counters.skipped.fetch_add(1, Ordering::Relaxed);
                            }
                            s => {
                                counters.failed.fetch_add(1, Ordering::Relaxed);
                                note(format!("bulk operation status {s}: {op}"));
                            }
                        }
                    }
                    if (ops.len() as u64) < n {
                        counters
                            .failed
                            .fetch_add(n - ops.len() as u64, Ordering::Relaxed);
                        note(format!(
                            "BulkResponse has {} results for {n} operations",
                            ops.len()
                        ));
                    }
                    if let Ok(mut all) = ids.lock() {
                        all.extend(mine);
                    }
                }
            } else {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        break;
                    }
                    let body =
                        Bytes::from(serde_json::to_vec(&docs::user(i)).map_err(|e| e.to_string())?);
                    match c.send(hyper::Method::POST, "/Users", Some(body), &[]).await {
                        Ok(r) if r.status == 201 => {
                            counters.created.fetch_add(1, Ordering::Relaxed);
                            if let Some(id) = r
                                .json()
                                .ok()
                                .and_then(|v| v["id"].as_str().map(str::to_string))
                            {
                                if let Ok(mut all) = ids.lock() {
                                    all.push(id);
                                }
                            }
                        }
                        Ok(r) if r.status == 409 => {
                            counters.skipped.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                            note(format!("POST /Users: {}", r.describe()));
                        }
                        Err(e) => {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                            note(e);
                        }
                    }
                }
            }
            Ok::<(), String>(())
        }));
    }
    let mut first_err = None;
    for t in tasks {
        if let Err(e) = t.await.map_err(|e| e.to_string()).and_then(|r| r) {
            first_err.get_or_insert(e);
        }
    }
    progress.abort();
    let secs = t0.elapsed().as_secs_f64();
    let created = counters.created.load(Ordering::Relaxed);
    let skipped = counters.skipped.load(Ordering::Relaxed);
    let failed = counters.failed.load(Ordering::Relaxed);
    println!(
        "load: {created} created, {skipped} already there (409), {failed} failed in {secs:.1} s: {:.0} users/s ({:.0} created/s)",
        (created + skipped) as f64 / secs,
        created as f64 / secs
    );
    if let Ok(errs) = errors.lock() {
        for e in errs.iter() {
            println!("  error: {e}");
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    if a.groups > 0 {
        let ids = ids.lock().map(|v| v.clone()).unwrap_or_default();
        load_groups(&target, &a, &ids).await?;
    }
    if failed > 0 {
        return Err(format!("{failed} users failed to load"));
    }
    Ok(())
}

/// Groups `group{j}` with `group_size` members each, taken in turn from the users
/// this load created.
async fn load_groups(target: &Arc<Target>, a: &LoadArgs, ids: &[String]) -> Result<(), String> {
    let t0 = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let ids: Arc<Vec<String>> = Arc::new(ids.to_vec());
    let counters = Arc::new(Counters::default());
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency.max(1) {
        let (target, next, ids, counters) =
            (target.clone(), next.clone(), ids.clone(), counters.clone());
        let (groups, size) = (a.groups, a.group_size);
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::new(target);
            let mut first_err = None;
            loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                if j >= groups {
                    break;
                }
                let members: Vec<String> = if ids.is_empty() {
                    vec![]
                } else {
                    (0..size)
                        .map(|k| ids[(j as usize * size + k) % ids.len()].clone())
                        .collect()
                };
                let doc = docs::group(&format!("group{j}"), &members);
                match c.post_json("/Groups", &doc, &[]).await {
                    Ok(r) if r.status == 201 => {
                        counters.created.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) if r.status == 409 => {
                        counters.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        first_err.get_or_insert(r.describe());
                    }
                    Err(e) => {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        first_err.get_or_insert(e);
                    }
                }
            }
            first_err
        }));
    }
    let mut first_err = None;
    for t in tasks {
        if let Some(e) = t.await.map_err(|e| e.to_string())? {
            first_err.get_or_insert(e);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "load: groups: {} created, {} already there, {} failed in {secs:.1} s ({:.0} groups/s){}",
        counters.created.load(Ordering::Relaxed),
        counters.skipped.load(Ordering::Relaxed),
        counters.failed.load(Ordering::Relaxed),
        a.groups as f64 / secs,
        first_err.map_or_else(String::new, |e| format!("; first error: {e}"))
    );
    Ok(())
}
