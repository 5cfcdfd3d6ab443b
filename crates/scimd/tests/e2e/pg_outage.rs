//! PostgreSQL going away under load: a private PostgreSQL server (initdb into a
//! temporary directory, its own port) that the test stops and starts again
//! while scimd serves writes. scimd answers 503 with Retry-After while the
//! database is down (never 500, never a request hanging past its timeout),
//! reconnects by itself, and every write it acknowledged is there afterwards.

use crate::harness::{parts, Server};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The newest installed PostgreSQL's binaries; None (with a notice) when there
/// is none outside `scripts/test.sh`, which installs them.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    let found = versions.pop();
    if found.is_none() {
        assert!(
            std::env::var_os("SCIMD_TEST_POSTGRES_URL").is_none(),
            "no PostgreSQL binaries under /usr/lib/postgresql: run ./scripts/ensure-postgres.sh"
        );
        eprintln!("skipped: no PostgreSQL binaries to start a private server");
    }
    found
}

/// A PostgreSQL server of the test's own, stopped and removed on drop.
struct PrivatePostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    _tmp: tempfile::TempDir,
}

impl PrivatePostgres {
    fn start() -> Option<PrivatePostgres> {
        let bin = postgres_bin()?;
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("pgdata");
        std::fs::create_dir(&dir).expect("pgdata");
        // PostgreSQL refuses to run as root: the files belong to `postgres` then.
        if is_root() {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(tmp.path())
                .status()
                .expect("chown");
            assert!(chown.success());
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
            l.local_addr().expect("addr").port()
        };
        let pg = PrivatePostgres {
            bin,
            dir,
            port,
            _tmp: tmp,
        };
        let out = pg.run(
            "initdb",
            &[
                "-D",
                &pg.dir_str(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.up();
        Some(pg)
    }

    fn dir_str(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Run one of the server's programs (as `postgres` when we are root).
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).current_dir("/tmp").output().expect(program)
    }

    fn up(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=50",
            self.port,
            self.dir_str()
        );
        let log = self.dir.join("server.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.dir_str(),
                "-o",
                &opts,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn down(&self) {
        let out = self.run(
            "pg_ctl",
            &["-D", &self.dir_str(), "-m", "fast", "-w", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &["-D", &self.dir_str(), "-m", "immediate", "-w", "stop"],
        );
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// What the writers saw.
#[derive(Default)]
struct Seen {
    acked: Vec<String>,
    unavailable: usize,
    retry_after: bool,
    other: Vec<String>,
    slowest: Duration,
}

#[test]
fn postgres_down_under_load_answers_503_and_loses_no_acknowledged_write() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let s = Server::start_in(Path::new(tmp.path()), &["--database", &pg.url()]);
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (stop, seen, url) = (stop.clone(), seen.clone(), s.url("/scim/v2/Users"));
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("client");
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("outage-{t}-{i}");
                    i += 1;
                    let started = Instant::now();
                    let r = crate::harness::post_user(&client, &url, &name);
                    let took = started.elapsed();
                    let mut seen = seen.lock().expect("seen");
                    seen.slowest = seen.slowest.max(took);
                    match r {
                        Ok(r) if r.status() == 201 => seen.acked.push(name),
                        Ok(r) if r.status() == 503 => {
                            seen.unavailable += 1;
                            seen.retry_after |= r.headers().contains_key("retry-after");
                            drop(seen);
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        Ok(r) => {
                            let st = r.status();
                            seen.other
                                .push(format!("{st}: {}", r.text().unwrap_or_default()));
                        }
                        Err(e) => seen.other.push(format!("transport: {e}")),
                    }
                }
            })
        })
        .collect();
    let acked = |seen: &Arc<Mutex<Seen>>| seen.lock().expect("seen").acked.len();
    std::thread::sleep(Duration::from_millis(800));
    assert!(acked(&seen) > 0, "no write before the outage");
    pg.down();
    std::thread::sleep(Duration::from_secs(8));
    let during = acked(&seen);
    pg.up();
    // scimd reconnects by itself: writes are acknowledged again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked(&seen) < during + 20 {
        assert!(
            Instant::now() < deadline,
            "no write acknowledged after the restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    let seen = seen.lock().expect("seen");
    assert!(
        seen.other.is_empty(),
        "answers other than 201/503: {:?}",
        seen.other
    );
    assert!(seen.unavailable > 0, "no 503 while the database was down");
    assert!(seen.retry_after, "503 without Retry-After");
    assert!(
        seen.slowest < Duration::from_secs(15),
        "a request hung for {:?}",
        seen.slowest
    );
    // Every acknowledged write is in the database.
    let (st, body) = parts(
        s.get("/scim/v2/Users?filter=userName%20sw%20%22outage-%22&count=0")
            .send()
            .expect("count"),
    );
    assert_eq!(st, 200, "{body}");
    let total = body["totalResults"].as_u64().expect("total") as usize;
    assert!(
        total >= seen.acked.len(),
        "{total} stored, {} acknowledged",
        seen.acked.len()
    );
    for name in &seen.acked {
        let (st, body) = parts(
            s.get(&format!(
                "/scim/v2/Users?filter=userName%20eq%20%22{name}%22&count=0"
            ))
            .send()
            .expect("get"),
        );
        assert_eq!(
            (st, body["totalResults"].as_u64()),
            (200, Some(1)),
            "{name}: {body}"
        );
    }
}
