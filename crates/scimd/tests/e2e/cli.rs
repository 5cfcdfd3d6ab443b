//! The `scim` command-line client against a live scimd with OAuth protection
//! on: a real client made with `scimd clients create`, the secret in a file,
//! the real `scim` binary as a child process.

use crate::harness::{parts, scimd, Server};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn scim_bin() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_scimd")).with_file_name("scim")
}

/// A protected server, an OAuth client of it and a directory for files.
struct Env {
    s: Server,
    client_id: String,
    secret_file: PathBuf,
    dir: tempfile::TempDir,
}

fn setup() -> Env {
    let s = Server::start_protected(&[]);
    let out = scimd(
        &s,
        &[
            "clients", "create", "--name", "scim-cli", "--scope", "all", "--json",
        ],
    );
    let v: Value = serde_json::from_str(out.trim()).expect("client JSON");
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("secret");
    std::fs::write(
        &secret_file,
        format!("{}\n", v["client_secret"].as_str().expect("secret")),
    )
    .expect("write secret");
    Env {
        s,
        client_id: v["client_id"].as_str().expect("id").to_string(),
        secret_file,
        dir,
    }
}

impl Env {
    fn base(&self) -> String {
        self.s.url("/scim/v2")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `scim` with nothing from the environment: no config file, no profile.
    fn bare(&self) -> Command {
        let mut c = Command::new(scim_bin());
        c.env_remove("SCIM_URL")
            .env_remove("SCIM_PROFILE")
            .env_remove("XDG_CONFIG_HOME")
            .env("SCIM_CONFIG", self.path("no-such-config.toml"))
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        c
    }

    /// `scim` with the connection flags after the subcommand's arguments.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.bare();
        c.args(args)
            .args([
                "--url",
                &self.base(),
                "--client-id",
                &self.client_id,
                "--client-secret-file",
            ])
            .arg(&self.secret_file);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run scim")
    }

    /// stdout of a command that must succeed.
    fn ok(&self, args: &[&str]) -> String {
        ok(self.run(args), args)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).expect("JSON output")
    }

    /// The one stderr line of a command that must fail.
    fn fails(&self, args: &[&str]) -> String {
        fails(self.run(args), args)
    }

    /// An admin-scoped token, for checks made behind the CLI's back.
    fn token(&self) -> String {
        let secret = std::fs::read_to_string(&self.secret_file).expect("secret");
        let resp = self
            .s
            .client
            .post(self.s.url("/oauth/token"))
            .basic_auth(&self.client_id, Some(secret.trim()))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .expect("token");
        let (st, body) = parts(resp);
        assert_eq!(st, 200, "{body}");
        body["access_token"].as_str().expect("token").to_string()
    }

    fn get(&self, path: &str) -> Value {
        let (st, v) = parts(
            self.s
                .get(path)
                .bearer_auth(self.token())
                .send()
                .expect("get"),
        );
        assert_eq!(st, 200, "{v}");
        v
    }

    /// Every resource of an endpoint, page by page.
    fn all(&self, endpoint: &str) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let v = self.get(&format!(
                "/scim/v2/{endpoint}?count=200&startIndex={}",
                out.len() + 1
            ));
            let page = v["Resources"].as_array().cloned().unwrap_or_default();
            let total = v["totalResults"].as_u64().expect("total") as usize;
            out.extend(page.iter().cloned());
            if page.is_empty() || out.len() >= total {
                return out;
            }
        }
    }
}

fn ok(out: Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "scim {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn fails(out: Output, args: &[&str]) -> String {
    let err = String::from_utf8(out.stderr).expect("utf-8");
    assert!(
        !out.status.success(),
        "scim {args:?} should fail; stdout {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(err.lines().count(), 1, "one line expected: {err:?}");
    assert!(err.starts_with("scim: error: "), "{err}");
    err.trim_end().to_string()
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[test]
fn users_every_command_and_output_mode() {
    let e = setup();
    std::fs::write(e.path("pw"), "S3cret-pass!\n").unwrap();
    let pw = e.path("pw");
    let bj = e.json(&[
        "users",
        "create",
        "--user-name",
        "bjensen",
        "--given-name",
        "Barbara",
        "--family-name",
        "Jensen",
        "--email",
        "bjensen@example.com",
        "--password-file",
        pw.to_str().unwrap(),
    ]);
    assert_eq!(bj["name"]["givenName"], "Barbara");
    assert_eq!(bj["emails"][0]["value"], "bjensen@example.com");
    assert!(bj.get("password").is_none(), "{bj}");
    let bid = id(&bj);
    std::fs::write(
        e.path("al.json"),
        json!({"schemas": [USER], "userName": "al", "displayName": "Al Zed", "active": false})
            .to_string(),
    )
    .unwrap();
    let al = e.json(&[
        "users",
        "create",
        "--file",
        e.path("al.json").to_str().unwrap(),
    ]);
    let aid = id(&al);
    for n in ["carol", "dave", "erin"] {
        e.ok(&["users", "create", "--user-name", n]);
    }

    // Table: a header and rows aligned on the same columns, no color off a terminal.
    let table = e.ok(&["users", "list", "--sort-by", "userName"]);
    assert!(!table.contains('\x1b'), "{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID "), "{table}");
    let col = lines[0].find("USERNAME").expect("USERNAME column");
    assert_eq!(&lines[1][col..col + 2], "al", "{table}");
    assert_eq!(&lines[2][col..col + 7], "bjensen", "{table}");
    assert_eq!(lines.len(), 6, "{table}");

    // json / jsonl, filter, sort order, attributes, count and --all.
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| u["userName"].as_str().unwrap().to_string())
            .collect()
    };
    let desc = e.json(&[
        "users",
        "list",
        "--sort-by",
        "userName",
        "--sort-order",
        "descending",
        "--count",
        "2",
    ]);
    assert_eq!(names(&desc), ["erin", "dave"]);
    let all = e.json(&[
        "users",
        "list",
        "--sort-by",
        "userName",
        "--count",
        "2",
        "--all",
    ]);
    assert_eq!(names(&all), ["al", "bjensen", "carol", "dave", "erin"]);
    let jsonl = e.ok(&[
        "-o",
        "jsonl",
        "users",
        "list",
        "--filter",
        "userName sw \"b\" or userName eq \"al\"",
        "--attributes",
        "userName",
    ]);
    let rows: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{jsonl}");
    assert!(rows.iter().all(|r| r.get("name").is_none()), "{jsonl}");

    // get, in each mode.
    assert_eq!(e.json(&["users", "get", &bid])["userName"], "bjensen");
    let one = e.ok(&["users", "get", &bid]);
    assert!(
        one.lines()
            .any(|l| l.starts_with("name.givenName") && l.ends_with("Barbara")),
        "{one}"
    );
    let line = e.ok(&["users", "get", &bid, "-o", "jsonl"]);
    assert_eq!(line.lines().count(), 1);

    // patch by flags and by file, replace, delete.
    let p = e.json(&[
        "users",
        "patch",
        &bid,
        "--replace",
        "name.givenName=Babs",
        "--add",
        "title=Boss",
        "--replace",
        "active=false",
    ]);
    assert_eq!(
        (
            p["name"]["givenName"].as_str(),
            p["title"].as_str(),
            p["active"].as_bool()
        ),
        (Some("Babs"), Some("Boss"), Some(false))
    );
    let p = e.json(&["users", "patch", &bid, "--remove", "title"]);
    assert!(p.get("title").is_none(), "{p}");
    std::fs::write(
        e.path("p.json"),
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"nickName": "B", "title": "CEO"}}]})
        .to_string(),
    )
    .unwrap();
    let p = e.json(&[
        "users",
        "patch",
        &bid,
        "--file",
        e.path("p.json").to_str().unwrap(),
    ]);
    assert_eq!(
        (p["nickName"].as_str(), p["title"].as_str()),
        (Some("B"), Some("CEO"))
    );
    std::fs::write(
        e.path("r.json"),
        json!({"schemas": [USER], "userName": "al", "displayName": "Albert"}).to_string(),
    )
    .unwrap();
    let r = e.json(&[
        "users",
        "replace",
        &aid,
        "--file",
        e.path("r.json").to_str().unwrap(),
    ]);
    assert_eq!(r["displayName"], "Albert");
    assert_eq!(
        e.ok(&["users", "delete", &aid]).trim(),
        format!("deleted {aid}")
    );
    let err = e.fails(&["users", "get", &aid]);
    assert!(err.contains("404"), "{err}");
}

#[test]
fn groups_members_by_user_name_and_devices() {
    let e = setup();
    let u1 = id(&e.json(&["users", "create", "--user-name", "ann"]));
    let u2 = id(&e.json(&["users", "create", "--user-name", "ben"]));
    let u3 = id(&e.json(&["users", "create", "--user-name", "cid"]));
    let g = e.json(&[
        "groups",
        "create",
        "--display-name",
        "Admins",
        "--member",
        "ann",
        "--member",
        &u2,
    ]);
    let gid = id(&g);
    let member_ids = |g: &Value| -> Vec<String> {
        let mut v: Vec<String> = g["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| m["value"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(member_ids(&g), sorted(vec![u1.clone(), u2.clone()]));
    // members add/remove: the group by displayName, users by userName or id.
    e.ok(&["groups", "members", "add", "Admins", "cid"]);
    assert_eq!(
        member_ids(&e.json(&["groups", "get", &gid])),
        sorted(vec![u1.clone(), u2.clone(), u3.clone()])
    );
    e.ok(&["groups", "members", "remove", &gid, "ann", &u3]);
    assert_eq!(
        member_ids(&e.json(&["groups", "get", &gid])),
        vec![u2.clone()]
    );

    std::fs::write(
        e.path("g.json"),
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Ops"})
            .to_string(),
    )
    .unwrap();
    let ops = id(&e.json(&[
        "groups",
        "create",
        "--file",
        e.path("g.json").to_str().unwrap(),
    ]));
    let table = e.ok(&["groups", "list", "--sort-by", "displayName"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].contains("DISPLAY NAME") && lines[0].ends_with("MEMBERS"),
        "{table}"
    );
    assert!(
        lines[1].contains("Admins") && lines[1].ends_with('1'),
        "{table}"
    );
    assert!(lines[2].contains("Ops"), "{table}");
    let p = e.json(&[
        "groups",
        "patch",
        &ops,
        "--replace",
        "displayName=Operations",
    ]);
    assert_eq!(p["displayName"], "Operations");
    std::fs::write(e.path("g2.json"), json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Ops2", "members": [{"value": u1}]}).to_string()).unwrap();
    let r = e.json(&[
        "groups",
        "replace",
        &ops,
        "--file",
        e.path("g2.json").to_str().unwrap(),
    ]);
    assert_eq!(member_ids(&r), vec![u1.clone()]);
    e.ok(&["groups", "delete", &ops]);
    assert!(e.fails(&["groups", "get", &ops]).contains("404"));

    // Devices are enrolled by the admin command, then listed, read and deleted.
    let devs = e.path("devices.jsonl");
    let dev = |user: &str, name: &str| {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:FidoDevice"],
        "userId": user, "creationDate": "2024-01-02T03:04:05Z", "application": "https://idp.example.org",
        "counter": 1, "deviceKeyHandle": format!("kh-{name}"), "deviceHashCode": "1", "status": "active", "displayName": name})
    };
    std::fs::write(
        &devs,
        format!("{}\n{}\n", dev(&u1, "phone"), dev(&u2, "key")),
    )
    .unwrap();
    scimd(&e.s, &["devices", "import", "--in", devs.to_str().unwrap()]);
    let list = e.json(&["devices", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let mine = e.json(&["devices", "list", "--user-id", &u1]);
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine[0]["displayName"], "phone");
    let did = id(&mine[0]);
    let table = e.ok(&["devices", "list"]);
    assert!(table.lines().next().unwrap().contains("USER ID"), "{table}");
    assert_eq!(e.json(&["devices", "get", &did])["userId"], u1.as_str());
    e.ok(&["devices", "delete", &did]);
    assert!(e.fails(&["devices", "get", &did]).contains("404"));
    assert_eq!(
        e.json(&["devices", "list", "--fido2"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn discover_shows_capabilities() {
    let e = setup();
    let t = e.ok(&["discover"]);
    assert!(
        t.lines()
            .any(|l| l.starts_with("bulk") && l.contains("maxOperations 30")),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.starts_with("User ") && l.contains("/Users")),
        "{t}"
    );
    let j = e.json(&["discover"]);
    assert_eq!(
        j["serviceProviderConfig"]["patch"]["supported"], true,
        "{j}"
    );
    let names: Vec<&str> = j["resourceTypes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"User") && names.contains(&"Group"),
        "{names:?}"
    );
}

#[test]
fn profiles_from_scim_config_and_xdg() {
    let e = setup();
    e.ok(&["users", "create", "--user-name", "pat"]);
    let secret = e.secret_file.display().to_string();
    let config = e.path("config.toml");
    std::fs::write(
        &config,
        format!(
            "default = \"main\"\n\n[profiles.main]\nurl = \"{}\"\nclient-id = \"{}\"\nclient-secret-file = \"{secret}\"\noutput = \"jsonl\"\n\n\
             [profiles.other]\nurl = \"http://127.0.0.1:1/scim/v2\"\n\n\
             [profiles.envsecret]\nurl = \"{}\"\nclient-id = \"{}\"\nclient-secret-env = \"MY_SCIM_SECRET\"\nheaders = [\"X-Test: 1\"]\n",
            e.base(),
            e.client_id,
            e.base(),
            e.client_id
        ),
    )
    .unwrap();
    // The default profile, its output mode, from $SCIM_CONFIG.
    let out = ok(
        e.bare()
            .env("SCIM_CONFIG", &config)
            .args(["users", "list"])
            .output()
            .unwrap(),
        &[],
    );
    let v: Value = serde_json::from_str(out.trim()).expect("jsonl from the profile");
    assert_eq!(v["userName"], "pat");
    // A named profile before the subcommand, flags overriding it.
    let out = ok(
        e.bare()
            .env("SCIM_CONFIG", &config)
            .args(["--profile", "main", "-o", "table", "users", "list"])
            .output()
            .unwrap(),
        &[],
    );
    assert!(out.starts_with("ID "), "{out}");
    // The secret from an environment variable.
    let s = std::fs::read_to_string(&e.secret_file).unwrap();
    let out = ok(
        e.bare()
            .env("SCIM_CONFIG", &config)
            .env("MY_SCIM_SECRET", s.trim())
            .args(["users", "list", "--profile", "envsecret", "-o", "json"])
            .output()
            .unwrap(),
        &[],
    );
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()[0]["userName"],
        "pat"
    );
    // The same file found through $XDG_CONFIG_HOME/scim/config.toml.
    let xdg = e.path("xdg");
    std::fs::create_dir_all(xdg.join("scim")).unwrap();
    std::fs::copy(&config, xdg.join("scim/config.toml")).unwrap();
    let out = ok(
        e.bare()
            .env_remove("SCIM_CONFIG")
            .env("XDG_CONFIG_HOME", &xdg)
            .args(["users", "list"])
            .output()
            .unwrap(),
        &[],
    );
    assert!(out.contains("\"pat\""), "{out}");
    // Unknown profiles, and secrets written in clear, are refused in one line.
    let err = fails(
        e.bare()
            .env("SCIM_CONFIG", &config)
            .args(["--profile", "nope", "users", "list"])
            .output()
            .unwrap(),
        &[],
    );
    assert!(err.contains("no profile \"nope\""), "{err}");
    let clear = e.path("clear.toml");
    std::fs::write(&clear, format!("[profiles.x]\nurl = \"{}\"\nclient-id = \"a\"\nclient-secret = \"plain-text-secret\"\n", e.base())).unwrap();
    let err = fails(
        e.bare()
            .env("SCIM_CONFIG", &clear)
            .args(["--profile", "x", "users", "list"])
            .output()
            .unwrap(),
        &[],
    );
    assert!(
        err.contains("client-secret") && !err.contains("plain-text-secret"),
        "{err}"
    );
    // A profile whose server is down: a transport error, one line.
    let err = fails(
        e.bare()
            .env("SCIM_CONFIG", &config)
            .args(["--profile", "other", "users", "list"])
            .output()
            .unwrap(),
        &[],
    );
    assert!(
        err.contains("127.0.0.1:1") || err.to_lowercase().contains("connect"),
        "{err}"
    );
}

#[test]
fn errors_are_one_line_with_the_scim_detail() {
    let e = setup();
    e.ok(&["users", "create", "--user-name", "dup"]);
    let err = e.fails(&["users", "create", "--user-name", "dup"]);
    assert!(
        err.contains("409") && err.contains("uniqueness") && err.contains("dup"),
        "{err}"
    );
    let err = e.fails(&["users", "list", "--filter", "userName eq"]);
    assert!(
        err.contains("400") && err.contains("invalidFilter"),
        "{err}"
    );
    let err = e.fails(&["users", "patch", "nope", "--replace", "title=x"]);
    assert!(err.contains("404"), "{err}");
    // Without credentials the server refuses; a bad secret fails at the token endpoint.
    let err = fails(
        e.bare()
            .args(["users", "list", "--url", &e.base()])
            .output()
            .unwrap(),
        &[],
    );
    assert!(err.contains("401"), "{err}");
    std::fs::write(e.path("bad"), "wrong-secret").unwrap();
    let err = fails(
        e.bare()
            .args([
                "users",
                "list",
                "--url",
                &e.base(),
                "--client-id",
                &e.client_id,
                "--client-secret-file",
            ])
            .arg(e.path("bad"))
            .output()
            .unwrap(),
        &[],
    );
    assert!(!err.contains("wrong-secret"), "{err}");
    assert!(
        err.to_lowercase().contains("auth") || err.contains("401"),
        "{err}"
    );
    // --scope narrows the token: reading works, writing is refused with 403.
    let read_only = ["--scope", "https://gluu.org/scim/users.read"];
    let mut args = vec!["users", "list"];
    args.extend(read_only);
    assert_eq!(e.json(&args).as_array().unwrap().len(), 1);
    let mut args = vec!["users", "create", "--user-name", "nope"];
    args.extend(read_only);
    let err = e.fails(&args);
    assert!(err.contains("403"), "{err}");
    // A bearer token is used as given.
    let out = ok(
        e.bare()
            .args([
                "users",
                "list",
                "-o",
                "json",
                "--url",
                &e.base(),
                "--token",
                &e.token(),
            ])
            .output()
            .unwrap(),
        &[],
    );
    assert_eq!(
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let err = e.fails(&["users", "get", "x", "--header", "no colon"]);
    assert!(err.contains("--header"), "{err}");
}

/// Users with extension data and groups (one nested), on the server behind `e`.
fn populate(e: &Env) {
    for i in 0..12 {
        let mut u = json!({"schemas": [USER, ENT], "userName": format!("user{i:02}"), "displayName": format!("User {i}"),
            "name": {"givenName": format!("Given{i}"), "familyName": "Family"},
            "emails": [{"type": "work", "value": format!("u{i}@work.example"), "primary": true}],
            "active": i % 3 != 0, ENT: {"employeeNumber": format!("{}", 1000 + i), "department": "R&D, \"Core\""}});
        if i == 5 {
            u["title"] = json!("Line\nbreak");
        }
        std::fs::write(e.path("u.json"), u.to_string()).unwrap();
        e.ok(&[
            "users",
            "create",
            "--file",
            e.path("u.json").to_str().unwrap(),
        ]);
    }
    e.ok(&[
        "groups",
        "create",
        "--display-name",
        "Staff",
        "--member",
        "user00",
        "--member",
        "user01",
        "--member",
        "user02",
    ]);
    e.ok(&["groups", "create", "--display-name", "Empty"]);
    e.ok(&[
        "groups",
        "create",
        "--display-name",
        "Leads",
        "--member",
        "user03",
    ]);
}

/// Users as comparable values: without what the server assigns.
fn users_by_name(e: &Env) -> BTreeMap<String, Value> {
    e.all("Users")
        .into_iter()
        .map(|mut u| {
            let o = u.as_object_mut().unwrap();
            for k in ["id", "meta", "groups"] {
                o.remove(k);
            }
            (u["userName"].as_str().unwrap().to_string(), u)
        })
        .collect()
}

/// displayName → sorted userNames of the members.
fn memberships(e: &Env) -> BTreeMap<String, Vec<String>> {
    let names: BTreeMap<String, String> = e
        .all("Users")
        .iter()
        .map(|u| (id(u), u["userName"].as_str().unwrap().to_string()))
        .collect();
    e.all("Groups")
        .iter()
        .map(|g| {
            let mut m: Vec<String> = g["members"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|m| names[m["value"].as_str().unwrap()].clone())
                        .collect()
                })
                .unwrap_or_default();
            m.sort();
            (g["displayName"].as_str().unwrap().to_string(), m)
        })
        .collect()
}

#[test]
fn jsonl_export_import_round_trip_relinks_groups_by_user_name() {
    let a = setup();
    populate(&a);
    let file = a.path("all.jsonl");
    a.ok(&["export", "--out", file.to_str().unwrap()]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 15);
    let staff: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["displayName"] == "Staff")
        .unwrap();
    assert_eq!(
        staff["members"][0]["userName"]
            .as_str()
            .map(|n| n.starts_with("user")),
        Some(true),
        "{staff}"
    );

    // Parallel searches over meta.created ranges give the same lines, in some order.
    let par = a.path("par.jsonl");
    a.ok(&[
        "export",
        "--out",
        par.to_str().unwrap(),
        "--concurrency",
        "3",
    ]);
    let sorted_lines = |p: &Path| {
        let mut l: Vec<String> = std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        l.sort();
        l
    };
    assert_eq!(sorted_lines(&par), sorted_lines(&file));
    let some = a.path("some.jsonl");
    a.ok(&[
        "export",
        "--out",
        some.to_str().unwrap(),
        "--resource",
        "users",
        "--concurrency",
        "4",
        "--filter",
        "active eq true",
    ]);
    assert_eq!(std::fs::read_to_string(&some).unwrap().lines().count(), 8);
    let b = setup();
    b.ok(&[
        "import",
        "--in",
        file.to_str().unwrap(),
        "--concurrency",
        "4",
    ]);
    assert_eq!(users_by_name(&b), users_by_name(&a));
    assert_eq!(memberships(&b), memberships(&a));
    assert_eq!(memberships(&b)["Staff"], ["user00", "user01", "user02"]);
    assert!(!a.path("all.jsonl.failures.csv").exists());

    // The same through /Bulk into a third server, users only, then groups only.
    let users = a.path("users.jsonl");
    let groups = a.path("groups.jsonl");
    a.ok(&[
        "export",
        "--out",
        users.to_str().unwrap(),
        "--resource",
        "users",
        "--filter",
        "userName sw \"user0\"",
    ]);
    a.ok(&[
        "export",
        "--out",
        groups.to_str().unwrap(),
        "--resource",
        "groups",
    ]);
    assert_eq!(std::fs::read_to_string(&users).unwrap().lines().count(), 10);
    let c = setup();
    c.ok(&[
        "import",
        "--in",
        groups.to_str().unwrap(),
        "--in",
        users.to_str().unwrap(),
        "--bulk",
    ]);
    assert_eq!(users_by_name(&c).len(), 10);
    assert_eq!(memberships(&c), memberships(&a));
}

#[test]
fn csv_export_import_round_trip() {
    let a = setup();
    populate(&a);
    let file = a.path("users.csv");
    a.ok(&["export", "--out", file.to_str().unwrap()]);
    let groups_file = a.path("users.groups.csv");
    let groups = std::fs::read_to_string(&groups_file).unwrap();
    assert!(
        groups.starts_with("displayName,externalId,members\n"),
        "{groups}"
    );
    assert!(groups.contains("Staff,,user00;user01;user02"), "{groups}");
    let users = std::fs::read_to_string(&file).unwrap();
    assert!(
        users.starts_with("userName,externalId,name.givenName,"),
        "{users}"
    );

    let b = setup();
    b.ok(&[
        "import",
        "--in",
        file.to_str().unwrap(),
        "--in",
        groups_file.to_str().unwrap(),
        "--bulk",
    ]);
    assert_eq!(users_by_name(&b), users_by_name(&a));
    assert_eq!(memberships(&b), memberships(&a));

    // Columns chosen on export; the same columns map back on import.
    let few = a.path("few.csv");
    a.ok(&[
        "export",
        "--out",
        few.to_str().unwrap(),
        "--resource",
        "users",
        "--filter",
        "userName eq \"user01\"",
        "--columns",
        "userName,name.givenName,emails[type eq \"work\"].value,active",
    ]);
    assert_eq!(std::fs::read_to_string(&few).unwrap(),
        "userName,name.givenName,\"emails[type eq \"\"work\"\"].value\",active\nuser01,Given1,u1@work.example,true\n");
}

#[test]
fn failure_report_names_every_failed_line() {
    let e = setup();
    e.ok(&["users", "create", "--user-name", "taken"]);
    let file = e.path("in.jsonl");
    let lines = [
        json!({"schemas": [USER], "userName": "fine1"}).to_string(),
        "{not json".to_string(),
        json!({"schemas": [USER], "userName": "taken"}).to_string(),
        json!({"schemas": [USER], "userName": "fine2", "active": "maybe"}).to_string(),
        json!({"title": "neither"}).to_string(),
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G", "members": [{"type": "User", "userName": "fine1"}, {"type": "User", "userName": "ghost"}]}).to_string(),
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let err = e.fails(&["import", "--in", file.to_str().unwrap()]);
    assert!(err.contains("5 of 6 records failed"), "{err}");
    let report = std::fs::read_to_string(e.path("in.jsonl.failures.csv")).unwrap();
    let rows: Vec<Vec<String>> = report.lines().skip(1).map(csv_cells).collect();
    let by_line: BTreeMap<&str, &Vec<String>> = rows.iter().map(|r| (r[0].as_str(), r)).collect();
    assert!(
        report.starts_with("line,status,scimType,detail\n"),
        "{report}"
    );
    assert_eq!(
        by_line.keys().copied().collect::<Vec<_>>(),
        ["2", "3", "4", "5", "6"],
        "{report}"
    );
    assert!(by_line["2"][3].contains("not JSON"), "{report}");
    assert_eq!(
        (by_line["3"][1].as_str(), by_line["3"][2].as_str()),
        ("409", "uniqueness"),
        "{report}"
    );
    assert!(by_line["3"][3].contains("taken"), "{report}");
    assert_eq!(&by_line["4"][1], "400", "{report}");
    assert!(by_line["6"][3].contains("ghost"), "{report}");
    // The group was made with the member that exists.
    assert_eq!(memberships(&e)["G"], ["fine1"]);
}

/// The cells of one CSV line (quotes, doubled quotes; no line breaks in cells).
fn csv_cells(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cells.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    cells
}

fn write_users_csv(path: &Path, n: usize) {
    let mut s =
        String::from("userName,name.givenName,name.familyName,emails[type eq \"work\"].value\n");
    for i in 0..n {
        s.push_str(&format!("r{i:05},G{i},F{i},r{i}@example.com\n"));
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn resume_after_a_killed_import_duplicates_no_one() {
    let e = setup();
    let n = 1500;
    let file = e.path("big.csv");
    write_users_csv(&file, n);
    let groups = e.path("groups.csv");
    std::fs::write(
        &groups,
        "displayName,members\nResumed,r00000;r00001;r01499\n",
    )
    .unwrap();

    let state = e.path("big.csv.import-state");
    let mut child = e
        .cmd(&[
            "import",
            "--in",
            file.to_str().unwrap(),
            "--in",
            groups.to_str().unwrap(),
            "--concurrency",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once part of the users are in (the state file has grown).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = std::fs::read_to_string(&state)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if done > 200 {
            break;
        }
        assert!(Instant::now() < deadline, "import made no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "import ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = e.get("/scim/v2/Users?count=0")["totalResults"]
        .as_u64()
        .unwrap();
    assert!(
        before > 0 && before < n as u64,
        "killed mid-import: {before}"
    );

    let out = e
        .cmd(&[
            "import",
            "--in",
            file.to_str().unwrap(),
            "--in",
            groups.to_str().unwrap(),
            "--resume",
            "--concurrency",
            "4",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    let summary = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        summary.contains("done before") && !summary.contains(" 0 done before"),
        "{summary}"
    );
    assert!(summary.contains(", 0 failed"), "{summary}");
    assert_eq!(
        e.get("/scim/v2/Users?count=0")["totalResults"],
        n as u64,
        "{err}"
    );
    let dup = e.get("/scim/v2/Users?filter=userName%20eq%20%22r00000%22");
    assert_eq!(dup["totalResults"], 1);
    assert_eq!(memberships(&e)["Resumed"], ["r00000", "r00001", "r01499"]);

    // Resuming a finished import changes nothing.
    let again = e
        .cmd(&[
            "import",
            "--in",
            file.to_str().unwrap(),
            "--in",
            groups.to_str().unwrap(),
            "--resume",
        ])
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(e.get("/scim/v2/Users?count=0")["totalResults"], n as u64);
    assert_eq!(e.get("/scim/v2/Groups?count=0")["totalResults"], 1);
    // With its state file gone, a resumed group is found by displayName, not made twice.
    std::fs::remove_file(e.path("groups.csv.import-state")).unwrap();
    let again = e
        .cmd(&["import", "--in", groups.to_str().unwrap(), "--resume"])
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(e.get("/scim/v2/Groups?count=0")["totalResults"], 1);
    assert_eq!(memberships(&e)["Resumed"], ["r00000", "r00001", "r01499"]);

    // Without --resume the same users are conflicts, each reported.
    let err = e.fails(&["import", "--in", file.to_str().unwrap(), "--bulk"]);
    assert!(err.contains(&format!("{n} of {n} records failed")), "{err}");
    let report = std::fs::read_to_string(e.path("big.csv.failures.csv")).unwrap();
    assert_eq!(report.lines().count(), n + 1);
    assert!(
        report.lines().nth(1).unwrap().contains(",409,uniqueness,"),
        "{report}"
    );
}
