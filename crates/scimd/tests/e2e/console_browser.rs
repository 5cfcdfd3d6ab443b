//! The console in a real headless Chromium, driven over WebDriver
//! (chromedriver): an operator's session from a refused login to a new
//! client's secret, with a screenshot of each page in
//! `target/tmp/console-screenshots/`.

use crate::console::{console_server, PASSWORD};
use reqwest::blocking::Client;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// WebDriver's key for an element reference in its answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// WebDriver's Enter key.
const ENTER: &str = "\u{E007}";

struct Driver {
    process: Child,
    http: Client,
    base: String,
    session: String,
    shots: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// chromedriver, when it is installed (scripts/ensure-chromium.sh); a test run
/// by scripts/test.sh requires it.
fn chromedriver() -> Option<PathBuf> {
    let found = ["/usr/bin/chromedriver", "/usr/local/bin/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("SCIMD_TEST_BROWSER").as_deref() != Ok("required"),
            "chromedriver is missing: run ./scripts/ensure-chromium.sh"
        );
        eprintln!("NOTICE: chromedriver not installed; browser test skipped (./scripts/ensure-chromium.sh installs it)");
    }
    found
}

impl Driver {
    fn start(bin: &PathBuf) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let process = Command::new(bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http
            .get(format!("{base}/status"))
            .send()
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .is_none_or(|v| v["value"]["ready"] != true)
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1280,1000"]
            }
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .and_then(|r| r.json())
            .expect("new session");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        Driver {
            process,
            http,
            base,
            session,
            shots,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let req = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url).json(&body.unwrap_or(json!({}))),
        };
        let v: Value = req.send().and_then(|r| r.json()).expect("webdriver call");
        assert!(
            v["value"].get("error").is_none(),
            "{method} {path}: {}",
            v["value"]
        );
        v["value"].clone()
    }

    fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = format!("{}/session/{}/element", self.base, self.session);
            let v: Value = self
                .http
                .post(url)
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .and_then(|r| r.json())
                .expect("find");
            if let Some(id) = v["value"][ELEMENT].as_str() {
                return id.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no element {css}: {}",
                v["value"]
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn type_in(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.call("POST", &format!("/element/{el}/clear"), None);
        self.call(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        );
    }

    fn click(&self, css: &str) {
        let el = self.find(css);
        self.call("POST", &format!("/element/{el}/click"), None);
    }

    /// Click the button (or link) whose text is `text`.
    fn press(&self, text: &str) {
        let xpath =
            format!("//button[normalize-space(.)='{text}'] | //a[normalize-space(.)='{text}']");
        let url = format!("{}/session/{}/element", self.base, self.session);
        let v: Value = self
            .http
            .post(url)
            .json(&json!({"using": "xpath", "value": xpath}))
            .send()
            .and_then(|r| r.json())
            .expect("find button");
        let el = v["value"][ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no button '{text}': {}", self.source()))
            .to_string();
        self.call("POST", &format!("/element/{el}/click"), None);
    }

    /// The text of the element, found again when the page was replaced
    /// between the lookup and the read (a form's answer loading).
    fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let el = self.find(css);
            let url = format!("{}/session/{}/element/{el}/text", self.base, self.session);
            let v: Value = self
                .http
                .get(url)
                .send()
                .and_then(|r| r.json())
                .expect("text");
            if let Some(t) = v["value"].as_str() {
                return t.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no text of {css}: {}",
                v["value"]
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until the element's text contains `needle` (the new page is in).
    fn wait_text(&self, css: &str, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.text(css).contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{css} never showed '{needle}': {}",
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn source(&self) -> String {
        self.call("GET", "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn current_url(&self) -> String {
        self.call("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn title(&self) -> String {
        self.call("GET", "/title", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Wait until the page's title starts with `prefix`.
    fn wait_title(&self, prefix: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.title().starts_with(prefix) {
            assert!(
                Instant::now() < deadline,
                "title '{}' is not '{prefix}…': {}",
                self.title(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, name: &str) {
        use base64::Engine;
        let data = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64"))
            .expect("png");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("write screenshot");
    }
}

#[test]
fn an_operator_works_through_the_console_in_a_real_browser() {
    let Some(bin) = chromedriver() else { return };
    let s = console_server(&[]);
    let d = Driver::start(&bin);
    let ui = |path: &str| s.url(path);

    // Without a session: the login form. A wrong password is refused.
    d.open(&ui("/ui/"));
    d.wait_title("Log in");
    d.screenshot("01-login");
    d.type_in("input[name=user_name]", "boss");
    d.type_in("input[name=password]", &format!("not the password{ENTER}"));
    d.wait_title("Log in");
    d.wait_text("main", "Wrong user name or password");
    d.screenshot("02-login-refused");

    // Keyboard only: the password and Enter.
    d.type_in("input[name=user_name]", "boss");
    d.type_in("input[name=password]", &format!("{PASSWORD}{ENTER}"));
    d.wait_title("Dashboard");
    assert!(d.source().contains("Signed in as"));
    d.screenshot("03-dashboard");

    // A new user.
    d.open(&ui("/ui/users/new"));
    d.wait_title("New user");
    d.type_in("input[name=userName]", "ada.lovelace");
    d.type_in("input[name=givenName]", "Ada");
    d.type_in("input[name=familyName]", "Lovelace");
    d.type_in("input[name=email]", "ada@example.com");
    d.type_in("input[name=department]", "Analytical Engines");
    d.screenshot("04-user-new");
    d.press("Create user");
    d.wait_title("User ada.lovelace");
    d.screenshot("05-user");

    // Found by the search box (plain text: userName sw, displayName or email co).
    d.open(&ui("/ui/users"));
    d.wait_title("Users");
    d.type_in("input[name=q]", &format!("ada{ENTER}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.current_url().contains("q=ada") || !d.source().contains(">ada.lovelace<") {
        assert!(
            Instant::now() < deadline,
            "search found nothing: {}",
            d.source()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let found = d.source();
    assert!(
        !found.contains(">boss</a>"),
        "the search narrows the list: {found}"
    );
    d.screenshot("06-users-search");

    // Into a new group, found by searching users from the group's page.
    d.open(&ui("/ui/groups"));
    d.wait_title("Groups");
    d.type_in("input[name=displayName]", "engineers");
    d.press("Create group");
    d.wait_title("Group engineers");
    d.type_in("input[name=find]", &format!("ada{ENTER}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.source().contains("Add ada.lovelace") {
        assert!(Instant::now() < deadline, "{}", d.source());
        std::thread::sleep(Duration::from_millis(100));
    }
    d.press("Add ada.lovelace");
    d.wait_title("Group engineers");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.source().contains("1 members") {
        assert!(Instant::now() < deadline, "{}", d.source());
        std::thread::sleep(Duration::from_millis(100));
    }
    d.screenshot("07-group");

    // Deactivated from the user's page, which lists the group.
    d.click("table a[href^='/ui/users/']");
    d.wait_title("User ada.lovelace");
    assert!(d.source().contains(">engineers</a>"));
    d.press("Deactivate");
    d.wait_title("User ada.lovelace");
    d.wait_text("main", "The user is inactive.");
    d.screenshot("08-user-deactivated");

    // A client: its secret is shown once, then never again.
    d.open(&ui("/ui/clients"));
    d.wait_title("OAuth clients");
    d.type_in("input[name=name]", "provisioning");
    d.click("input[name='scope.users.read']");
    d.click("input[name='scope.users.write']");
    d.press("Create client");
    d.wait_title("Client secret");
    let secret = d.text("[data-secret]");
    assert!(secret.len() >= 32, "{secret}");
    crate::harness::note_secret(&secret);
    d.screenshot("09-client-secret");
    d.open(&ui("/ui/clients"));
    d.wait_title("OAuth clients");
    let page = d.source();
    assert!(page.contains("provisioning"));
    assert!(!page.contains(&secret), "the secret is not shown again");
    d.screenshot("10-clients");

    for (path, title, shot) in [
        ("/ui/attributes", "Custom attributes", "11-attributes"),
        ("/ui/scripts", "Interception scripts", "12-scripts"),
        ("/ui/sync", "Sync", "13-sync"),
        ("/ui/audit", "Audit trail", "14-audit"),
    ] {
        d.open(&ui(path));
        d.wait_title(title);
        d.screenshot(shot);
    }
    assert!(
        d.source().contains("admin:boss"),
        "console writes are audited"
    );
}
