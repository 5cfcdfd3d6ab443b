//! Cost of token validation: throughput of `GET /Users/{id}` against a scimd
//! with `--protection oauth` (a real JWT from the built-in token endpoint on every
//! request) and against one with `--protection bypass`, measured in one run,
//! alternating rounds so that both see the same machine. Also times the
//! validator alone, in process.
//!
//! ```text
//! cargo build --release -p scimd
//! cargo run --release -p scimd --example auth_bench -- [SECONDS] [CONCURRENCY] [ROUNDS]
//! ```
//! `SCIMD_BIN` overrides the server binary (default target/release/scimd).

use reqwest::Client;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Running {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
    token: Option<String>,
    user_path: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> PathBuf {
    std::env::var_os("SCIMD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/scimd"))
}

fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn start(protection: &str, http: &Client) -> Result<Running, Error> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(binary())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--protection", protection])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut running = Running {
        child,
        base,
        _dir: dir,
        token: None,
        user_path: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while http
        .get(format!("{}/scim/v2/ServiceProviderConfig", running.base))
        .send()
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            return Err("scimd did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if protection != "bypass" {
        let out = Command::new(binary())
            .args([
                "clients", "create", "--name", "bench", "--scope", "all", "--json",
            ])
            .arg("--data-dir")
            .arg(running._dir.path())
            .output()?;
        let client: Value = serde_json::from_slice(&out.stdout)?;
        let resp: Value = http
            .post(format!("{}/oauth/token", running.base))
            .basic_auth(
                client["client_id"].as_str().unwrap_or_default(),
                client["client_secret"].as_str(),
            )
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?
            .json()
            .await?;
        running.token = resp["access_token"].as_str().map(str::to_string);
        if running.token.is_none() {
            return Err(format!("no token: {resp}").into());
        }
    }
    let mut req = http
        .post(format!("{}/scim/v2/Users", running.base))
        .header("Content-Type", "application/scim+json")
        .body(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "bench", "name": {"givenName": "B", "familyName": "Ench"},
                "emails": [{"value": "bench@example.com", "primary": true}]})
            .to_string(),
        );
    if let Some(t) = &running.token {
        req = req.bearer_auth(t);
    }
    let user: Value = req.send().await?.json().await?;
    let id = user["id"].as_str().ok_or("no user id")?;
    running.user_path = format!("/scim/v2/Users/{id}");
    Ok(running)
}

/// Requests per second of GET by id for `seconds`, `concurrency` in flight.
async fn measure(s: &Running, http: &Client, seconds: u64, concurrency: usize) -> (f64, u64) {
    let url = format!("{}{}", s.base, s.user_path);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, url, done, failed, stop) = (
            http.clone(),
            url.clone(),
            done.clone(),
            failed.clone(),
            stop.clone(),
        );
        let token = s.token.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let mut req = http.get(&url);
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                match req.send().await {
                    Ok(r) if r.status().as_u16() == 200 => {
                        let _ = r.bytes().await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let n = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    (n as f64 / elapsed, failed.load(Ordering::Relaxed))
}

/// The validator alone, µs per `Auth::validate` of a built-in token: on first
/// sight (signature verified) and when seen again (verified-token cache).
async fn validator_cost() -> Result<(f64, f64), Error> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(scim_store::sqlite::SqliteClientStore::open(
        &dir.path().join("db"),
    )?);
    let auth = scim_auth::Auth::new(
        scim_auth::AuthConfig::default(),
        store.clone(),
        Arc::new(scim_proto::clock::SystemClock),
    )?;
    let hasher = scim_auth::secrets::SecretHasher::load(store.as_ref())?;
    let (client, _) = scim_auth::admin::create_client(
        store.as_ref(),
        &hasher,
        "bench",
        auth.policy().all(),
        chrono::Utc::now(),
        None,
        "cli",
    )?;
    let fresh: Vec<String> = (0..2000)
        .map(|_| {
            auth.issue_token(&client.id, &client.scopes, None)
                .map(|t| t.0)
        })
        .collect::<Result<_, _>>()?;
    auth.validate(&fresh[0])
        .await
        .map_err(|e| format!("{e:?}"))?;
    let started = Instant::now();
    for t in &fresh[1..] {
        auth.validate(t).await.map_err(|e| format!("{e:?}"))?;
    }
    let first = started.elapsed().as_secs_f64() * 1e6 / (fresh.len() - 1) as f64;
    let n = 20_000;
    let started = Instant::now();
    for _ in 0..n {
        auth.validate(&fresh[0])
            .await
            .map_err(|e| format!("{e:?}"))?;
    }
    let again = started.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    Ok((first, again))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let seconds = args.first().copied().unwrap_or(10);
    let concurrency = args.get(1).copied().unwrap_or(16) as usize;
    let rounds = args.get(2).copied().unwrap_or(3);
    println!(
        "auth_bench: GET /scim/v2/Users/{{id}}, {seconds} s x {rounds} rounds per mode, {concurrency} in flight, server {}",
        binary().display()
    );
    let http = Client::builder().pool_max_idle_per_host(256).build()?;
    let bypass = start("bypass", &http).await?;
    let oauth = start("oauth", &http).await?;
    let (mut b_all, mut o_all) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        for (name, s, all) in [
            ("bypass", &bypass, &mut b_all),
            ("oauth", &oauth, &mut o_all),
        ] {
            let _ = measure(s, &http, 1, concurrency).await; // warm-up
            let (rps, failed) = measure(s, &http, seconds, concurrency).await;
            println!("round {round}  {name:<6}  {rps:>9.0} req/s  ({failed} failed)");
            all.push(rps);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (b, o) = (mean(&b_all), mean(&o_all));
    println!("bypass  mean {b:>9.0} req/s");
    println!("oauth   mean {o:>9.0} req/s");
    println!(
        "oauth/bypass {:.3}  ({:+.1}% throughput; {:+.1} µs per request at this concurrency)",
        o / b,
        (o / b - 1.0) * 100.0,
        (concurrency as f64 / o - concurrency as f64 / b) * 1e6
    );
    let (first, again) = validator_cost().await?;
    println!(
        "validator alone (in process, one core): {first:.1} µs per new token (Ed25519 verify), {again:.1} µs per token seen before"
    );
    Ok(())
}
