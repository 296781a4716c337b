//! A real browser for the web interface's tests: Debian's `chromium`, headless, driven through `chromedriver`
//! (WebDriver) with `fantoccini`. Each [`Browser`] starts its own chromedriver on a free loopback port and one
//! session with a fresh profile in a temp dir, and keeps what the checks need:
//!
//! - the console (`goog:loggingPrefs` `browser`): errors on a page fail the test;
//! - the performance log (`performance`): every `Network.requestWillBeSent` URL must be on the server's origin;
//! - axe-core (`axe.min.js` from the npm cache, `$WHARF_TEST_NPM`), injected into the page and run: the
//!   violations of impact `serious` or `critical`;
//! - screenshots, written into an artefact directory that outlives the test (its path is printed).
//!
//! The calls are blocking (each drives a runtime of the browser's own), so tests stay plain `#[test]` functions
//! that can also run the blocking HTTP clients and CLIs.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// A phone-sized window (an iPhone 12-14 in CSS pixels) and the desktop one.
pub const PHONE: (u32, u32) = (390, 844);
pub const DESKTOP: (u32, u32) = (1280, 900);

pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    /// `https://127.0.0.1:PORT`: the only origin a page may reach.
    pub origin: String,
    /// Screenshots go here; the directory is kept after the test.
    pub artefacts: PathBuf,
    _profile: tempfile::TempDir,
}

/// A violation axe-core found, as the test reports it.
#[derive(Debug)]
pub struct Violation {
    pub id: String,
    pub impact: String,
    pub help: String,
    pub nodes: Vec<String>,
}

/// The chromium binary: Debian's real one (not the `/usr/bin/chromium` wrapper script), else whatever is in `PATH`.
fn chromium() -> String {
    let real = Path::new("/usr/lib/chromium/chromium");
    if real.exists() {
        real.display().to_string()
    } else {
        "chromium".into()
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// axe-core's script, from the npm cache `tests/run` fills.
fn axe_source() -> String {
    let npm = std::env::var("WHARF_TEST_NPM").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/wharf-test-tools/npm")
    });
    let file = Path::new(&npm).join("node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e} (tests/run installs axe-core into $WHARF_TEST_NPM)", file.display()))
}

/// The legacy log endpoint chromedriver keeps in W3C mode: `POST /session/ID/se/log {"type": KIND}`. Reading
/// a log empties it.
#[derive(Debug)]
struct GetLog(&'static str);

impl WebDriverCompatibleCommand for GetLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or("")))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({ "type": self.0 }).to_string()))
    }
}

impl Browser {
    /// Starts chromedriver and a headless chromium session for pages of `origin` (`https://HOST:PORT`), with
    /// screenshots kept under a new directory named after `test`.
    pub fn start(origin: &str, test: &str) -> Browser {
        let profile = tempfile::Builder::new().prefix("wharf-chromium-").tempdir().expect("profile dir");
        let artefacts =
            tempfile::Builder::new().prefix(&format!("wharf-ui-{test}-")).tempdir().expect("artefact dir").keep();
        println!("screenshots of {test}: {}", artefacts.display());
        let port = free_port();
        let log = std::fs::File::create(artefacts.join("chromedriver.log")).expect("driver log");
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start chromedriver (tests/run installs chromium-driver)");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let mut b = Browser { rt, client: None, driver, origin: origin.into(), artefacts, _profile: profile };
        let caps = json!({
            "browserName": "chrome",
            // The server's certificate is from a throwaway CA the browser does not know.
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", b._profile.path().display()),
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL", "performance": "ALL" },
        });
        let Value::Object(caps) = caps else { unreachable!("a JSON object") };
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            builder.capabilities(caps.clone());
            match b.rt.block_on(builder.connect(&url)) {
                Ok(c) => break c,
                Err(e) if started.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("no WebDriver session from chromedriver on port {port}: {e}"),
            }
        };
        b.client = Some(client);
        b.rt.block_on(b.c().update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
            Some(Duration::from_secs(60)),
            Some(Duration::from_secs(60)),
            Some(Duration::ZERO),
        )))
        .expect("timeouts");
        // The logs so far are the browser's own start-up (its new-tab page): not the pages under test.
        b.log("browser");
        b.log("performance");
        b
    }

    fn c(&self) -> &Client {
        self.client.as_ref().expect("session")
    }

    /// Opens `path` of the origin (or a full URL) and waits for it to load.
    pub fn goto(&self, path: &str) {
        let url = if path.starts_with("https://") { path.to_owned() } else { format!("{}{path}", self.origin) };
        self.rt.block_on(self.c().goto(&url)).unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Opens `path` and checks the page: status 200, no console error, no request off the origin.
    pub fn visit(&self, path: &str) {
        self.goto(path);
        assert_eq!(self.status(), 200, "GET {path}: {}", self.text("main"));
        self.check_page(&[]);
    }

    /// The HTTP status of the page shown (the navigation's timing entry).
    pub fn status(&self) -> u64 {
        let v =
            self.js("const n = performance.getEntriesByType('navigation')[0]; return n ? n.responseStatus : 0", &[]);
        v.as_u64().unwrap_or(0)
    }

    /// The path and query of the page shown.
    pub fn path(&self) -> String {
        let u = self.rt.block_on(self.c().current_url()).expect("current url");
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        }
    }

    pub fn reload(&self) {
        self.rt.block_on(self.c().refresh()).expect("reload");
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page and returns its value.
    pub fn js(&self, script: &str, args: &[Value]) -> Value {
        self.rt.block_on(self.c().execute(script, args.to_vec())).unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Runs an asynchronous `script`: it calls `arguments[arguments.length - 1]` with its result.
    pub fn js_async(&self, script: &str, args: &[Value]) -> Value {
        self.rt
            .block_on(self.c().execute_async(script, args.to_vec()))
            .unwrap_or_else(|e| panic!("async script failed: {e}"))
    }

    /// How many elements match `css`.
    pub fn count(&self, css: &str) -> usize {
        let v = self.js("return document.querySelectorAll(arguments[0]).length", &[json!(css)]);
        v.as_u64().unwrap_or(0) as usize
    }

    pub fn exists(&self, css: &str) -> bool {
        self.count(css) > 0
    }

    /// The text of the first element matching `css` (empty if none).
    pub fn text(&self, css: &str) -> String {
        let v = self.js("const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", &[json!(css)]);
        v.as_str().unwrap_or("").to_owned()
    }

    /// The texts of every element matching `css`.
    pub fn texts(&self, css: &str) -> Vec<String> {
        let v = self.js(
            "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.innerText.trim())",
            &[json!(css)],
        );
        v.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap_or("").to_owned()).collect()).unwrap_or_default()
    }

    /// An attribute of the first element matching `css`.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        let v = self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null",
            &[json!(css), json!(name)],
        );
        v.as_str().map(str::to_owned)
    }

    /// Clicks the first element matching `css`, as a user would (waits for a navigation it starts).
    pub fn click(&self, css: &str) {
        // A link or a form's submit button loads a new page: mark the old document, and wait until another one has
        // loaded (the click's answer is not the end of the navigation it starts).
        const NAVIGATES: &str = "const e = document.querySelector(arguments[0]); \
            const nav = !!e && (e.tagName === 'A' || (e.type === 'submit' && !!e.form)); \
            if (nav) { window.__wharfOld = true; } return nav;";
        const LOADED: &str = "return window.__wharfOld !== true && document.readyState === 'complete';";
        self.rt.block_on(async {
            let c = self.c();
            let e = c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
            let navigates = c.execute(NAVIGATES, vec![Value::from(css)]).await.ok() == Some(Value::Bool(true));
            e.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            if !navigates {
                return;
            }
            while c.execute(LOADED, vec![]).await.ok() != Some(Value::Bool(true)) {
                assert!(std::time::Instant::now() < deadline, "clicking {css} loaded no new page in 20 s");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        });
    }

    /// Types `value` into the field matching `css` (cleared first).
    pub fn fill(&self, css: &str, value: &str) {
        self.rt.block_on(async {
            let e = self.c().find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
            e.clear().await.expect("clear");
            e.send_keys(value).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
        });
    }

    /// Presses Enter in the field matching `css` (submits its form, as a user would).
    pub fn enter(&self, css: &str) {
        let enter: char = fantoccini::key::Key::Enter.into();
        self.rt.block_on(async {
            let e = self.c().find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
            e.send_keys(&enter.to_string()).await.unwrap_or_else(|e| panic!("Enter in {css}: {e}"));
        });
    }

    /// Signs in through the form of `/ui/sign-in` and checks the chrome names the account.
    pub fn sign_in(&self, user: &str, password: &str) {
        self.visit("/ui/sign-in");
        self.fill("form#sign-in #user", user);
        self.fill("form#sign-in #password", password);
        self.click("form#sign-in button[type=submit]");
        assert!(!self.exists("#sign-in-problem"), "sign-in as {user} refused: {}", self.text("#sign-in-problem"));
        assert!(
            self.text("#signed-in-as").contains(user),
            "not signed in as {user}: {} / {}",
            self.text("header"),
            self.text("main")
        );
        self.check_page(&[]);
    }

    /// Presses Tab and describes the element that has the focus then: `TAG.CLASS HREF` (`a.skip #main`).
    pub fn tab(&self) -> String {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let tab: char = fantoccini::key::Key::Tab.into();
        let keys =
            KeyActions::new("keyboard".into()).then(KeyAction::Down { value: tab }).then(KeyAction::Up { value: tab });
        self.rt.block_on(self.c().perform_actions(keys)).expect("press Tab");
        let v = self.js(
            "const e = document.activeElement;
             return e.tagName.toLowerCase() + (e.classList.length ? '.' + e.classList[0] : '')
                    + ' ' + (e.getAttribute('href') || e.id || '')",
            &[],
        );
        v.as_str().unwrap_or("").to_owned()
    }

    /// Forgets every cookie (an anonymous visitor again).
    pub fn sign_out_by_forgetting(&self) {
        self.rt.block_on(self.c().delete_all_cookies()).expect("delete cookies");
    }

    pub fn set_window(&self, (width, height): (u32, u32)) {
        self.rt.block_on(self.c().set_window_size(width, height)).expect("window size");
    }

    fn log(&self, kind: &'static str) -> Vec<Value> {
        let v = self.rt.block_on(self.c().issue_cmd(GetLog(kind))).unwrap_or_else(|e| panic!("{kind} log: {e}"));
        v.as_array().cloned().unwrap_or_default()
    }

    /// The console's errors since the last read (`SEVERE` entries of the `browser` log).
    pub fn console_errors(&self) -> Vec<String> {
        self.log("browser")
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// Every URL the pages requested since the last read (`Network.requestWillBeSent` in the performance log),
    /// but those of the browser's own `chrome://` pages.
    pub fn requests(&self) -> Vec<String> {
        let mut urls = Vec::new();
        for e in self.log("performance") {
            let Some(inner) = e["message"].as_str().and_then(|m| serde_json::from_str::<Value>(m).ok()) else {
                continue;
            };
            let m = &inner["message"];
            if m["method"] != "Network.requestWillBeSent"
                || m["params"]["documentURL"].as_str().is_some_and(|d| d.starts_with("chrome://"))
            {
                continue;
            }
            if let Some(u) = m["params"]["request"]["url"].as_str() {
                urls.push(u.to_owned());
            }
        }
        urls
    }

    /// Checks what happened since the last check: no console error (but those containing one of `allowed`, such
    /// as the `403` a refusal logs) and no request to anything but the origin (`data:` URLs are the page's own).
    /// Returns the URLs requested.
    pub fn check_page(&self, allowed: &[&str]) -> Vec<String> {
        let here = self.path();
        let errors: Vec<String> =
            self.console_errors().into_iter().filter(|e| !allowed.iter().any(|a| e.contains(a))).collect();
        assert!(errors.is_empty(), "console errors on {here}: {errors:#?}");
        let urls = self.requests();
        let prefix = format!("{}/", self.origin);
        let off: Vec<&String> = urls.iter().filter(|u| !u.starts_with(&prefix) && !u.starts_with("data:")).collect();
        assert!(off.is_empty(), "requests off the origin {} from {here}: {off:#?}", self.origin);
        urls
    }

    /// Injects axe-core into the page and runs it; returns the `serious` and `critical` violations.
    pub fn axe(&self) -> Vec<Violation> {
        let loaded = self.js("return typeof axe !== 'undefined'", &[]);
        if loaded != json!(true) {
            self.js(&format!("{}\nreturn true;", axe_source()), &[]);
        }
        let v = self.js_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] })
               .then(r => done(r.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => ({ id: v.id, impact: v.impact, help: v.help,
                              nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ')) }))))
               .catch(e => done({ error: String(e) }));",
            &[],
        );
        assert!(v.get("error").is_none(), "axe.run failed: {v}");
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| Violation {
                        id: x["id"].as_str().unwrap_or("").into(),
                        impact: x["impact"].as_str().unwrap_or("").into(),
                        help: x["help"].as_str().unwrap_or("").into(),
                        nodes: x["nodes"]
                            .as_array()
                            .map(|n| n.iter().map(|s| s.as_str().unwrap_or("").to_owned()).collect())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs axe on the page and fails on any serious or critical violation.
    pub fn assert_accessible(&self, page: &str) {
        let found = self.axe();
        assert!(found.is_empty(), "axe-core on the {page} page ({}): {found:#?}", self.path());
    }

    /// Saves a screenshot of the page as `NAME.png` in the artefact directory and prints its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.rt.block_on(self.c().screenshot()).expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let file = self.artefacts.join(format!("{name}.png"));
        std::fs::write(&file, png).expect("write screenshot");
        println!("screenshot: {}", file.display());
        file
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), c.close()).await });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
