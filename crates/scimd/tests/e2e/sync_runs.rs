//! Reconciliation runs end to end: a scimd with `--sync-dir` (OAuth on) syncing
//! with a second live scimd over OAuth client credentials, and with the
//! reference server (scim2-server) as a third party. The seed's walkthrough,
//! renames, the deletion threshold, a 409 turned into a link, dry runs, a run
//! killed and resumed, live sync.

use crate::harness::{parts, reference_binary, scimd, start_reference, Server};
use crate::sync::write;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/sync-with-scim/sync.json"
);

use crate::harness::{admin_client as client, admin_token as token_of};

/// A scimd with a token that may do everything.
struct Peer {
    server: Server,
    token: String,
}

impl Peer {
    fn new(server: Server) -> Peer {
        let token = token_of(&server);
        Peer { server, token }
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .server
            .client
            .request(m, self.server.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        parts(req.send().expect("request"))
    }

    fn create_user(&self, name: &str) -> String {
        let (status, body) = self.send(
            "POST",
            "/scim/v2/Users",
            Some(&json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": name,
                "displayName": format!("{name} display"),
                "name": {"givenName": name, "familyName": "Doe"},
                "emails": [{"value": format!("{}@Example.com", name.to_uppercase()), "primary": true, "type": "work"}],
                "active": true
            })),
        );
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_string()
    }

    fn users(&self, filter: &str) -> Vec<Value> {
        let path = format!(
            "/scim/v2/Users?count=200&filter={}",
            filter.replace(' ', "%20").replace('"', "%22")
        );
        let (status, body) = self.send("GET", &path, None);
        assert_eq!(status, 200, "{body}");
        body["Resources"].as_array().cloned().unwrap_or_default()
    }

    fn count(&self, endpoint: &str) -> u64 {
        let (status, body) = self.send("GET", &format!("/scim/v2/{endpoint}?count=0"), None);
        assert_eq!(status, 200, "{body}");
        body["totalResults"].as_u64().expect("total")
    }

    /// Start a run and wait for it (until it is no longer ACTIVE).
    fn recon(&self, mapping: &str, extra: &str) -> Value {
        let (status, body) = self.send(
            "POST",
            &format!("/sync/recon?_action=recon&mapping={mapping}&waitForCompletion=true{extra}"),
            None,
        );
        assert_eq!(status, 200, "{body}");
        body
    }

    fn audit(&self, id: &str) -> Vec<Value> {
        let (status, body) = self.send("GET", &format!("/sync/recon/{id}/audit?count=1000"), None);
        assert_eq!(status, 200, "{body}");
        body["entries"].as_array().cloned().unwrap_or_default()
    }

    /// Poll the run until `done` holds.
    fn poll(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, run) = self.send("GET", &format!("/sync/recon/{id}"), None);
            assert_eq!(status, 200, "{run}");
            if done(&run) {
                return run;
            }
            assert!(Instant::now() < deadline, "run never got there: {run}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A sync dir whose connector `scim` is `remote` over OAuth (secret in a file)
/// and whose mappings are the example's, changed by `edit`.
pub(crate) fn sync_dir(remote: &Server, edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let (id, secret) = client(remote);
    std::fs::write(dir.path().join("scim.secret"), &secret).expect("secret");
    write(
        dir.path(),
        "provisioner.openicf-scim.json",
        &json!({
            "name": "scim",
            "enabled": true,
            "configurationProperties": {
                "SCIMEndpoint": remote.url("/scim/v2"),
                "SCIMVersion": 2,
                "authenticationMethod": "OAUTH",
                "clientId": id,
                "clientSecret": {"$file": "scim.secret"},
                "tokenEndpoint": remote.url("/oauth/token"),
                "pageSize": 100
            }
        }),
    );
    let mut mappings: Value =
        serde_json::from_str(&std::fs::read_to_string(EXAMPLE).expect("example")).expect("json");
    edit(&mut mappings);
    write(dir.path(), "sync.json", &mappings);
    dir
}

fn mapping<'a>(config: &'a mut Value, name: &str) -> &'a mut Value {
    config["mappings"]
        .as_array_mut()
        .expect("mappings")
        .iter_mut()
        .find(|m| m["name"] == name)
        .expect("mapping")
}

fn local_on(dir: &Path) -> Peer {
    let arg = dir.to_string_lossy().into_owned();
    Peer::new(Server::start_protected(&["--sync-dir", &arg]))
}

#[test]
fn the_seed_walkthrough_users_and_groups_both_ways() {
    let remote = Peer::new(Server::start_protected(&[]));
    let dir = sync_dir(&remote.server, |_| {});
    let local = local_on(dir.path());
    let bjensen = remote.create_user("bjensen");
    let jdoe = remote.create_user("jdoe");
    let third = remote.create_user("mmiller");

    // Test the connector.
    let (status, test) = local.send("POST", "/sync/system/scim?_action=test", None);
    assert_eq!((status, &test[0]["ok"]), (200, &json!(true)), "{test}");

    // Reconcile accounts to users.
    let run = local.recon("systemScimAccount_managedUser", "");
    assert_eq!(run["state"], "SUCCESS", "{run}");
    assert_eq!(run["situationSummary"], json!({"ABSENT": 3}), "{run}");
    assert_eq!(run["statusSummary"], json!({"SUCCESS": 3}), "{run}");
    assert_eq!(
        run["progress"]["source"],
        json!({"processed": 3, "total": 3})
    );
    let users = local.users("userName eq \"bjensen\"");
    assert_eq!(users.len(), 1);
    let local_bjensen = users[0]["id"].as_str().expect("id").to_string();
    assert_eq!(users[0]["externalId"], bjensen.as_str());
    assert_eq!(users[0]["emails"][0]["value"], "bjensen@example.com");
    assert_eq!(users[0]["emails"][0]["type"], "work");
    let audit = local.audit(run["_id"].as_str().expect("id"));
    assert_eq!(audit.len(), 3);
    assert!(audit.iter().all(|e| e["situation"] == "ABSENT"
        && e["action"] == "CREATE"
        && e["status"] == "SUCCESS"
        && e["targetId"].is_string()));

    // A second run finds everything linked and changes nothing.
    let again = local.recon("systemScimAccount_managedUser", "");
    assert_eq!(
        again["situationSummary"],
        json!({"CONFIRMED": 3}),
        "{again}"
    );
    assert_eq!(local.count("Users"), 3);

    // Change a user locally, reconcile back to the remote.
    let (status, body) = local.send(
        "PATCH",
        &format!("/scim/v2/Users/{local_bjensen}"),
        Some(
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": "Barbara Jensen"}]}),
        ),
    );
    assert_eq!(status, 200, "{body}");
    let back = local.recon("managedUser_systemScimAccount", "");
    assert_eq!(back["state"], "SUCCESS", "{back}");
    assert_eq!(back["situationSummary"], json!({"CONFIRMED": 3}), "{back}");
    let (_, on_remote) = remote.send("GET", &format!("/scim/v2/Users/{bjensen}"), None);
    assert_eq!(on_remote["displayName"], "Barbara Jensen", "{on_remote}");

    // A rename on the remote is a rename here: same local user, new userName.
    let (status, _) = remote.send(
        "PATCH",
        &format!("/scim/v2/Users/{jdoe}"),
        Some(
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "userName", "value": "john.doe"}]}),
        ),
    );
    assert_eq!(status, 200);
    let local_jdoe = local.users(&format!("externalId eq \"{jdoe}\""))[0]["id"].clone();
    let renamed = local.recon("systemScimAccount_managedUser", "");
    assert_eq!(
        renamed["situationSummary"],
        json!({"CONFIRMED": 3}),
        "{renamed}"
    );
    let now = local.users("userName eq \"john.doe\"");
    assert_eq!(now.len(), 1);
    assert_eq!(now[0]["id"], local_jdoe);
    assert_eq!(local.count("Users"), 3);

    // Groups: the remote's group and its members come over...
    let (status, group) = remote.send(
        "POST",
        "/scim/v2/Groups",
        Some(
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "engineering",
            "members": [{"value": bjensen}, {"value": jdoe}]}),
        ),
    );
    assert_eq!(status, 201, "{group}");
    let remote_group = group["id"].as_str().expect("id").to_string();
    let groups = local.recon("systemScimGroup_managedRole", "");
    assert_eq!(groups["situationSummary"], json!({"ABSENT": 1}), "{groups}");
    let (_, list) = local.send(
        "GET",
        "/scim/v2/Groups?filter=displayName%20eq%20%22engineering%22",
        None,
    );
    let local_group = list["Resources"][0]["id"]
        .as_str()
        .expect("group")
        .to_string();
    let (_, g) = local.send("GET", &format!("/scim/v2/Groups/{local_group}"), None);
    let mut members: Vec<&str> = g["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["value"].as_str())
        .collect();
    members.sort_unstable();
    let mut want = vec![local_bjensen.as_str(), local_jdoe.as_str().expect("id")];
    want.sort_unstable();
    assert_eq!(members, want);

    // ... and a membership added here goes back as a PATCH of that member.
    let local_third = local.users(&format!("externalId eq \"{third}\""))[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, _) = local.send(
        "PATCH",
        &format!("/scim/v2/Groups/{local_group}"),
        Some(
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": local_third}]}]}),
        ),
    );
    assert!(status == 200 || status == 204, "{status}");
    let out = local.recon("managedRole_systemScimGroup", "");
    assert_eq!(out["situationSummary"], json!({"CONFIRMED": 1}), "{out}");
    assert_eq!(out["statusSummary"], json!({"SUCCESS": 1}), "{out}");
    let (_, rg) = remote.send("GET", &format!("/scim/v2/Groups/{remote_group}"), None);
    let remote_members: Vec<&str> = rg["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["value"].as_str())
        .collect();
    assert_eq!(remote_members.len(), 3, "{rg}");
    assert!(remote_members.contains(&third.as_str()), "{rg}");

    // Runs are listed, newest first.
    let (_, runs) = local.send("GET", "/sync/recon", None);
    let list = runs["reconciliations"].as_array().expect("list");
    assert_eq!(list.len(), 6, "{runs}");
    assert_eq!(list[0]["_id"], out["_id"]);
}

#[test]
fn a_dry_run_reports_and_changes_nothing() {
    let remote = Peer::new(Server::start_protected(&[]));
    let dir = sync_dir(&remote.server, |_| {});
    let local = local_on(dir.path());
    remote.create_user("dry1");
    remote.create_user("dry2");
    let run = local.recon("systemScimAccount_managedUser", "&dryRun=true");
    assert_eq!(run["state"], "SUCCESS", "{run}");
    assert_eq!(run["dryRun"], true);
    assert_eq!(run["situationSummary"], json!({"ABSENT": 2}), "{run}");
    assert_eq!(run["statusSummary"], json!({"DRY_RUN": 2}), "{run}");
    assert_eq!(local.count("Users"), 0);
    let audit = local.audit(run["_id"].as_str().expect("id"));
    assert!(
        audit
            .iter()
            .all(|e| e["status"] == "DRY_RUN" && e["action"] == "CREATE"),
        "{audit:?}"
    );
    // Nothing was linked: the real run still finds them absent.
    let real = local.recon("systemScimAccount_managedUser", "");
    assert_eq!(real["situationSummary"], json!({"ABSENT": 2}), "{real}");
    assert_eq!(local.count("Users"), 2);
}

#[test]
fn deletions_over_the_threshold_wait_for_allow_deletes() {
    let remote = Peer::new(Server::start_protected(&[]));
    let dir = sync_dir(&remote.server, |_| {});
    let local = local_on(dir.path());
    let ids: Vec<String> = (0..5)
        .map(|i| remote.create_user(&format!("del{i}")))
        .collect();
    let first = local.recon("systemScimAccount_managedUser", "");
    assert_eq!(first["statusSummary"], json!({"SUCCESS": 5}), "{first}");
    for id in &ids[..3] {
        let (status, _) = remote.send("DELETE", &format!("/scim/v2/Users/{id}"), None);
        assert_eq!(status, 204);
    }
    // SOURCE_MISSING → DELETE, disable first; 3 > 10 % of 5: the run waits.
    let waiting = local.recon("systemScimAccount_managedUser", "");
    assert_eq!(waiting["state"], "WAITING", "{waiting}");
    assert_eq!(waiting["stage"], "waitingForAllowDeletes", "{waiting}");
    assert_eq!(
        waiting["situationSummary"],
        json!({"CONFIRMED": 2, "SOURCE_MISSING": 3}),
        "{waiting}"
    );
    assert_eq!(local.users("active eq false").len(), 0);
    // The waiting run holds the mapping.
    let (status, busy) = local.send(
        "POST",
        "/sync/recon?_action=recon&mapping=systemScimAccount_managedUser",
        None,
    );
    assert_eq!(status, 409, "{busy}");
    let id = waiting["_id"].as_str().expect("id");
    let (status, _) = local.send(
        "POST",
        &format!("/sync/recon/{id}?_action=allowDeletes"),
        None,
    );
    assert_eq!(status, 200);
    let done = local.poll(id, |r| r["state"] != "ACTIVE");
    assert_eq!(done["state"], "SUCCESS", "{done}");
    let disabled = local.users("active eq false");
    assert_eq!(disabled.len(), 3, "{disabled:?}");
    assert_eq!(local.count("Users"), 5, "disabled, not deleted yet");
    // Allowing twice is refused: the run has ended.
    let (status, _) = local.send(
        "POST",
        &format!("/sync/recon/{id}?_action=allowDeletes"),
        None,
    );
    assert_eq!(status, 409);
}

#[test]
fn a_conflict_on_create_links_the_existing_object() {
    let remote = Peer::new(Server::start_protected(&[]));
    // Users out to the remote, without correlation: only the 409 can find alice.
    let dir = sync_dir(&remote.server, |c| {
        let m = mapping(c, "managedUser_systemScimAccount");
        m["correlationQuery"] = json!([]);
    });
    let local = local_on(dir.path());
    // Alice among others: the creates go out in one Bulk request, and only
    // alice's operation answers 409.
    for name in ["alice", "bob", "carol"] {
        local.create_user(name);
    }
    let remote_alice = remote.create_user("alice");
    let run = local.recon("managedUser_systemScimAccount", "");
    assert_eq!(run["situationSummary"], json!({"ABSENT": 3}), "{run}");
    assert_eq!(run["statusSummary"], json!({"SUCCESS": 3}), "{run}");
    let audit = local.audit(run["_id"].as_str().expect("id"));
    let linked: Vec<&Value> = audit.iter().filter(|e| e["action"] == "LINK").collect();
    assert_eq!(linked.len(), 1, "{audit:?}");
    assert_eq!(linked[0]["targetId"], remote_alice.as_str(), "{audit:?}");
    assert_eq!(remote.count("Users"), 3);
    let again = local.recon("managedUser_systemScimAccount", "");
    assert_eq!(
        again["situationSummary"],
        json!({"CONFIRMED": 3}),
        "{again}"
    );
}

#[test]
fn a_killed_run_is_resumed_without_duplicates() {
    let remote = Peer::new(Server::start_protected(&[]));
    let dir = sync_dir(&remote.server, |_| {});
    let data = tempfile::tempdir().expect("data");
    const N: usize = 1500;
    let ops: Vec<Value> = (0..N)
        .map(|i| {
            json!({"method": "POST", "path": "/Users", "bulkId": format!("b{i}"),
            "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                     "userName": format!("resume{i:05}"), "active": true}})
        })
        .collect();
    for chunk in ops.chunks(30) {
        let (status, body) = remote.send(
            "POST",
            "/scim/v2/Bulk",
            Some(
                &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": chunk}),
            ),
        );
        assert_eq!(status, 200, "{body}");
    }
    let arg = dir.path().to_string_lossy().into_owned();
    let local = Peer::new(Server::spawn_in(data.path(), &["--sync-dir", &arg]));
    let (status, started) = local.send(
        "POST",
        "/sync/recon?_action=recon&mapping=systemScimAccount_managedUser",
        None,
    );
    assert_eq!(status, 202, "{started}");
    let id = started["_id"].as_str().expect("id").to_string();
    local.poll(&id, |r| {
        r["progress"]["source"]["processed"].as_u64() > Some(0)
    });
    local.server.kill();
    // A new port, so a new issuer: a new token.
    let local = Peer::new(Server::spawn_in(data.path(), &["--sync-dir", &arg]));
    // The dead process's lease runs out; the new one takes the run over.
    let done = local.poll(&id, |r| r["state"] != "ACTIVE");
    assert_eq!(done["state"], "SUCCESS", "{done}");
    assert_eq!(local.count("Users"), N as u64);
    let failures: Vec<Value> = local
        .audit(&id)
        .into_iter()
        .filter(|e| e["status"] != "SUCCESS")
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    let again = local.recon("systemScimAccount_managedUser", "");
    assert_eq!(
        again["situationSummary"],
        json!({"CONFIRMED": N}),
        "{again}"
    );
}

#[test]
fn live_sync_sends_only_what_changed() {
    let remote = Peer::new(Server::start_protected(&[]));
    let dir = sync_dir(&remote.server, |_| {});
    let local = local_on(dir.path());
    let ids: Vec<String> = (0..5)
        .map(|i| local.create_user(&format!("live{i}")))
        .collect();
    let first = local.recon("managedUser_systemScimAccount", "");
    assert_eq!(first["situationSummary"], json!({"ABSENT": 5}), "{first}");
    // PostgreSQL hands a change out once no older transaction runs anywhere on
    // the server (other tests' too): a live sync may see a change one run late,
    // never not at all. Catch up first.
    live_until(&local, |run| run["progress"]["source"]["total"] == 0);
    let (status, _) = local.send(
        "PATCH",
        &format!("/scim/v2/Users/{}", ids[2]),
        Some(
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": "Changed"}]}),
        ),
    );
    assert_eq!(status, 200);
    let live = live_until(&local, |run| run["progress"]["source"]["total"] != 0);
    assert_eq!(live["kind"], "liveSync");
    assert_eq!(live["state"], "SUCCESS", "{live}");
    assert_eq!(live["progress"]["source"]["total"], 1, "{live}");
    assert_eq!(live["situationSummary"], json!({"CONFIRMED": 1}), "{live}");
    let on_remote = remote.users("userName eq \"live2\"");
    assert_eq!(on_remote[0]["displayName"], "Changed");
    // Nothing changed since: nothing to do.
    live_until(&local, |run| run["progress"]["source"]["total"] == 0);
}

/// Live syncs of users out, one after another, until one satisfies `done`.
fn live_until(local: &Peer, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..50 {
        let (status, run) = local.send(
            "POST",
            "/sync/recon?_action=liveSync&mapping=managedUser_systemScimAccount&waitForCompletion=true",
            None,
        );
        assert_eq!(status, 200, "{run}");
        if done(&run) {
            return run;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no live sync got there");
}

#[test]
fn bad_requests_get_scim_errors() {
    let remote = Peer::new(Server::start_protected(&[]));
    let dir = sync_dir(&remote.server, |_| {});
    let local = local_on(dir.path());
    for (method, path, status, scim_type) in [
        ("POST", "/sync/recon?_action=recon&mapping=nope", 404, None),
        (
            "POST",
            "/sync/recon?_action=explode&mapping=x",
            400,
            Some("invalidValue"),
        ),
        (
            "POST",
            "/sync/recon?_action=recon",
            400,
            Some("invalidValue"),
        ),
        (
            "POST",
            "/sync/recon?_action=recon&mapping=systemScimAccount_managedUser&dryRun=maybe",
            400,
            Some("invalidValue"),
        ),
        ("GET", "/sync/recon/nope", 404, None),
        ("GET", "/sync/recon/nope/audit", 404, None),
        ("POST", "/sync/recon/nope?_action=cancel", 404, None),
    ] {
        let (got, body) = local.send(method, path, None);
        assert_eq!(got, status, "{method} {path}: {body}");
        assert_eq!(body["status"], status.to_string(), "{body}");
        assert_eq!(body["scimType"].as_str(), scim_type, "{body}");
    }
    assert_eq!(local.count("Users"), 0);
}

/// The reference server as the third party: scimd's users go out, a change
/// made there comes back.
#[test]
fn sync_with_the_reference_server() {
    let Some(bin) = reference_binary() else {
        return;
    };
    let reference = start_reference(&bin, "ref-token-1");
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "scim.json",
        &reference.connector("scim", "", "ref-token-1"),
    );
    let mappings: Value =
        serde_json::from_str(&std::fs::read_to_string(EXAMPLE).expect("example")).expect("json");
    write(dir.path(), "sync.json", &mappings);
    let local = local_on(dir.path());
    for name in ["ref1", "ref2"] {
        local.create_user(name);
    }
    let out = local.recon("managedUser_systemScimAccount", "");
    assert_eq!(out["statusSummary"], json!({"SUCCESS": 2}), "{out}");
    let http = reqwest::blocking::Client::new();
    let base = format!("http://127.0.0.1:{}", reference.port);
    let list: Value = http
        .get(format!("{base}/Users"))
        .bearer_auth("ref-token-1")
        .send()
        .expect("list")
        .json()
        .expect("json");
    assert_eq!(list["totalResults"], 2, "{list}");
    let ref1 = list["Resources"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["userName"] == "ref1")
        .expect("ref1")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let resp = http
        .patch(format!("{base}/Users/{ref1}"))
        .bearer_auth("ref-token-1")
        .header("content-type", "application/scim+json")
        .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": "From the reference"}]}).to_string())
        .send()
        .expect("patch");
    assert!(resp.status().is_success(), "{resp:?}");
    let back = local.recon("systemScimAccount_managedUser", "");
    assert_eq!(back["state"], "SUCCESS", "{back}");
    assert_eq!(back["situationSummary"], json!({"CONFIRMED": 2}), "{back}");
    let mine = local.users("userName eq \"ref1\"");
    assert_eq!(mine[0]["displayName"], "From the reference");
    assert_eq!(local.count("Users"), 2);
}

/// `scimd sync recon --wait` executes a run next to the serving scimd (same
/// database), `recon` without it queues one the server takes over, and
/// `runs` / `status` show them.
#[test]
fn cli_runs_next_to_the_server_and_queues_for_it() {
    let remote = Peer::new(Server::start_protected(&[]));
    let dir = sync_dir(&remote.server, |_| {});
    let local = local_on(dir.path());
    remote.create_user("cli1");
    let d = dir.path().to_string_lossy().into_owned();
    let out = scimd(
        &local.server,
        &[
            "sync",
            "recon",
            "systemScimAccount_managedUser",
            "--dry-run",
            "--wait",
            "--sync-dir",
            &d,
        ],
    );
    assert!(out.contains("SUCCESS (dry run)"), "{out}");
    assert!(out.contains("ABSENT     1"), "{out}");
    assert_eq!(local.count("Users"), 0);
    let out = scimd(
        &local.server,
        &[
            "sync",
            "recon",
            "systemScimAccount_managedUser",
            "--wait",
            "--sync-dir",
            &d,
        ],
    );
    assert!(out.contains("SUCCESS  stage done"), "{out}");
    assert_eq!(local.count("Users"), 1);
    // Queued: the serving scimd executes it.
    remote.create_user("cli2");
    let out = scimd(
        &local.server,
        &[
            "sync",
            "recon",
            "systemScimAccount_managedUser",
            "--sync-dir",
            &d,
        ],
    );
    let id = out.split_whitespace().next().expect("run id").to_string();
    assert!(out.contains("queued"), "{out}");
    let done = local.poll(&id, |r| r["state"] != "ACTIVE");
    assert_eq!(done["state"], "SUCCESS", "{done}");
    assert_eq!(
        done["situationSummary"],
        json!({"ABSENT": 1, "CONFIRMED": 1}),
        "{done}"
    );
    assert_eq!(local.count("Users"), 2);
    let runs = scimd(&local.server, &["sync", "runs", "--sync-dir", &d]);
    assert!(runs.starts_with("ID"), "{runs}");
    assert_eq!(runs.lines().count(), 4, "{runs}");
    assert!(runs.contains(&id), "{runs}");
    let status = scimd(
        &local.server,
        &["sync", "status", &id, "--json", "--sync-dir", &d],
    );
    let v: Value = serde_json::from_str(&status).expect("json");
    assert_eq!(v[0]["_id"], id.as_str(), "{v}");
}

#[test]
fn a_connector_a_mapping_uses_cannot_be_deleted() {
    let remote = Peer::new(Server::start_protected(&[]));
    let dir = sync_dir(&remote.server, |_| {});
    let local = local_on(dir.path());
    let (status, err) = local.send("DELETE", "/sync/system/scim", None);
    assert_eq!(status, 409, "{err}");
    assert!(
        err["detail"]
            .as_str()
            .expect("detail")
            .contains("systemScimAccount_managedUser"),
        "{err}"
    );
    assert!(dir.path().join("provisioner.openicf-scim.json").exists());
}

/// Luau transforms: evaluated per object with `value` and `source`; one that
/// fails for an object fails that object alone.
#[test]
fn luau_transforms_shape_values_and_fail_one_object_alone() {
    let remote = Peer::new(Server::start_protected(&[]));
    let dir = sync_dir(&remote.server, |c| {
        let m = mapping(c, "systemScimAccount_managedUser");
        m["properties"] = json!([
            {"source": "userName", "target": "userName"},
            {"source": "id", "target": "externalId"},
            {"source": "displayName", "target": "displayName",
             "transform": "string.upper(value) .. ' <' .. source.name.givenName .. '>'"},
            {"source": "name.givenName", "target": "nickName",
             "transform": "if value == 'bad' then error('no nickname for bad') else value"}
        ]);
    });
    let local = local_on(dir.path());
    remote.create_user("good");
    remote.create_user("bad");
    let run = local.recon("systemScimAccount_managedUser", "");
    assert_eq!(run["state"], "SUCCESS", "{run}");
    assert_eq!(
        run["statusSummary"],
        json!({"FAILURE": 1, "SUCCESS": 1}),
        "{run}"
    );
    let good = local.users("userName eq \"good\"");
    assert_eq!(good[0]["displayName"], "GOOD DISPLAY <good>", "{good:?}");
    assert_eq!(good[0]["nickName"], "good");
    assert!(local.users("userName eq \"bad\"").is_empty());
    let audit = local.audit(run["_id"].as_str().expect("id"));
    let failed = audit
        .iter()
        .find(|e| e["status"] == "FAILURE")
        .expect("failure");
    let error = failed["error"].as_str().expect("error");
    assert!(
        error.contains("nickName") && error.contains("no nickname for bad"),
        "{error}"
    );
}

#[test]
fn a_transform_that_does_not_compile_stops_the_start() {
    let remote = Server::start_protected(&[]);
    let dir = sync_dir(&remote, |c| {
        let m = mapping(c, "systemScimAccount_managedUser");
        m["properties"][2]["transform"] = json!("value ..");
    });
    let data = tempfile::tempdir().expect("data");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scimd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .arg("--sync-dir")
        .arg(dir.path())
        .output()
        .expect("scimd");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "mapping 'systemScimAccount_managedUser': 'transform' 'value ..' does not compile"
        ),
        "{err}"
    );
}

/// A remote scimd is followed through its `/Changes` feed: a live sync from it
/// sees an update and a deletion there.
#[test]
fn live_sync_from_a_remote_scimd_follows_its_change_feed() {
    let remote = Peer::new(Server::start_protected(&[]));
    let dir = sync_dir(&remote.server, |c| {
        // Deletions beyond the threshold would wait: allow them here.
        mapping(c, "systemScimAccount_managedUser")["maxDeletes"] = json!(10);
    });
    let local = local_on(dir.path());
    let keep = remote.create_user("feed1");
    let gone = remote.create_user("feed2");
    let first = local.recon("systemScimAccount_managedUser", "");
    assert_eq!(first["situationSummary"], json!({"ABSENT": 2}), "{first}");
    let (status, _) = remote.send(
        "PATCH",
        &format!("/scim/v2/Users/{keep}"),
        Some(
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": "From the feed"}]}),
        ),
    );
    assert_eq!(status, 200);
    let (status, _) = remote.send("DELETE", &format!("/scim/v2/Users/{gone}"), None);
    assert_eq!(status, 204);
    // A change may come one run late on PostgreSQL (see live_until): live syncs
    // until both have arrived, each doing only this.
    let arrived = || {
        local.users("userName eq \"feed1\"")[0]["displayName"] == "From the feed"
            && local.users("userName eq \"feed2\"")[0]["active"] == false
    };
    for _ in 0..50 {
        let (status, live) = local.send(
            "POST",
            "/sync/recon?_action=liveSync&mapping=systemScimAccount_managedUser&waitForCompletion=true",
            None,
        );
        assert_eq!(status, 200, "{live}");
        assert_eq!(live["state"], "SUCCESS", "{live}");
        let situations: Vec<&String> = live["situationSummary"]
            .as_object()
            .expect("summary")
            .keys()
            .collect();
        assert!(
            situations
                .iter()
                .all(|s| *s == "CONFIRMED" || *s == "SOURCE_MISSING"),
            "{live}"
        );
        // disableBeforeDelete: the user deleted there is disabled here.
        if arrived() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the remote's changes never arrived");
}

#[test]
fn a_re_run_reads_whole_only_the_pairs_out_of_step() {
    let remote = Peer::new(Server::start_protected(&[]));
    let dir = sync_dir(&remote.server, |c| {
        let m = mapping(c, "managedUser_systemScimAccount");
        m["runTargetPhase"] = json!(true);
        m["policies"] = json!([
            {"situation": "MISSING", "action": "CREATE"},
            {"situation": "SOURCE_MISSING", "action": "DELETE"},
            {"situation": "UNASSIGNED", "action": "REPORT"}
        ]);
    });
    let local = local_on(dir.path());
    let out = "managedUser_systemScimAccount";
    let ids: Vec<String> = (0..6)
        .map(|i| local.create_user(&format!("step{i}")))
        .collect();
    let first = local.recon(out, "");
    assert_eq!(first["situationSummary"], json!({"ABSENT": 6}), "{first}");
    let remote_id = |name: &str| -> String {
        remote.users(&format!("userName eq \"{name}\""))[0]["id"]
            .as_str()
            .expect("id")
            .to_string()
    };
    let version_of =
        |name: &str| remote.users(&format!("userName eq \"{name}\""))[0]["meta"]["version"].clone();
    let before = version_of("step0");

    // Nothing changed: every pair is in step by its stamp, nothing is written.
    let again = local.recon(out, "");
    assert_eq!(again["state"], "SUCCESS", "{again}");
    assert_eq!(
        again["situationSummary"],
        json!({"CONFIRMED": 6}),
        "{again}"
    );
    assert_eq!(again["statusSummary"], json!({"SUCCESS": 6}), "{again}");
    assert_eq!(again["progress"]["inStep"], 6, "{again}");
    assert_eq!(
        again["progress"]["source"],
        json!({"processed": 6, "total": 6})
    );
    assert_eq!(version_of("step0"), before);

    // A change on each side, a target and a source gone, a stray target, a
    // new source: each found, the rest still skipped.
    let patch = |peer: &Peer, id: &str, value: &str| {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": value}]});
        let (status, b) = peer.send("PATCH", &format!("/scim/v2/Users/{id}"), Some(&body));
        assert_eq!(status, 200, "{b}");
    };
    patch(&local, &ids[1], "Changed here");
    patch(&remote, &remote_id("step2"), "Drifted there");
    let (status, _) = remote.send(
        "DELETE",
        &format!("/scim/v2/Users/{}", remote_id("step3")),
        None,
    );
    assert_eq!(status, 204);
    let (status, _) = local.send("DELETE", &format!("/scim/v2/Users/{}", ids[4]), None);
    assert_eq!(status, 204);
    remote.create_user("stray");
    local.create_user("step6");
    let third = local.recon(out, "");
    assert_eq!(third["state"], "SUCCESS", "{third}");
    assert_eq!(
        third["situationSummary"],
        json!({"ABSENT": 1, "CONFIRMED": 4, "MISSING": 1, "SOURCE_MISSING": 1, "UNASSIGNED": 1}),
        "{third}"
    );
    assert_eq!(third["progress"]["inStep"], 2, "{third}");
    let shown = |name: &str| remote.users(&format!("userName eq \"{name}\""));
    assert_eq!(shown("step1")[0]["displayName"], "Changed here");
    assert_eq!(shown("step2")[0]["displayName"], "step2 display");
    assert_eq!(
        shown("step3").len(),
        1,
        "the missing target is created again"
    );
    assert!(
        shown("step4").is_empty(),
        "the target of a gone source is deleted"
    );
    assert_eq!(shown("step6").len(), 1);
    assert_eq!(version_of("step0"), before);

    // Now all linked pairs are in step; only the stray target is read again.
    let fourth = local.recon(out, "");
    assert_eq!(
        fourth["situationSummary"],
        json!({"CONFIRMED": 6, "UNASSIGNED": 1}),
        "{fourth}"
    );
    assert_eq!(fourth["progress"]["inStep"], 6, "{fourth}");
    assert_eq!(remote.count("Users"), 7);
}
