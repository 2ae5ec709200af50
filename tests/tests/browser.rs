//! The WebDriver client (`ferrotron_tests::webdriver`) against a tiny HTTP
//! server of fixed pages: headless Chromium through chromedriver, and
//! nothing left running or on disk once the browser is dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use ferrotron_tests::webdriver::Browser;
use nix::errno::Errno;
use nix::sys::signal::{kill, killpg};
use nix::unistd::Pid;
use serde_json::json;

const HOME: &str = "<!doctype html><html><head><title>home</title>\
    <link rel=icon href='data:,'></head><body>\
    <p id=x>hello</p><input id=i><p class=n>one</p><p class=n>two</p></body></html>";
const WIDE: &str = "<!doctype html><html><head><title>wide</title>\
    <meta name=viewport content='width=device-width'>\
    <link rel=icon href='data:,'></head><body>\
    <div style='width:2000px'>wide</div></body></html>";
const NARROW: &str = "<!doctype html><html><head><title>narrow</title>\
    <meta name=viewport content='width=device-width'>\
    <link rel=icon href='data:,'></head><body>\
    <p>a short paragraph that wraps on a phone</p></body></html>";
/// An inline script under `script-src 'none'`: Chromium refuses it and
/// logs a CSP violation.
const CSP: &str = "<!doctype html><html><head><title>csp</title>\
    <link rel=icon href='data:,'></head><body>\
    <p id=c>csp</p><script>document.title = 'ran';</script></body></html>";

fn respond(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let request = String::from_utf8_lossy(&request);
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (status, extra, body) = match path {
        "/" => ("200 OK", "", HOME),
        "/wide" => ("200 OK", "", WIDE),
        "/narrow" => ("200 OK", "", NARROW),
        "/csp" => (
            "200 OK",
            "Content-Security-Policy: script-src 'none'\r\n",
            CSP,
        ),
        _ => ("404 Not Found", "", "not found"),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n{extra}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Serves the pages above on 127.0.0.1; returns `http://127.0.0.1:PORT`.
fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let base = format!("http://{}", listener.local_addr().expect("local addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            // One thread a connection: Chromium opens spare connections
            // that may never carry a request.
            std::thread::spawn(move || respond(stream));
        }
    });
    base
}

fn pgid_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(2)?.parse().ok()
}

fn group_members(pgid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| pgid_of(p) == Some(pgid))
        .collect()
}

fn comm_of(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn drives_headless_chromium_and_leaves_nothing() {
    let base = serve();
    let browser = Browser::start();
    let pgid = browser.pgid();
    let dir = browser.dir().to_path_buf();
    assert!(dir.is_dir());

    browser.goto(&format!("{base}/"));
    assert_eq!(browser.url(), format!("{base}/"));
    assert_eq!(browser.title(), "home");
    assert!(
        browser.source().contains("id=\"x\""),
        "{}",
        browser.source()
    );
    assert_eq!(browser.find("#x").text(), "hello");
    assert!(browser.try_find("#nothing-here").is_none());
    let texts: Vec<String> = browser.find_all("p.n").iter().map(|e| e.text()).collect();
    assert_eq!(texts, ["one", "two"]);
    assert_eq!(browser.find("#x").attr("id").as_deref(), Some("x"));
    assert_eq!(browser.find("#x").attr("data-none"), None);

    let input = browser.find("#i");
    input.click();
    input.send_keys("typed here");
    assert_eq!(input.property("value"), json!("typed here"));
    input.clear();
    assert_eq!(input.property("value"), json!(""));
    input.send_keys("again");
    let value = browser.execute(
        "return arguments[0].value + arguments[1];",
        vec![input.as_arg(), json!("!")],
    );
    assert_eq!(value, json!("again!"));

    // A change made later by the page, waited for without a fixed sleep.
    browser.execute(
        "setTimeout(() => { document.getElementById('x').textContent = 'changed'; }, 300);",
        vec![],
    );
    let changed = browser.wait_for("#x to read 'changed'", Duration::from_secs(30), |b| {
        b.text("#x").filter(|t| t == "changed")
    });
    assert_eq!(changed, "changed");

    // A live part replaced while it is read, as the dashboard's fragments
    // are every two seconds: `text` and `attrs` read it in one step, so
    // they never meet an element that was replaced under them.
    browser.execute(
        "window.__swaps = 0; window.__swap = setInterval(() => { \
           const n = document.createElement('p'); n.id = 'swapped'; \
           n.setAttribute('data-n', String(++window.__swaps)); n.textContent = 'live'; \
           const old = document.getElementById('swapped'); \
           if (old) old.replaceWith(n); else document.body.appendChild(n); }, 1);",
        vec![],
    );
    for _ in 0..50 {
        let t = browser.wait_for("#swapped", Duration::from_secs(30), |b| b.text("#swapped"));
        assert_eq!(t, "live");
        assert_eq!(browser.attrs("#swapped", "data-n").len(), 1);
    }
    browser.execute("clearInterval(window.__swap);", vec![]);
    assert!(browser.text("#nothing-here").is_none());
    assert!(browser.attrs("#nothing-here", "id").is_empty());
    assert_eq!(browser.console_errors(), Vec::<String>::new());

    let png = browser.screenshot_png();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: {:?}",
        &png[..png.len().min(16)]
    );
    let shot = dir.join("home.png");
    browser.save_screenshot(&shot);
    assert!(std::fs::read(&shot)
        .expect("read screenshot")
        .starts_with(b"\x89PNG"));

    // Phone size.
    browser.set_window_size(390, 844);
    browser.goto(&format!("{base}/narrow"));
    let inner = browser.execute("return [window.innerWidth, window.innerHeight];", vec![]);
    eprintln!("viewport at 390x844: {inner}");
    assert!(
        !browser.has_horizontal_overflow(),
        "narrow page overflows at 390 px"
    );
    browser.goto(&format!("{base}/wide"));
    assert!(
        browser.has_horizontal_overflow(),
        "a 2000 px div does not overflow at 390 px"
    );

    // A CSP violation shows in the browser log.
    browser.goto(&format!("{base}/csp"));
    assert_eq!(
        browser.title(),
        "csp",
        "the inline script ran despite script-src 'none'"
    );
    let errors = browser.wait_for(
        "the CSP violation in the browser log",
        Duration::from_secs(30),
        |b| {
            let errors = b.console_errors();
            (!errors.is_empty()).then_some(errors)
        },
    );
    assert!(
        errors.iter().any(|e| e.contains("Content Security Policy")),
        "{errors:?}"
    );

    // Chromium and its helpers run under chromedriver, in its group.
    let tree = browser.process_tree();
    let described: Vec<String> = tree
        .iter()
        .map(|&p| format!("{p} {} pgid={:?}", comm_of(p), pgid_of(p)))
        .collect();
    eprintln!(
        "chromedriver {pgid}'s process tree:\n  {}",
        described.join("\n  ")
    );
    assert!(
        tree.iter().any(|&p| comm_of(p).contains("chromium")),
        "no chromium under chromedriver: {described:?}"
    );
    assert!(
        tree.iter().all(|&p| pgid_of(p).is_none_or(|g| g == pgid)),
        "a process left chromedriver's group {pgid}: {described:?}"
    );

    // Members of the group that are not under chromedriver (a helper that
    // double-forked away from it) are still ended with the group.
    let outside: Vec<String> = group_members(pgid)
        .into_iter()
        .filter(|p| *p != pgid && !tree.contains(p))
        .map(|p| format!("{p} {}", comm_of(p)))
        .collect();
    eprintln!("group {pgid} members outside chromedriver's tree: {outside:?}");

    drop(browser);
    assert_eq!(
        killpg(Pid::from_raw(pgid), None),
        Err(Errno::ESRCH),
        "process group {pgid} still has processes"
    );
    for pid in tree {
        assert_eq!(
            kill(Pid::from_raw(pid), None),
            Err(Errno::ESRCH),
            "pid {pid} is still alive"
        );
    }
    assert!(!dir.exists(), "{} is left", dir.display());
}
