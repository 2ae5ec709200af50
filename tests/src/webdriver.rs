//! A small W3C WebDriver client for browser tests: Debian's `chromium`,
//! headless, driven through `chromedriver` (packages `chromium` and
//! `chromium-driver`).
//!
//! [`Browser::start`] runs `chromedriver` on a free loopback port in its own
//! process group, with its log and Chromium's profile in a temporary folder,
//! and opens one session. Dropping the [`Browser`] deletes the session, ends
//! the whole process group (SIGTERM, then SIGKILL), kills any process of the
//! tree that left the group, waits for `chromedriver` and removes the
//! folder: nothing it started is left running. Processes are only ever
//! signalled by the ids this browser recorded, never by name.
//!
//! Every call is blocking. The calls panic with a message naming what was
//! attempted and what the driver answered (this is test code); the few that
//! a test may want to handle return a `Result` or an `Option`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

/// The Chromium binary the session runs.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The driver binary.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The key of a web element reference in WebDriver JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long `chromedriver` may take to answer `/status` and open a session.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long one WebDriver command may take (a page load included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the process group has between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(10);

/// An error from the driver or from talking to it.
#[derive(Debug, Clone)]
pub struct WebDriverError {
    /// The WebDriver error code (`no such element`, …), or `transport` when
    /// the HTTP exchange itself failed.
    pub code: String,
    /// What was attempted and what came back.
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for WebDriverError {}

/// The HTTP side of one session, shared with its elements.
struct Session {
    http: reqwest::blocking::Client,
    /// `http://127.0.0.1:PORT`
    base: String,
    /// The session id, empty until the session exists.
    id: String,
}

impl Session {
    /// One WebDriver command: `method` on `path` (relative to the driver's
    /// root), with `body` for POST. Returns the response's `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WebDriverError> {
        let url = format!("{}{}", self.base, path);
        let what = format!("WebDriver {method} {path}");
        let request = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self
                .http
                .post(&url)
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let response = request.send().map_err(|e| WebDriverError {
            code: "transport".into(),
            message: format!("{what}: {e}"),
        })?;
        let status = response.status();
        let text = response.text().map_err(|e| WebDriverError {
            code: "transport".into(),
            message: format!("{what}: reading the answer: {e}"),
        })?;
        let parsed: Value = serde_json::from_str(&text).map_err(|e| WebDriverError {
            code: "transport".into(),
            message: format!("{what}: HTTP {status}, not JSON ({e}): {text:.500}"),
        })?;
        let value = parsed.get("value").cloned().unwrap_or(Value::Null);
        if let Some(code) = value.get("error").and_then(Value::as_str) {
            let message = value.get("message").and_then(Value::as_str).unwrap_or("");
            return Err(WebDriverError {
                code: code.to_string(),
                message: format!("{what}: HTTP {status}: {message}"),
            });
        }
        if !status.is_success() {
            return Err(WebDriverError {
                code: "transport".into(),
                message: format!("{what}: HTTP {status}: {text:.500}"),
            });
        }
        Ok(value)
    }

    /// A command on this session: `path` is relative to `/session/{id}`.
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WebDriverError> {
        self.call(method, &format!("/session/{}{}", self.id, path), body)
    }

    /// [`Session::cmd`], panicking with the error.
    fn must(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.cmd(method, path, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A running headless Chromium with one WebDriver session.
pub struct Browser {
    session: Arc<Session>,
    child: Option<Child>,
    pgid: i32,
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    log: PathBuf,
}

/// A reference to an element of the current page.
#[derive(Clone)]
pub struct Element {
    session: Arc<Session>,
    id: String,
    /// The selector it was found by, for messages.
    css: String,
}

impl std::fmt::Debug for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Element({:?}, {})", self.css, self.id)
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("binding 127.0.0.1:0 to pick a port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("reading the picked port: {e}"))
}

/// The last `n` lines of a file, for failure messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `(ppid, pgid, starttime)` of a process, from `/proc/PID/stat`.
fn proc_stat(pid: i32) -> Option<(i32, i32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) pgrp(2) … starttime(19).
    Some((
        fields.get(1)?.parse().ok()?,
        fields.get(2)?.parse().ok()?,
        fields.get(19)?.parse().ok()?,
    ))
}

/// Every live descendant of `root`, as `(pid, starttime)`, by a walk of
/// `/proc`.
fn descendants(root: i32) -> Vec<(i32, u64)> {
    let mut table = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some((ppid, _, start)) = proc_stat(pid) {
                table.push((pid, ppid, start));
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, start) in &table {
            if ppid == parent && !found.iter().any(|&(p, _)| p == pid) {
                found.push((pid, start));
                frontier.push(pid);
            }
        }
    }
    found
}

/// Whether any process is left in process group `pgid`.
fn group_alive(pgid: i32) -> bool {
    killpg(Pid::from_raw(pgid), None) != Err(Errno::ESRCH)
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium session; panics with
    /// the reason (and the driver's log) when it cannot.
    pub fn start() -> Browser {
        Browser::try_start().unwrap_or_else(|e| panic!("starting the browser: {e}"))
    }

    /// [`Browser::start`], returning the reason it could not start.
    pub fn try_start() -> Result<Browser, String> {
        for path in [CHROMEDRIVER, CHROMIUM] {
            if !Path::new(path).exists() {
                return Err(format!(
                    "{path} is missing: install Debian's chromium and chromium-driver packages"
                ));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("ferrotron-browser-")
            .tempdir()
            .map_err(|e| format!("creating a temporary folder: {e}"))?;
        let dir_path = dir.path().to_path_buf();
        let profile = dir_path.join("profile");
        std::fs::create_dir(&profile)
            .map_err(|e| format!("creating {}: {e}", profile.display()))?;
        let log = dir_path.join("chromedriver.log");
        let out = File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("duplicating the log's handle: {e}"))?;
        let port = free_port()?;
        let child = {
            use std::os::unix::process::CommandExt as _;
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .process_group(0)
                .spawn()
                .map_err(|e| format!("spawning {CHROMEDRIVER}: {e}"))?
        };
        let pgid = child.id() as i32;
        let http = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(COMMAND_TIMEOUT)
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        let mut browser = Browser {
            session: Arc::new(Session {
                http,
                base: format!("http://127.0.0.1:{port}"),
                id: String::new(),
            }),
            child: Some(child),
            pgid,
            dir: Some(dir),
            dir_path,
            log,
        };
        // From here on, a failure drops `browser`, which ends chromedriver.
        browser.wait_ready()?;
        let id = browser.new_session(&profile)?;
        if let Some(session) = Arc::get_mut(&mut browser.session) {
            session.id = id;
        }
        Ok(browser)
    }

    /// Polls `/status` until the driver says it is ready.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "chromedriver exited ({status}) before it was ready; its log:\n{}",
                        tail(&self.log, 40)
                    ));
                }
            }
            let last = match self.session.call("GET", "/status", None) {
                Ok(v) if v.get("ready").and_then(Value::as_bool) == Some(true) => return Ok(()),
                Ok(v) => format!("not ready: {v}"),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "chromedriver on {} not ready within {START_DEADLINE:?} ({last}); its log:\n{}",
                    self.session.base,
                    tail(&self.log, 40)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn new_session(&self, profile: &Path) -> Result<String, String> {
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            format!("--user-data-dir={}", profile.display()),
                            "--window-size=1280,900",
                        ],
                    },
                    "goog:loggingPrefs": { "browser": "ALL" },
                }
            }
        });
        let value = self
            .session
            .call("POST", "/session", Some(caps))
            .map_err(|e| format!("{e}; chromedriver's log:\n{}", tail(&self.log, 40)))?;
        value
            .get("sessionId")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("POST /session: no sessionId in {value}"))
    }

    /// The process group of `chromedriver` (its pid), which Chromium joins.
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// The temporary folder (driver log, Chromium profile), removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// The driver's log file (in [`Browser::dir`]).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The pids of every live process under `chromedriver` (Chromium and
    /// its helpers).
    pub fn process_tree(&self) -> Vec<i32> {
        descendants(self.pgid).into_iter().map(|(p, _)| p).collect()
    }

    /// A raw command on this session (`path` relative to `/session/{id}`),
    /// for what the helpers below do not cover.
    pub fn command(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        self.session.cmd(method, path, body)
    }

    /// Navigates to `url` and waits for the load to finish.
    pub fn goto(&self, url: &str) {
        self.session
            .must("POST", "/url", Some(json!({ "url": url })));
    }

    /// The current page's URL.
    pub fn url(&self) -> String {
        as_string(self.session.must("GET", "/url", None))
    }

    /// The current page's title.
    pub fn title(&self) -> String {
        as_string(self.session.must("GET", "/title", None))
    }

    /// The current page's serialized DOM.
    pub fn source(&self) -> String {
        as_string(self.session.must("GET", "/source", None))
    }

    fn element(&self, value: &Value, css: &str) -> Element {
        element_from(&self.session, value, css)
    }

    /// The first element matching `css`; panics when there is none.
    pub fn find(&self, css: &str) -> Element {
        self.try_find(css)
            .unwrap_or_else(|| panic!("no element matches {css:?} on {}", self.url()))
    }

    /// The first element matching `css`, if any.
    pub fn try_find(&self, css: &str) -> Option<Element> {
        let body = json!({ "using": "css selector", "value": css });
        match self.session.cmd("POST", "/element", Some(body)) {
            Ok(v) => Some(self.element(&v, css)),
            Err(e) if e.code == "no such element" => None,
            Err(e) => panic!("finding {css:?}: {e}"),
        }
    }

    /// Every element matching `css`, in document order.
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let body = json!({ "using": "css selector", "value": css });
        let v = self
            .session
            .cmd("POST", "/elements", Some(body))
            .unwrap_or_else(|e| panic!("finding all {css:?}: {e}"));
        v.as_array()
            .map(|a| a.iter().map(|e| self.element(e, css)).collect())
            .unwrap_or_default()
    }

    /// The rendered text of the first element matching `css`, read in the
    /// page in one step, `None` when nothing matches. Unlike
    /// `try_find(css)?.text()` it cannot meet a stale element: a live part
    /// of a page may be replaced between a find and a read.
    pub fn text(&self, css: &str) -> Option<String> {
        let v = self.execute(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
            vec![json!(css)],
        );
        v.as_str().map(str::to_string)
    }

    /// The attribute `name` of every element matching `css`, in document
    /// order, read in one step (elements without it are left out).
    pub fn attrs(&self, css: &str, name: &str) -> Vec<String> {
        let v = self.execute(
            "return Array.from(document.querySelectorAll(arguments[0]))\
             .map(e => e.getAttribute(arguments[1])).filter(a => a !== null);",
            vec![json!(css), json!(name)],
        );
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs `script` as a function body with `args` (`arguments[0]`, …)
    /// and returns what it returns. Elements are passed with
    /// [`Element::as_arg`].
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.session
            .cmd(
                "POST",
                "/execute/sync",
                Some(json!({ "script": script, "args": args })),
            )
            .unwrap_or_else(|e| panic!("executing {script:?}: {e}"))
    }

    /// Resizes the window to `width` × `height` CSS pixels.
    pub fn set_window_size(&self, width: u32, height: u32) {
        self.session.must(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }

    /// A PNG of the viewport.
    pub fn screenshot_png(&self) -> Vec<u8> {
        let b64 = as_string(self.session.must("GET", "/screenshot", None));
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .unwrap_or_else(|e| panic!("decoding the screenshot's base64: {e}"))
    }

    /// Writes [`Browser::screenshot_png`] to `path`.
    pub fn save_screenshot(&self, path: impl AsRef<Path>) {
        let path = path.as_ref();
        std::fs::write(path, self.screenshot_png())
            .unwrap_or_else(|e| panic!("writing the screenshot to {}: {e}", path.display()));
    }

    /// The page's visible text (`document.body.innerText`), empty when
    /// there is no body.
    pub fn visible_text(&self) -> String {
        self.execute(
            "return document.body ? document.body.innerText : '';",
            vec![],
        )
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    /// Calls `f` every 100 ms until it returns `Some`. At `deadline` panics
    /// naming `what`, with the current URL and the start of the page's
    /// visible text.
    pub fn wait_for<T>(
        &self,
        what: &str,
        deadline: Duration,
        mut f: impl FnMut(&Browser) -> Option<T>,
    ) -> T {
        let end = Instant::now() + deadline;
        loop {
            if let Some(t) = f(self) {
                return t;
            }
            if Instant::now() >= end {
                let url = self.session.cmd("GET", "/url", None).map(as_string);
                let text = self
                    .session
                    .cmd(
                        "POST",
                        "/execute/sync",
                        Some(json!({
                            "script": "return document.body ? document.body.innerText : '';",
                            "args": [],
                        })),
                    )
                    .map(as_string);
                let url = url.unwrap_or_else(|e| format!("(unknown: {e})"));
                let text: String = text
                    .unwrap_or_else(|e| format!("(unknown: {e})"))
                    .chars()
                    .take(2000)
                    .collect();
                panic!("timed out after {deadline:?} waiting for {what}\n  at {url}\n  page text:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the page is wider than the viewport (something sticks out
    /// sideways).
    pub fn has_horizontal_overflow(&self) -> bool {
        self.execute(
            "return document.documentElement.scrollWidth > document.documentElement.clientWidth;",
            vec![],
        )
        .as_bool()
        .unwrap_or_else(|| panic!("has_horizontal_overflow: the script did not return a boolean"))
    }

    /// The browser log entries (console messages, CSP violations, failed
    /// loads) since the last call, as `(level, message)`: chromedriver's
    /// `POST /session/{id}/se/log` with type `browser`. Reading empties it.
    pub fn browser_log(&self) -> Vec<(String, String)> {
        let v = self
            .session
            .cmd("POST", "/se/log", Some(json!({ "type": "browser" })))
            .unwrap_or_else(|e| panic!("reading the browser log: {e}"));
        v.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        let field =
                            |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                        (field("level"), field("message"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The `SEVERE` entries of [`Browser::browser_log`] (console errors,
    /// CSP violations, failed loads) since the last read.
    pub fn console_errors(&self) -> Vec<String> {
        self.browser_log()
            .into_iter()
            .filter(|(level, _)| level == "SEVERE")
            .map(|(_, message)| message)
            .collect()
    }

    /// Ends everything this browser started. Called by `Drop`.
    fn shutdown(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let root = self.pgid;
        // Recorded before the session goes: a process that left the group
        // is still found by its parentage here.
        let tree = descendants(root);
        if !self.session.id.is_empty() {
            if let Err(e) =
                self.session
                    .call("DELETE", &format!("/session/{}", self.session.id), None)
            {
                eprintln!("browser: deleting the session: {e}");
            }
        }
        let group = Pid::from_raw(self.pgid);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + TERM_GRACE;
        let mut reaped = false;
        loop {
            if !reaped {
                reaped = matches!(child.try_wait(), Ok(Some(_)));
            }
            // A zombie still counts in its group: only ask once it is reaped.
            if reaped && !group_alive(self.pgid) {
                break;
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "browser: process group {} still there after SIGTERM; SIGKILL",
                    self.pgid
                );
                let _ = killpg(group, Signal::SIGKILL);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !reaped {
            let _ = child.wait();
        }
        // Whatever left the group: by pid, after checking it is still the
        // same process (same start time).
        for (pid, start) in tree {
            if let Some((_, pgid, now_start)) = proc_stat(pid) {
                if now_start == start && pgid != self.pgid {
                    eprintln!(
                        "browser: pid {pid} left process group {}; SIGKILL",
                        self.pgid
                    );
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
        // Processes of the group that are not our children are reaped by
        // init after SIGKILL: wait until the group is empty (bounded).
        let deadline = Instant::now() + TERM_GRACE;
        while group_alive(self.pgid) && Instant::now() < deadline {
            let _ = killpg(group, Signal::SIGKILL);
            std::thread::sleep(Duration::from_millis(50));
        }
        if std::thread::panicking() {
            eprintln!(
                "chromedriver's log (last 60 lines):\n{}",
                tail(&self.log, 60)
            );
        }
        if let Some(dir) = self.dir.take() {
            if let Err(e) = dir.close() {
                eprintln!("browser: removing {}: {e}", self.dir_path.display());
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn as_string(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn element_from(session: &Arc<Session>, value: &Value, css: &str) -> Element {
    let id = value
        .get(ELEMENT_KEY)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("finding {css:?}: no element reference in {value}"))
        .to_string();
    Element {
        session: Arc::clone(session),
        id,
        css: css.to_string(),
    }
}

impl Element {
    fn must(&self, what: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        self.session
            .cmd(method, &format!("/element/{}{}", self.id, path), body)
            .unwrap_or_else(|e| panic!("{what} of {:?}: {e}", self.css))
    }

    /// The element's rendered text.
    pub fn text(&self) -> String {
        as_string(self.must("text", "GET", "/text", None))
    }

    /// The element's attribute `name`, `None` when it has none.
    pub fn attr(&self, name: &str) -> Option<String> {
        match self.must("attribute", "GET", &format!("/attribute/{name}"), None) {
            Value::Null => None,
            v => Some(as_string(v)),
        }
    }

    /// The element's DOM property `name` (`value`, `checked`, …).
    pub fn property(&self, name: &str) -> Value {
        self.must("property", "GET", &format!("/property/{name}"), None)
    }

    /// Clicks the element (scrolled into view first by the driver).
    pub fn click(&self) {
        self.must("click", "POST", "/click", Some(json!({})));
    }

    /// Types `text` into the element.
    pub fn send_keys(&self, text: &str) {
        self.must("send_keys", "POST", "/value", Some(json!({ "text": text })));
    }

    /// Empties an input or textarea.
    pub fn clear(&self) {
        self.must("clear", "POST", "/clear", Some(json!({})));
    }

    /// First element under this one matching `css`, if any.
    pub fn try_find(&self, css: &str) -> Option<Element> {
        let body = json!({ "using": "css selector", "value": css });
        match self
            .session
            .cmd("POST", &format!("/element/{}/element", self.id), Some(body))
        {
            Ok(v) => Some(element_from(&self.session, &v, css)),
            Err(e) if e.code == "no such element" => None,
            Err(e) => panic!("finding {css:?} under {:?}: {e}", self.css),
        }
    }

    /// This element as an argument of [`Browser::execute`].
    pub fn as_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }
}
