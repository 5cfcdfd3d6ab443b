//! `scimd-bench groups`: the issue-4 benchmark. One group with M members (synthetic
//! ids added in chunks with `Group-Overhead-Bypass`, plus real users) and one with
//! 10 members; median times of member add/remove by PATCH and of GET with and
//! without members; a Bulk request of 1,000 user creations.

use crate::client::{Conn, Resp, Target};
use crate::common::{bulk_limits, json_status, print_memory, run_id};
use crate::docs;
use crate::run::large_group;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) struct GroupsArgs {
    pub members: u64,
    pub reps: usize,
    pub chunk: u64,
    pub bulk_ops: usize,
    pub bulk_reps: usize,
    pub max_secs_per_measure: f64,
    pub server_pid: Option<u32>,
    pub tsv: Option<String>,
    pub label: String,
}

/// Timings of one measurement, in ms.
#[derive(Default, Clone)]
struct Times {
    ms: Vec<f64>,
    errors: usize,
    first_error: Option<String>,
}

impl Times {
    fn push(&mut self, t0: Instant, r: &Result<Resp, String>) {
        self.ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        let err = match r {
            Ok(r) if r.ok() => None,
            Ok(r) => Some(r.describe()),
            Err(e) => Some(e.clone()),
        };
        if let Some(e) = err {
            self.errors += 1;
            self.first_error.get_or_insert(e);
        }
    }
    fn quantile(&self, q: f64) -> f64 {
        if self.ms.is_empty() {
            return f64::NAN;
        }
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        v[i]
    }
    fn median(&self) -> f64 {
        self.quantile(0.5)
    }
    fn cell(&self) -> String {
        if self.ms.is_empty() {
            return "-".into();
        }
        let e = if self.errors > 0 {
            format!(" ({} err)", self.errors)
        } else {
            String::new()
        };
        format!(
            "{:.2} (p90 {:.2}, n={}){e}",
            self.median(),
            self.quantile(0.9),
            self.ms.len()
        )
    }
}

async fn create_user(c: &mut Conn, name: &str, i: u64) -> Result<String, String> {
    let r = c
        .post_json("/Users", &docs::user_named(name, i), &[])
        .await?;
    if r.status != 201 {
        return Err(format!("POST /Users {name}: {}", r.describe()));
    }
    r.json()?["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "created user has no id".into())
}

struct GroupTimes {
    add: Times,
    remove: Times,
    get_full: Times,
    get_no_display: Times,
    get_excluded: Times,
    members_seen: Option<usize>,
}

/// Time up to `reps` GETs of a group (at least 3, then within `budget`); also
/// returns how many members the first response listed.
async fn time_gets(
    c: &mut Conn,
    gid: &str,
    q: &str,
    reps: usize,
    budget: Duration,
) -> (Times, Option<usize>) {
    let mut t = Times::default();
    let mut seen = None;
    let t_all = Instant::now();
    for i in 0..reps {
        if i >= 3 && t_all.elapsed() > budget {
            break;
        }
        let t0 = Instant::now();
        let r = c.get(&format!("/Groups/{gid}{q}")).await;
        t.push(t0, &r);
        if seen.is_none() {
            if let Ok(resp) = &r {
                seen = resp
                    .json()
                    .ok()
                    .map(|v| v["members"].as_array().map_or(0, Vec::len));
            }
        }
    }
    (t, seen)
}

async fn measure_group(
    c: &mut Conn,
    gid: &str,
    candidates: &[String],
    a: &GroupsArgs,
) -> Result<GroupTimes, String> {
    let budget = Duration::from_secs_f64(a.max_secs_per_measure);
    let mut add = Times::default();
    let mut remove = Times::default();
    let path = format!("/Groups/{gid}?excludedAttributes=members");
    let t_all = Instant::now();
    for (i, m) in candidates.iter().enumerate().take(a.reps) {
        if i >= 5 && t_all.elapsed() > budget * 2 {
            break;
        }
        let t0 = Instant::now();
        let r = c
            .patch_json(
                &path,
                &docs::patch_add_members(std::slice::from_ref(m)),
                &[],
            )
            .await;
        add.push(t0, &r);
        let t0 = Instant::now();
        let r = c
            .patch_json(&path, &docs::patch_remove_member(m), &[])
            .await;
        remove.push(t0, &r);
    }
    let (get_full, members_seen) = time_gets(c, gid, "", a.reps, budget).await;
    let (get_no_display, _) = time_gets(
        c,
        gid,
        "?excludedAttributes=members.display",
        a.reps,
        budget,
    )
    .await;
    let (get_excluded, _) = time_gets(c, gid, "?excludedAttributes=members", a.reps, budget).await;
    Ok(GroupTimes {
        add,
        remove,
        get_full,
        get_no_display,
        get_excluded,
        members_seen,
    })
}

pub(crate) async fn groups(target: Arc<Target>, a: GroupsArgs) -> Result<(), String> {
    let mut c = Conn::new(target.clone());
    let run = run_id();
    println!(
        "groups benchmark (run {run}): one group of {} members, one of 10",
        a.members
    );
    // Real users: 10 base members plus one add/remove candidate per repetition.
    let t0 = Instant::now();
    let n_real = 10 + a.reps;
    let mut real = Vec::with_capacity(n_real);
    for k in 0..n_real {
        real.push(create_user(&mut c, &format!("bgrp-{run}-{k}"), k as u64).await?);
    }
    println!(
        "created {n_real} real users in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let base = &real[..10];
    let candidates = &real[10..];
    // The 10-member group.
    let r = c
        .post_json(
            "/Groups?excludedAttributes=members",
            &docs::group(&format!("bench-small-{run}"), base),
            &[],
        )
        .await?;
    if r.status != 201 {
        return Err(format!("creating the small group: {}", r.describe()));
    }
    let small = r.json()?["id"]
        .as_str()
        .map(str::to_string)
        .ok_or("small group has no id")?;
    // The large group: 10 real members, then synthetic ones up to M.
    let large_name = format!("bench-huge-{run}");
    let r = c
        .post_json(
            "/Groups?excludedAttributes=members",
            &docs::group(&large_name, base),
            &[],
        )
        .await?;
    if r.status != 201 {
        return Err(format!("creating the large group: {}", r.describe()));
    }
    let t0 = Instant::now();
    let (large, size) = large_group(&mut c, &large_name, a.members, a.chunk, &run).await?;
    println!(
        "large group {large}: {size} members, built in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let small_t = measure_group(&mut c, &small, candidates, &a).await?;
    let large_t = measure_group(&mut c, &large, candidates, &a).await?;

    // Bulk: bulk_ops user creations per request.
    let limits = bulk_limits(&mut c).await?;
    let mut bulk = Times::default();
    let mut bulk_note = String::new();
    let ops = a.bulk_ops.min(limits.max_operations);
    if !limits.supported || ops == 0 {
        bulk_note = "server does not offer /Bulk".into();
    } else {
        if ops < a.bulk_ops {
            bulk_note = format!(
                "server maxOperations is {}: start it with --bulk-max-operations {}",
                limits.max_operations, a.bulk_ops
            );
        }
        for rep in 0..a.bulk_reps {
            let body = docs::bulk_users((0..ops as u64).map(|k| {
                (
                    format!("b{k}"),
                    docs::user_named(&format!("bbulk-{run}-{rep}-{k}"), k),
                )
            }));
            let t0 = Instant::now();
            let r = c.post_json("/Bulk", &body, &[]).await;
            bulk.push(t0, &r);
            if let Ok(resp) = &r {
                if resp.ok() {
                    let v = resp.json()?;
                    let created = v["Operations"].as_array().map_or(0, |a| {
                        a.iter()
                            .filter(|o| json_status(&o["status"]) == 201)
                            .count()
                    });
                    if created != ops {
                        bulk.errors += 1;
                        bulk.first_error
                            .get_or_insert(format!("{created} of {ops} operations returned 201"));
                    }
                }
            }
        }
    }

    let w = 40;
    println!();
    println!(
        "{:<w$} {:>34} {:>34}",
        "median ms",
        "10 members",
        format!("{} members", large_t.members_seen.unwrap_or(size as usize))
    );
    let rows: [(&str, &Times, &Times); 5] = [
        (
            "PATCH add 1 member (excl. members)",
            &small_t.add,
            &large_t.add,
        ),
        (
            "PATCH remove 1 member (excl. members)",
            &small_t.remove,
            &large_t.remove,
        ),
        (
            "GET group with members",
            &small_t.get_full,
            &large_t.get_full,
        ),
        (
            "GET excludedAttributes=members.display",
            &small_t.get_no_display,
            &large_t.get_no_display,
        ),
        (
            "GET excludedAttributes=members",
            &small_t.get_excluded,
            &large_t.get_excluded,
        ),
    ];
    for (name, s, l) in rows {
        println!("{:<w$} {:>34} {:>34}", name, s.cell(), l.cell());
        tsv(&a, name, s, l)?;
    }
    println!(
        "add 1 member: {} members / 10 members = {:.2}×",
        size,
        large_t.add.median() / small_t.add.median()
    );
    if !bulk.ms.is_empty() {
        let med = bulk.median();
        println!(
            "{:<w$} {:>34}   = {:.0} users/s",
            format!("Bulk: {ops} user creations"),
            bulk.cell(),
            ops as f64 / (med / 1000.0)
        );
        tsv(
            &a,
            &format!("Bulk {ops} user creations"),
            &bulk,
            &Times::default(),
        )?;
    }
    if !bulk_note.is_empty() {
        println!("bulk: {bulk_note}");
    }
    for (what, t) in [
        ("small add", &small_t.add),
        ("small remove", &small_t.remove),
        ("large add", &large_t.add),
        ("large remove", &large_t.remove),
        ("large GET", &large_t.get_full),
        ("bulk", &bulk),
    ] {
        if let Some(e) = &t.first_error {
            println!("error ({what}, {} in all): {e}", t.errors);
        }
    }
    print_memory(a.server_pid);
    Ok(())
}

fn tsv(a: &GroupsArgs, name: &str, s: &Times, l: &Times) -> Result<(), String> {
    let Some(path) = &a.tsv else { return Ok(()) };
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    writeln!(
        f,
        "{}\tgroups\t{}\t{}\t{}\t{}",
        a.label,
        name,
        fmt_ms(s),
        fmt_ms(l),
        s.errors + l.errors
    )
    .map_err(|e| format!("{path}: {e}"))
}

fn fmt_ms(t: &Times) -> String {
    if t.ms.is_empty() {
        "-".into()
    } else {
        format!("{:.3}", t.median())
    }
}
