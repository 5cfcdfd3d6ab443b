//! The sync engine's connection test: a scimd with `--sync-dir` whose connectors
//! point at a second live scimd (OAuth) and at the reference server (TOKEN).

use crate::harness::{assert_scim_error, parts, reference_binary, scimd, start_reference, Server};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PREFIX: &str = "https://gluu.org/scim/";

/// `scimd clients create … --json` on `s`: the new client's id and secret.
fn create_client(s: &Server, scopes: &str) -> (String, String) {
    let out = scimd(
        s,
        &[
            "clients", "create", "--name", "sync", "--scope", scopes, "--json",
        ],
    );
    let v: Value = serde_json::from_str(out.trim()).expect("client JSON");
    (
        v["client_id"].as_str().expect("id").to_string(),
        v["client_secret"].as_str().expect("secret").to_string(),
    )
}

fn token(s: &Server, id: &str, secret: &str) -> String {
    let resp = s
        .client
        .post(s.url("/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .expect("token request");
    let (status, body) = parts(resp);
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("token").to_string()
}

pub(crate) fn write(dir: &Path, file: &str, body: &Value) {
    std::fs::write(dir.join(file), body.to_string()).expect("write");
}

/// A connector to `remote` (a scimd) with OAuth; the secret read from `secret_file`.
fn oauth_connector(name: &str, remote: &Server, id: &str, secret_file: &Path) -> Value {
    json!({
        "name": name,
        "enabled": true,
        "configurationProperties": {
            "SCIMEndpoint": remote.url("/scim/v2"),
            "SCIMVersion": 2,
            "authenticationMethod": "OAUTH",
            "clientId": id,
            "clientSecret": {"$file": secret_file},
            "tokenEndpoint": remote.url("/oauth/token"),
        }
    })
}

fn test_action(s: &Server, connector: &str, token: &str) -> reqwest::blocking::Response {
    s.client
        .post(s.url(&format!("/sync/system/{connector}?_action=test")))
        .bearer_auth(token)
        .send()
        .expect("POST test")
}

/// A remote scimd, a sync dir with a good and a wrong-secret connector to it,
/// and the scimd serving that dir with an admin client's token.
struct Setup {
    _remote: Server,
    local: Server,
    dir: tempfile::TempDir,
    admin_token: String,
    wrong_secret: String,
}

fn setup() -> Setup {
    let remote = Server::start_protected(&[]);
    let (id, secret) = create_client(&remote, &format!("{PREFIX}users.read"));
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.secret");
    std::fs::write(&good, format!("{secret}\n")).expect("secret");
    let wrong_secret = "not-the-secret-0123456789".to_string();
    let bad = dir.path().join("bad.secret");
    std::fs::write(&bad, &wrong_secret).expect("secret");
    write(
        dir.path(),
        "remote.json",
        &oauth_connector("remote", &remote, &id, &good),
    );
    write(
        dir.path(),
        "wrong.json",
        &oauth_connector("wrong", &remote, &id, &bad),
    );
    let local = serve_sync(dir.path());
    let (admin_id, admin_secret) = create_client(&local, &format!("{PREFIX}admin"));
    let admin_token = token(&local, &admin_id, &admin_secret);
    Setup {
        _remote: remote,
        local,
        dir,
        admin_token,
        wrong_secret,
    }
}

fn serve_sync(dir: &Path) -> Server {
    let arg = dir.to_string_lossy().into_owned();
    Server::start_protected(&["--sync-dir", &arg])
}

#[test]
fn test_of_a_live_scimd_is_ok_with_its_object_types() {
    let s = setup();
    let (status, body) = parts(test_action(&s.local, "remote", &s.admin_token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!([{"name": "remote", "enabled": true,
                "objectTypes": ["account", "group"], "ok": true}])
    );
}

#[test]
fn a_wrong_secret_fails_without_showing_it() {
    let s = setup();
    let (status, body) = parts(test_action(&s.local, "wrong", &s.admin_token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["name"], "wrong");
    assert_eq!(body[0]["ok"], false, "{body}");
    let error = body[0]["error"].as_str().expect("error");
    assert!(error.starts_with("authentication failed (401)"), "{error}");
    assert!(!error.is_empty() && !error.contains('\n'), "{error}");
    assert!(!error.contains(&s.wrong_secret), "{error}");
    assert!(!body.to_string().contains(&s.wrong_secret), "{body}");
}

#[test]
fn unknown_connector_bad_action_and_scopes() {
    let s = setup();
    assert_scim_error(test_action(&s.local, "nope", &s.admin_token), 404, None);
    let resp = s
        .local
        .client
        .post(s.local.url("/sync/system/remote?_action=recon"))
        .bearer_auth(&s.admin_token)
        .send()
        .expect("POST");
    assert_scim_error(resp, 400, Some("invalidValue"));
    let (id, secret) = create_client(&s.local, &format!("{PREFIX}users.read"));
    let reader = token(&s.local, &id, &secret);
    let (status, _) = parts(test_action(&s.local, "remote", &reader));
    assert_eq!(status, 403);
    let anonymous = s
        .local
        .client
        .post(s.local.url("/sync/system/remote?_action=test"))
        .send()
        .expect("POST");
    assert_eq!(anonymous.status().as_u16(), 401);
}

#[test]
fn cli_test_prints_the_table_json_and_exit_code() {
    let s = setup();
    let dir = s.dir.path().to_string_lossy().into_owned();
    let out = sync_cli(&["sync", "test", "remote", "--sync-dir", &dir]);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("account,group") && table.contains("true"),
        "{table}"
    );
    let out = sync_cli(&["sync", "test", "wrong", "--sync-dir", &dir, "--json"]);
    assert!(!out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v[0]["ok"], false, "{v}");
    let all = format!("{out:?}");
    assert!(!all.contains(&s.wrong_secret), "{all}");
}

fn sync_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_scimd"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run scimd")
}

/// `scimd serve` on this sync dir: its exit status and stderr (it must stop).
fn serve_fails(dir: &Path) -> String {
    let data = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .arg("--sync-dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn scimd");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(!status.success());
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("scimd served with a bad sync dir");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_bad_sync_json_fails_the_start_with_the_named_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "sync.json",
        &json!({"mappings": [{"name": "m1", "source": "system/nope/account",
                              "target": "managed/user"}]}),
    );
    let err = serve_fails(dir.path());
    assert!(
        err.contains("sync.json: mapping 'm1': 'source': no connector named 'nope'"),
        "{err}"
    );
    write(
        dir.path(),
        "sync.json",
        &json!({"mappings": [{"name": "m2", "source": "managed/thing",
                              "target": "managed/user"}]}),
    );
    let err = serve_fails(dir.path());
    assert!(err.contains("sync.json: mapping 'm2': 'source'"), "{err}");
}

#[test]
fn test_of_the_reference_server_with_a_token_is_ok() {
    let Some(bin) = reference_binary() else {
        return;
    };
    let reference = start_reference(&bin, "ref-token");
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "reference.json",
        &reference.connector("reference", "/v2", "ref-token"),
    );
    let local = serve_sync(dir.path());
    let (id, secret) = create_client(&local, &format!("{PREFIX}admin"));
    let admin = token(&local, &id, &secret);
    let (status, body) = parts(test_action(&local, "reference", &admin));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["ok"], true, "{body}");
    let types = body[0]["objectTypes"].as_array().expect("objectTypes");
    assert!(types.contains(&json!("account")), "{body}");
    assert!(types.contains(&json!("group")), "{body}");
}

fn admin_call(s: &Setup, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = s
        .local
        .client
        .request(m, s.local.url(path))
        .bearer_auth(&s.admin_token);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Connectors through the admin API: listed and shown without secrets, written
/// (checked as at start, mode 0600, "***" keeps a secret), used by the next
/// test, deleted; bad ones change nothing.
#[test]
fn connectors_are_managed_through_the_admin_api() {
    let s = setup();
    let (status, list) = admin_call(&s, "GET", "/sync/system", None);
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["remote", "wrong"]);
    assert!(!list.to_string().contains(&s.wrong_secret), "{list}");

    // A literal secret: written to the file, never shown.
    let (_, remote) = admin_call(&s, "GET", "/sync/system/remote", None);
    let file = remote["configurationProperties"]["clientSecret"]["$file"]
        .as_str()
        .expect("$file")
        .to_string();
    let secret = std::fs::read_to_string(&file)
        .expect("secret")
        .trim()
        .to_string();
    let mut lit = remote.clone();
    lit["name"] = json!("lit");
    lit["configurationProperties"]["clientSecret"] = json!(secret);
    let (status, created) = admin_call(&s, "PUT", "/sync/system/lit", Some(&lit.to_string()));
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["configurationProperties"]["clientSecret"], "***");
    let path = s.dir.path().join("lit.json");
    assert!(std::fs::read_to_string(&path)
        .expect("file")
        .contains(&secret));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (status, tested) = parts(test_action(&s.local, "lit", &s.admin_token));
    assert_eq!((status, &tested[0]["ok"]), (200, &json!(true)), "{tested}");
    let (_, all) = admin_call(&s, "GET", "/sync/system", None);
    assert!(!all.to_string().contains(&secret), "{all}");

    // "***" keeps the secret through a change; the change is used at once.
    let mut changed = created.clone();
    changed["configurationProperties"]["SCIMEndpoint"] = json!("http://127.0.0.1:9/scim/v2");
    let (status, _) = admin_call(&s, "PUT", "/sync/system/lit", Some(&changed.to_string()));
    assert_eq!(status, 200);
    assert!(std::fs::read_to_string(&path)
        .expect("file")
        .contains(&secret));
    let (_, tested) = parts(test_action(&s.local, "lit", &s.admin_token));
    assert_eq!(tested[0]["ok"], false, "{tested}");

    // Bad input: a SCIM error, nothing written.
    for (body, status, scim_type) in [
        ("{not json", 400, "invalidSyntax"),
        (
            r#"{"configurationProperties": {"authenticationMethod": "MAGIC"}}"#,
            400,
            "invalidValue",
        ),
        (
            r#"{"name": "other", "configurationProperties": {}}"#,
            400,
            "invalidValue",
        ),
    ] {
        let (got, err) = admin_call(&s, "PUT", "/sync/system/bad", Some(body));
        assert_eq!(got, status, "{body}: {err}");
        assert_eq!(err["scimType"], scim_type, "{err}");
    }
    let (got, err) = admin_call(&s, "PUT", "/sync/system/.hidden", Some(&lit.to_string()));
    assert_eq!(
        (got, &err["scimType"]),
        (400, &json!("invalidValue")),
        "{err}"
    );
    assert!(!s.dir.path().join("bad.json").exists());

    // A reader may not write connectors.
    let (id, secret2) = create_client(&s.local, &format!("{PREFIX}users.read"));
    let reader = token(&s.local, &id, &secret2);
    let resp = s
        .local
        .client
        .put(s.local.url("/sync/system/lit"))
        .bearer_auth(&reader)
        .body(lit.to_string())
        .send()
        .expect("PUT");
    assert_eq!(resp.status().as_u16(), 403);

    let (status, _) = admin_call(&s, "DELETE", "/sync/system/lit", None);
    assert_eq!(status, 204);
    assert!(!path.exists());
    let (status, _) = admin_call(&s, "GET", "/sync/system/lit", None);
    assert_eq!(status, 404);
    let (status, _) = admin_call(&s, "DELETE", "/sync/system/lit", None);
    assert_eq!(status, 404);
}
