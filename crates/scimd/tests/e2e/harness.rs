//! Starts a real `scimd` process on a loopback port with its own data directory.

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub port: u16,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub client: Client,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Server {
    pub fn start() -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server::start_in(&dir, &[]);
        s._tmp = Some(tmp);
        s
    }

    pub fn start_with(extra: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server::start_in(&dir, extra);
        s._tmp = Some(tmp);
        s
    }

    /// Start on an existing data directory (kept by the caller).
    pub fn start_in(dir: &Path, extra: &[&str]) -> Server {
        let mut args = vec!["--protection", "bypass"];
        args.extend_from_slice(extra);
        Server::spawn_in(dir, &args)
    }

    /// Start with protection on: oauth unless `extra` names another
    /// `--protection`; no bypass default.
    pub fn start_protected(extra: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server::spawn_in(&dir, extra);
        s._tmp = Some(tmp);
        s
    }

    /// Start on an existing data directory with exactly these extra flags.
    pub fn spawn_in(dir: &Path, extra: &[&str]) -> Server {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_scimd"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn scimd");
        let server = Server {
            child,
            port,
            data_dir: dir.to_path_buf(),
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

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// SIGKILL: no shutdown code runs, as in a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path))
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.client.delete(self.url(path))
    }

    pub fn send_json(&self, method: &str, path: &str, body: &Value) -> RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        self.client
            .request(m, self.url(path))
            .header("Content-Type", "application/scim+json")
            .body(body.to_string())
    }

    pub fn post(&self, path: &str, body: &Value) -> Response {
        self.send_json("POST", path, body).send().expect("POST")
    }

    pub fn put(&self, path: &str, body: &Value) -> Response {
        self.send_json("PUT", path, body).send().expect("PUT")
    }

    pub fn patch(&self, path: &str, body: &Value) -> Response {
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
pub fn parts(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Assert a SCIM error body with this status and scimType.
pub fn assert_scim_error(resp: Response, status: u16, scim_type: Option<&str>) -> Value {
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
