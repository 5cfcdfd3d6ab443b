//! Starts a real `scimd` process on a loopback port with its own data directory.

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Server {
    child: Child,
    pub port: u16,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub client: Client,
    /// `--database URL` when the server does not use the SQLite file in `data_dir`.
    pub database: Option<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Server {
    pub(crate) fn start() -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server::start_in(&dir, &[]);
        s._tmp = Some(tmp);
        s
    }

    pub(crate) fn start_with(extra: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server::start_in(&dir, extra);
        s._tmp = Some(tmp);
        s
    }

    /// Start on an existing data directory (kept by the caller).
    pub(crate) fn start_in(dir: &Path, extra: &[&str]) -> Server {
        let mut args = vec!["--protection", "bypass"];
        args.extend_from_slice(extra);
        Server::spawn_in(dir, &args)
    }

    /// Start with protection on: oauth unless `extra` names another
    /// `--protection`; no bypass default.
    pub(crate) fn start_protected(extra: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server::spawn_in(&dir, extra);
        s._tmp = Some(tmp);
        s
    }

    /// Start on an existing data directory with exactly these extra flags.
    pub(crate) fn spawn_in(dir: &Path, extra: &[&str]) -> Server {
        let port = free_port();
        let default_db = default_database(dir, extra);
        let database = default_db.get(1).cloned().or_else(|| {
            let at = extra.iter().position(|a| *a == "--database")?;
            extra.get(at + 1).map(|u| u.to_string())
        });
        let child = Command::new(env!("CARGO_BIN_EXE_scimd"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir)
            .args(extra)
            .args(&default_db)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(server_log(port))
            .spawn()
            .expect("spawn scimd");
        let server = Server {
            child,
            port,
            data_dir: dir.to_path_buf(),
            database,
            _tmp: None,
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self
                .client
                .get(self.url("/scim/v2/ServiceProviderConfig"))
                .send()
                .is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("scimd did not start on port {}", self.port);
    }

    /// Flags that make a `scimd` command (clients, keys, export…) use this
    /// server's database.
    pub(crate) fn database_args(&self) -> Vec<String> {
        match &self.database {
            Some(url) => vec!["--database".to_string(), url.clone()],
            None => Vec::new(),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the process to exit (after a signal): its exit status.
    pub(crate) fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait for scimd")
    }

    /// SIGKILL: no shutdown code runs, as in a crash.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path))
    }

    pub(crate) fn delete(&self, path: &str) -> RequestBuilder {
        self.client.delete(self.url(path))
    }

    pub(crate) fn send_json(&self, method: &str, path: &str, body: &Value) -> RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        self.client
            .request(m, self.url(path))
            .header("Content-Type", "application/scim+json")
            .body(body.to_string())
    }

    pub(crate) fn post(&self, path: &str, body: &Value) -> Response {
        self.send_json("POST", path, body).send().expect("POST")
    }

    pub(crate) fn put(&self, path: &str, body: &Value) -> Response {
        self.send_json("PUT", path, body).send().expect("PUT")
    }

    pub(crate) fn patch(&self, path: &str, body: &Value) -> Response {
        self.send_json("PATCH", path, body).send().expect("PATCH")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status and JSON body of a response.
pub(crate) fn parts(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().expect("body");
    if text.contains("access_token") || text.contains("client_secret") {
        note_secrets_in(&text);
    }
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// POST a minimal user named `name` to `users_url` (load generators of the
/// tests: a failure to answer is the caller's to count).
pub(crate) fn post_user(client: &Client, users_url: &str, name: &str) -> reqwest::Result<Response> {
    client
        .post(users_url)
        .header("content-type", "application/scim+json")
        .body(
            serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                               "userName": name})
            .to_string(),
        )
        .send()
}

/// Assert a SCIM error body with this status and scimType.
pub(crate) fn assert_scim_error(resp: Response, status: u16, scim_type: Option<&str>) -> Value {
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (got, body) = parts(resp);
    assert_eq!(got, status, "status; body {body}");
    assert!(ct.starts_with("application/scim+json"), "content type {ct}");
    assert_eq!(
        body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{body}"
    );
    assert_eq!(body["status"], status.to_string(), "{body}");
    assert_eq!(
        body.get("scimType").and_then(Value::as_str),
        scim_type,
        "scimType; body {body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body
}

/// PostgreSQL for the tests: `SCIMD_TEST_POSTGRES_URL`, by default the database
/// that `scripts/ensure-postgres.sh` creates.
pub(crate) fn postgres_url() -> String {
    scim_store::postgres::test_url()
}

/// A fresh schema of its own for one test (dropped with the value), and the URL
/// that selects it; `None` (with a notice) when the test is to be skipped. With
/// `SCIMD_TEST_POSTGRES_URL` set (as under `scripts/test.sh`) an unreachable
/// server fails the test instead (`ScratchSchema::for_tests`).
pub(crate) fn postgres_schema() -> Option<scim_store::postgres::ScratchSchema> {
    sweep_stale_schemas();
    scim_store::postgres::ScratchSchema::for_tests(&format!("e2e_p{}", std::process::id()))
}

/// With `SCIMD_E2E_DATABASE=postgres` every server the tests start runs on
/// PostgreSQL (a fresh schema per data directory, found again when a test restarts
/// a server on the same directory), so the whole e2e suite covers that backend too.
fn default_database(dir: &Path, extra: &[&str]) -> Vec<String> {
    let wanted = std::env::var("SCIMD_E2E_DATABASE").is_ok_and(|v| v == "postgres");
    if !wanted || extra.contains(&"--database") {
        return Vec::new();
    }
    let marker = dir.join("e2e-postgres-url");
    let url = match std::fs::read_to_string(&marker) {
        Ok(url) => url,
        Err(_) => {
            let schema = postgres_schema().unwrap_or_else(|| {
                panic!(
                    "SCIMD_E2E_DATABASE=postgres needs PostgreSQL (./scripts/ensure-postgres.sh, \
                     or set SCIMD_TEST_POSTGRES_URL)"
                )
            });
            let url = schema.url.clone();
            std::fs::write(&marker, &url).expect("write schema marker");
            // Kept until the test process ends: a test may restart its server on
            // this directory. `sweep_stale_schemas` removes it on a later run.
            std::mem::forget(schema);
            url
        }
    };
    vec!["--database".to_string(), url]
}

/// Drop the schemas left by e2e processes that no longer run.
fn sweep_stale_schemas() {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        let Ok(mut client) = ::postgres::Client::connect(&postgres_url(), ::postgres::NoTls) else {
            return;
        };
        let Ok(rows) = client.query(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'e2e\\_p%'",
            &[],
        ) else {
            return;
        };
        for row in rows {
            let Ok(name) = row.try_get::<_, String>(0) else {
                continue;
            };
            let pid = name
                .trim_start_matches("e2e_p")
                .split('_')
                .next()
                .and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"));
            }
        }
    });
}

/// Run `scimd ARGS --data-dir DIR [--database URL]` on the server's database;
/// stdout on success.
/// Where the e2e servers' logs go (`scripts/test.sh` greps them for every
/// secret the tests used: `scripts/lib/check-logs.py`).
pub(crate) fn log_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-logs");
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

/// A new log file for the server on `port`.
fn server_log(port: u16) -> Stdio {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let path = log_dir().join(format!("scimd-{port}-{nanos}.log"));
    std::fs::File::create(path).map_or_else(|_| Stdio::null(), Stdio::from)
}

/// Remember a secret a test used, so that the log check can look for it.
pub(crate) fn note_secret(secret: &str) {
    use std::io::Write;
    if secret.len() < 8 {
        return;
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_dir().join("secrets.txt"))
    {
        let _ = writeln!(f, "{secret}");
    }
}

/// Note every secret in a JSON answer of `scimd clients …` or of a token endpoint.
pub(crate) fn note_secrets_in(text: &str) {
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line.trim()) else {
            continue;
        };
        for key in ["client_secret", "access_token"] {
            if let Some(s) = v.get(key).and_then(Value::as_str) {
                note_secret(s);
            }
        }
    }
}

pub(crate) fn scimd(s: &Server, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_scimd"))
        .args(args)
        .arg("--data-dir")
        .arg(&s.data_dir)
        .args(s.database_args())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run scimd");
    assert!(
        out.status.success(),
        "scimd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    note_secrets_in(&text);
    text
}

/// The reference server's binary (`scripts/setup-python.sh` installs it); `None`,
/// with a notice, when it is missing outside `scripts/test.sh`, where it must be there.
pub(crate) fn reference_binary() -> Option<PathBuf> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/scim2-server");
    if bin.exists() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("SCIMD_TEST_POSTGRES_URL").is_none(),
        "scim2-server missing at {}: run ./scripts/setup-python.sh",
        bin.display()
    );
    eprintln!("skipped: scim2-server not installed (./scripts/setup-python.sh)");
    None
}

/// The reference server on a free port, killed on drop.
pub(crate) struct Reference {
    child: Child,
    pub(crate) port: u16,
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Reference {
    /// A sync connector file to this server at `path` (`""` or `/v2`) with the
    /// bearer `token`.
    pub(crate) fn connector(&self, name: &str, path: &str, token: &str) -> serde_json::Value {
        serde_json::json!({"name": name, "enabled": true, "configurationProperties": {
            "SCIMEndpoint": format!("http://127.0.0.1:{}{path}", self.port),
            "authenticationMethod": "TOKEN",
            "authToken": token,
        }})
    }
}

/// scim2-server on a free loopback port, accepting the bearer `token`.
pub(crate) fn start_reference(bin: &Path, token: &str) -> Reference {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let child = Command::new(bin)
        .args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
        .args(["--bearer-token", token])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn scim2-server");
    let r = Reference { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "scim2-server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    r
}

/// A client with every scope on `s`'s database, as (id, secret).
pub(crate) fn admin_client(s: &Server) -> (String, String) {
    let out = scimd(
        s,
        &[
            "clients", "create", "--name", "tests", "--scope", "all", "--json",
        ],
    );
    let v: Value = serde_json::from_str(out.trim()).expect("client JSON");
    (
        v["client_id"].as_str().expect("id").to_string(),
        v["client_secret"].as_str().expect("secret").to_string(),
    )
}

/// A token of a new client with every scope.
pub(crate) fn admin_token(s: &Server) -> String {
    let (id, secret) = admin_client(s);
    let resp = s
        .client
        .post(s.url("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .expect("token request");
    let (status, body) = parts(resp);
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("token").to_string()
}
