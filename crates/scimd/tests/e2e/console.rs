//! The console at /ui over plain HTTP: logins, the CSRF check, session expiry,
//! the audit trail of console changes. Browser tests are in `console_browser`.

use crate::harness::{scimd, Server};
use reqwest::blocking::{Client, Response};
use std::collections::HashMap;
use std::time::Duration;

pub(crate) const PASSWORD: &str = "correct horse battery";

/// A scimd with protection on and the console administrator `boss`.
pub(crate) fn console_server(extra: &[&str]) -> Server {
    let s = Server::start_protected(extra);
    make_admin(&s, "boss", PASSWORD);
    s
}

pub(crate) fn make_admin(s: &Server, name: &str, password: &str) {
    let file = s.data_dir.join(format!("{name}.pw"));
    std::fs::write(&file, format!("{password}\n")).expect("password file");
    let out = scimd(
        s,
        &[
            "admins",
            "add",
            "--user-name",
            name,
            "--password-file",
            &file.to_string_lossy(),
        ],
    );
    assert!(out.contains("is a console administrator"), "{out}");
}

/// A browser's view of the console over HTTP: its own cookies, no redirects
/// followed.
pub(crate) struct Visitor<'s> {
    server: &'s Server,
    client: Client,
    cookies: HashMap<String, String>,
}

pub(crate) struct Page {
    pub status: u16,
    pub location: String,
    pub body: String,
}

impl<'s> Visitor<'s> {
    pub(crate) fn new(server: &'s Server) -> Visitor<'s> {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Visitor {
            server,
            client,
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn take(&mut self, r: Response) -> Page {
        for v in r.headers().get_all("set-cookie") {
            let text = v.to_str().expect("cookie");
            let (pair, attrs) = text.split_once(';').unwrap_or((text, ""));
            let (k, val) = pair.split_once('=').expect("name=value");
            if val.is_empty() || attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), val.to_string());
            }
        }
        Page {
            status: r.status().as_u16(),
            location: r
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .unwrap_or("")
                .to_string(),
            body: r.text().expect("body"),
        }
    }

    pub(crate) fn get(&mut self, path: &str) -> Page {
        let r = self
            .client
            .get(self.server.url(path))
            .header("cookie", self.cookie_header())
            .send()
            .expect("get");
        self.take(r)
    }

    pub(crate) fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .client
            .post(self.server.url(path))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .expect("post");
        self.take(r)
    }

    /// Log in through the form; the answer to the form's post.
    pub(crate) fn login(&mut self, name: &str, password: &str) -> Page {
        let form = self.get("/ui/login");
        assert_eq!(form.status, 200, "{}", form.body);
        let token = field(&form.body, "login_token");
        self.post(
            "/ui/login",
            &[
                ("login_token", &token),
                ("user_name", name),
                ("password", password),
            ],
        )
    }

    /// The CSRF token of the session's forms.
    pub(crate) fn csrf(&mut self) -> String {
        let page = self.get("/ui/");
        assert_eq!(page.status, 200, "not logged in: {}", page.location);
        field(&page.body, "csrf")
    }
}

/// The value of the first hidden input `name` in a page.
pub(crate) fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[at..].split('"').next().unwrap_or("").to_string()
}

#[test]
fn the_console_needs_a_login_and_refuses_wrong_ones_alike() {
    let s = console_server(&[]);
    let mut v = Visitor::new(&s);
    let first = v.get("/ui/");
    assert_eq!((first.status, first.location.as_str()), (303, "/ui/login"));
    assert_eq!(v.get("/ui/users").location, "/ui/login");

    // A user who is no admin, an unknown one and a wrong password read the same.
    let token = crate::harness::admin_token(&s);
    let user = s
        .client
        .post(s.url("/scim/v2/Users"))
        .bearer_auth(&token)
        .header("content-type", "application/scim+json")
        .body(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"plain","password":"plain-password-1"}"#)
        .send()
        .expect("create");
    assert_eq!(user.status(), 201);
    let mut refusals = Vec::new();
    for (name, pw) in [
        ("plain", "plain-password-1"),
        ("nobody", PASSWORD),
        ("BOSS", "wrong"),
    ] {
        let mut other = Visitor::new(&s);
        let r = other.login(name, pw);
        assert_eq!(r.status, 401, "{name}: {}", r.body);
        assert!(!other.cookies.contains_key(scim_console::COOKIE));
        let token = field(&r.body, "login_token");
        refusals.push(r.body.replace(name, "NAME").replace(&token, "TOKEN"));
    }
    assert!(refusals
        .iter()
        .all(|b| b.contains("Wrong user name or password")));
    assert_eq!(refusals[0], refusals[1], "the same page whatever failed");

    // After three failures the same name from the same address waits.
    for pw in ["wrong again", "still wrong"] {
        assert_eq!(Visitor::new(&s).login("Boss", pw).status, 401);
    }
    let mut again = Visitor::new(&s);
    let throttled = again.login("BOSS", PASSWORD);
    assert_eq!(throttled.status, 429, "{}", throttled.body);
    assert!(throttled.body.contains("try again in"));
    std::thread::sleep(Duration::from_millis(2100));
    let ok = again.login("boss", PASSWORD);
    assert_eq!(
        (ok.status, ok.location.as_str()),
        (303, "/ui/"),
        "{}",
        ok.body
    );
    let dash = again.get("/ui/");
    assert_eq!(dash.status, 200);
    assert!(dash.body.contains("Signed in as <strong>boss</strong>"));
    assert!(dash
        .body
        .contains("Protection mode: <strong>oauth</strong>"));
}

#[test]
fn forms_without_the_session_token_change_nothing_and_changes_are_audited() {
    let s = console_server(&[]);
    let mut v = Visitor::new(&s);
    assert_eq!(v.login("boss", PASSWORD).status, 303);
    let csrf = v.csrf();
    let form = |token: &str| {
        vec![
            ("csrf", token.to_string()),
            ("userName", "forged".to_string()),
            ("active", "true".to_string()),
        ]
    };
    for bad in ["", "0123", &csrf[..csrf.len() - 1]] {
        let f = form(bad);
        let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = v.post("/ui/users", &pairs);
        assert_eq!(r.status, 403, "{bad}: {}", r.body);
        assert!(r.body.contains("CSRF"));
    }
    let list = v.get("/ui/users?q=forged");
    assert!(!list.body.contains(">forged<"), "nothing was created");
    // Another visitor's session token is no good either.
    let mut other = Visitor::new(&s);
    assert_eq!(other.login("boss", PASSWORD).status, 303);
    let theirs = other.csrf();
    assert_ne!(theirs, csrf);
    let f = form(&theirs);
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(v.post("/ui/users", &pairs).status, 403);
    // Logging out needs the token too.
    assert_eq!(v.post("/ui/logout", &[("csrf", "x")]).status, 403);

    let f = form(&csrf);
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let created = v.post("/ui/users", &pairs);
    assert_eq!(created.status, 303, "{}", created.body);
    assert!(created.location.starts_with("/ui/users/"));
    let id = created
        .location
        .trim_start_matches("/ui/users/")
        .to_string();
    let audit = v.get("/ui/audit?who=admin:boss");
    assert!(audit.body.contains(&id), "{}", audit.body);
    assert!(audit.body.contains("created"));

    // A bad value is the service's message on the form, and nothing is written.
    let r = v.post(
        "/ui/users",
        &[("csrf", &csrf), ("userName", " "), ("givenName", "Kept")],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("class=\"error\""), "{}", r.body);
    assert!(r.body.contains("userName"), "{}", r.body);
    assert!(
        r.body.contains("value=\"Kept\""),
        "the form keeps what was typed"
    );
}

#[test]
fn sessions_end_when_idle_at_their_limit_and_at_logout() {
    let s = console_server(&["--console-idle-seconds", "3", "--console-max-seconds", "6"]);
    let mut v = Visitor::new(&s);
    assert_eq!(v.login("boss", PASSWORD).status, 303);
    assert_eq!(v.get("/ui/").status, 200);
    std::thread::sleep(Duration::from_millis(3500));
    let idle = v.get("/ui/");
    assert_eq!((idle.status, idle.location.as_str()), (303, "/ui/login"));

    // Busy, but past the absolute limit.
    assert_eq!(v.login("boss", PASSWORD).status, 303);
    // A request every 0.7 s keeps it from going idle, not past its 6 s.
    for _ in 0..9 {
        std::thread::sleep(Duration::from_millis(700));
        let _ = v.get("/ui/");
    }
    assert_eq!(v.get("/ui/").location, "/ui/login");

    let mut w = Visitor::new(&s);
    assert_eq!(w.login("boss", PASSWORD).status, 303);
    let csrf = w.csrf();
    let session = w
        .cookies
        .get(scim_console::COOKIE)
        .cloned()
        .expect("cookie");
    let out = w.post("/ui/logout", &[("csrf", &csrf)]);
    assert_eq!((out.status, out.location.as_str()), (303, "/ui/login"));
    assert!(!w.cookies.contains_key(scim_console::COOKIE));
    // The old token is dead on the server, not only forgotten by the browser.
    w.cookies.insert(scim_console::COOKIE.into(), session);
    assert_eq!(w.get("/ui/").location, "/ui/login");
}

#[test]
fn the_session_cookie_is_http_only_same_site_strict() {
    let s = console_server(&[]);
    let mut v = Visitor::new(&s);
    let form = v.get("/ui/login");
    let token = field(&form.body, "login_token");
    let r = v
        .client
        .post(s.url("/ui/login"))
        .header("cookie", v.cookie_header())
        .form(&[
            ("login_token", token.as_str()),
            ("user_name", "boss"),
            ("password", PASSWORD),
        ])
        .send()
        .expect("login");
    let set: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().expect("text").to_string())
        .collect();
    let session = set
        .iter()
        .find(|c| c.starts_with(&format!("{}=", scim_console::COOKIE)))
        .expect("session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    assert!(session.contains("Path=/ui"));
    // Plain HTTP here: not Secure (it is under --tls-cert).
    assert!(!session.contains("Secure"));
    // Without the login form's cookie the post is refused.
    let mut bare = Visitor::new(&s);
    let r = bare.post(
        "/ui/login",
        &[
            ("login_token", "x"),
            ("user_name", "boss"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(r.status, 403);
}

/// Poll a run's page until its state is no longer ACTIVE; the page.
fn finished(v: &mut Visitor<'_>, run_page: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let page = v.get(run_page);
        assert_eq!(page.status, 200, "{}", page.body);
        if !page.body.contains("data-state=\"ACTIVE\"") {
            return page.body;
        }
        assert!(std::time::Instant::now() < deadline, "{}", page.body);
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_sync_page_tests_a_connector_and_runs_a_dry_run_then_a_reconciliation() {
    let remote = Server::start_protected(&[]);
    let dir = crate::sync_runs::sync_dir(&remote, |_| {});
    let arg = dir.path().to_string_lossy().into_owned();
    let s = console_server(&["--sync-dir", &arg]);
    let mut v = Visitor::new(&s);
    assert_eq!(v.login("boss", PASSWORD).status, 303);
    let csrf = v.csrf();
    let page = v.get("/ui/sync");
    assert!(
        page.body.contains("managedUser_systemScimAccount"),
        "{}",
        page.body
    );
    assert!(page.body.contains("system/scim/account"));

    let tested = v.post("/ui/sync/connectors/scim/test", &[("csrf", &csrf)]);
    assert_eq!(tested.status, 200, "{}", tested.body);
    assert!(tested.body.contains("answers"), "{}", tested.body);

    let remote_token = crate::harness::admin_token(&remote);
    let remote_users = || {
        let r = remote
            .client
            .get(remote.url("/scim/v2/Users?count=0"))
            .bearer_auth(&remote_token)
            .send()
            .expect("count");
        crate::harness::parts(r).1["totalResults"]
            .as_u64()
            .expect("total")
    };
    let mapping = "managedUser_systemScimAccount";
    let dry = v.post(
        "/ui/sync/recon",
        &[("csrf", &csrf), ("mapping", mapping), ("dryRun", "true")],
    );
    assert_eq!(dry.status, 303, "{}", dry.body);
    let body = finished(&mut v, &dry.location);
    assert!(body.contains("data-state=\"SUCCESS\""), "{body}");
    assert!(
        body.contains("DRY_RUN") && body.contains("ABSENT 1"),
        "{body}"
    );
    assert_eq!(remote_users(), 0, "a dry run changes nothing");

    let real = v.post("/ui/sync/recon", &[("csrf", &csrf), ("mapping", mapping)]);
    let body = finished(&mut v, &real.location);
    assert!(body.contains("SUCCESS 1"), "{body}");
    assert_eq!(remote_users(), 1, "boss is on the remote");
    let listed = v.get("/ui/sync");
    assert!(listed
        .body
        .contains(real.location.trim_start_matches("/ui/sync/runs/")));
}

#[test]
fn custom_attributes_are_edited_with_the_schemas_checks_and_devices_removed() {
    let s = console_server(&[]);
    let mut v = Visitor::new(&s);
    assert_eq!(v.login("boss", PASSWORD).status, 303);
    let csrf = v.csrf();
    // Added on the attributes page; a bad name is refused there.
    let refused = v.post(
        "/ui/attributes",
        &[("csrf", &csrf), ("name", "9lives"), ("type", "string")],
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    for (name, kind) in [("favouriteColour", "string"), ("shoeSize", "numeric")] {
        let added = v.post(
            "/ui/attributes",
            &[("csrf", &csrf), ("name", name), ("type", kind)],
        );
        assert_eq!(added.status, 303, "{}", added.body);
    }
    assert!(v
        .get("/ui/attributes")
        .body
        .contains("<code>shoeSize</code>"));
    let form = v.get("/ui/users/new");
    assert!(
        form.body.contains("name=\"custom.favouriteColour\""),
        "{}",
        form.body
    );

    let bad = v.post(
        "/ui/users",
        &[
            ("csrf", &csrf),
            ("userName", "grace"),
            ("custom.favouriteColour", "blue"),
            ("custom.shoeSize", "large"),
        ],
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.body.contains("shoeSize"),
        "the schema's message: {}",
        bad.body
    );
    let created = v.post(
        "/ui/users",
        &[
            ("csrf", &csrf),
            ("userName", "grace"),
            ("custom.favouriteColour", "blue"),
            ("custom.shoeSize", "38"),
        ],
    );
    assert_eq!(created.status, 303, "{}", created.body);
    let user_page = created.location.clone();
    let id = user_page.trim_start_matches("/ui/users/").to_string();
    let shown = v.get(&user_page);
    assert!(shown.body.contains("value=\"blue\"") && shown.body.contains("value=\"38\""));

    // A FIDO device enrolled for the user is listed on its page and removed there.
    let token = crate::harness::admin_token(&s);
    let device = s
        .client
        .post(s.url("/admin/devices/FidoDevices"))
        .bearer_auth(&token)
        .header("content-type", "application/scim+json")
        .body(
            serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:FidoDevice"],
                "userId": id, "creationDate": "2024-01-02T03:04:05Z",
                "application": "https://idp.example.org", "counter": 1,
                "deviceKeyHandle": "kh-1", "status": "active", "displayName": "Grace's key"})
            .to_string(),
        )
        .send()
        .expect("enrol");
    let (st, device) = crate::harness::parts(device);
    assert_eq!(st, 201, "{device}");
    let device_id = device["id"].as_str().expect("id");
    let page = v.get(&user_page);
    assert!(page.body.contains(device_id), "{}", page.body);
    let removed = v.post(
        &format!("{user_page}/devices/FidoDevice/{device_id}/delete"),
        &[("csrf", &csrf)],
    );
    assert_eq!(removed.status, 303, "{}", removed.body);
    assert!(!v.get(&user_page).body.contains(device_id));

    // Deleting asks first; the user is gone after the confirmed post.
    let confirm = v.get(&format!("{user_page}/delete"));
    assert!(
        confirm.body.contains("Delete <strong>user grace</strong>"),
        "{}",
        confirm.body
    );
    let deleted = v.post(&format!("{user_page}/delete"), &[("csrf", &csrf)]);
    assert_eq!(
        (deleted.status, deleted.location.as_str()),
        (303, "/ui/users")
    );
    assert_eq!(v.get(&user_page).status, 404);
}
