//! Helpers for the integration tests: temporary job folders, running the
//! agent binary, and a strict checker for the TAP13 files it writes.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use ferrotron_agent::protocol::Event;
use serde_json::{json, Value};

pub const AGENT: &str = env!("CARGO_BIN_EXE_ferrotron-agent");

/// A temporary job folder, removed on drop.
pub struct TempJob {
    pub root: PathBuf,
}

impl TempJob {
    pub fn new(test: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root = std::env::temp_dir().join(format!(
            "ferrotron-agent-test-{}-{n}-{test}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("task")).unwrap();
        TempJob { root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn workdir(&self) -> PathBuf {
        self.path("work")
    }

    pub fn artifacts(&self) -> PathBuf {
        self.path("artifacts")
    }

    /// A job with the given actions (JSON values) and extra top-level keys.
    pub fn job(&self, actions: Value) -> Value {
        json!({
            "version": 1,
            "job_id": "00000000-0000-4000-8000-000000000001",
            "name": "demo",
            "item": "foo-1.0-1.fc40",
            "item_type": "koji_build",
            "arch": "x86_64",
            "taskdir": self.path("task"),
            "workdir": self.workdir(),
            "artifactsdir": self.artifacts(),
            "vars": {"item": "foo-1.0-1.fc40", "type": "koji_build"},
            "env": {"LANG": "C.UTF-8"},
            "actions": actions,
        })
    }

    /// Writes the job file and runs the agent on it.
    pub fn run(&self, job: &Value) -> Run {
        let file = self.path("job.json");
        std::fs::write(&file, serde_json::to_string_pretty(job).unwrap()).unwrap();
        run_agent(&["run", file.to_str().unwrap()])
    }

    pub fn results(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.artifacts().join("results.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    pub fn tap(&self) -> String {
        std::fs::read_to_string(self.artifacts().join("results.tap")).unwrap()
    }
}

impl Drop for TempJob {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// What one agent run produced.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub events: Vec<Event>,
}

impl Run {
    pub fn output_lines(&self, index: usize) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Output { index: i, line, .. } if *i == index => Some(line.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn finish(&self) -> Event {
        self.events.last().cloned().unwrap()
    }
}

pub fn run_agent(args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(AGENT).args(args).output().unwrap();
    let stdout = String::from_utf8(stdout).expect("agent stdout is UTF-8");
    let events = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event {l:?}: {e}")))
        .collect();
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        events,
    }
}

/// Whether a process is gone (no longer exists, or is a zombie waiting to
/// be reaped by an init that is slow to do so).
/// Whether `pid` has exited, polling for a few seconds: a SIGKILLed
/// process is not gone the instant the signal is sent.
pub fn process_gone(pid: u32) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if process_gone_now(pid) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn process_gone_now(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
            state == Some('Z') || state == Some('X')
        }
    }
}

pub fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

// --- A strict checker for the TAP13 files -------------------------------

/// A YAML value of the subset the agent writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Str { text: String, literal: bool },
    Map(BTreeMap<String, Yaml>),
}

impl Yaml {
    pub fn get(&self, key: &str) -> &Yaml {
        match self {
            Yaml::Map(m) => m.get(key).unwrap_or_else(|| panic!("no key {key}")),
            Yaml::Str { .. } => panic!("not a mapping"),
        }
    }

    pub fn str(&self) -> &str {
        match self {
            Yaml::Str { text, .. } => text,
            Yaml::Map(_) => panic!("not a string"),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Yaml::Str { text, .. } => Value::String(text.clone()),
            Yaml::Map(m) => {
                Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }
}

/// One test point of a TAP document.
#[derive(Debug)]
pub struct TestPoint {
    pub ok: bool,
    pub number: usize,
    pub description: String,
    /// The YAML block with the TAP indentation removed.
    pub yaml_text: String,
    pub yaml: Yaml,
}

/// Parses a TAP13 document as the agent writes it, failing on anything
/// unexpected: version line, plan, numbered test points each followed by
/// a YAML block (`  ---` ... `  ...`) whose lines are all indented.
pub fn parse_tap(text: &str) -> Result<Vec<TestPoint>, String> {
    let mut lines = text.split_inclusive('\n').map(|l| {
        l.strip_suffix('\n')
            .ok_or_else(|| format!("line without newline: {l:?}"))
    });
    let mut next = || lines.next().transpose();
    if next()? != Some("TAP version 13") {
        return Err("first line is not `TAP version 13`".into());
    }
    let plan = next()?.ok_or("no plan")?;
    let count: usize = plan
        .strip_prefix("1..")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("bad plan {plan:?}"))?;
    let mut points = Vec::new();
    while let Some(line) = next()? {
        let (ok, rest) = if let Some(rest) = line.strip_prefix("ok ") {
            (true, rest)
        } else if let Some(rest) = line.strip_prefix("not ok ") {
            (false, rest)
        } else {
            return Err(format!("expected a test line, got {line:?}"));
        };
        let (number, description) = rest.split_once(" - ").ok_or("no ` - `")?;
        let number: usize = number.parse().map_err(|_| "bad test number")?;
        if number != points.len() + 1 {
            return Err(format!("test {number} out of order"));
        }
        if description.chars().any(char::is_control) || unescaped_hash(description) {
            return Err(format!("bad description {description:?}"));
        }
        if next()? != Some("  ---") {
            return Err("test line not followed by `  ---`".into());
        }
        let mut yaml_text = String::new();
        loop {
            let line = next()?.ok_or("YAML block not closed")?;
            if line == "  ..." {
                break;
            }
            let inner = line
                .strip_prefix("  ")
                .ok_or_else(|| format!("YAML line not indented: {line:?}"))?;
            if inner.trim() == "..." || inner.starts_with("---") {
                return Err(format!("document marker inside YAML block: {line:?}"));
            }
            yaml_text.push_str(inner);
            yaml_text.push('\n');
        }
        let yaml = parse_yaml(&yaml_text)?;
        points.push(TestPoint {
            ok,
            number,
            description: description.to_string(),
            yaml_text,
            yaml,
        });
    }
    if points.len() != count {
        return Err(format!("plan says {count}, found {}", points.len()));
    }
    Ok(points)
}

fn unescaped_hash(s: &str) -> bool {
    let mut escaped = false;
    for c in s.chars() {
        match (c, escaped) {
            ('#', false) => return true,
            ('\\', false) => escaped = true,
            _ => escaped = false,
        }
    }
    false
}

/// Characters a YAML 1.1 reader (libyaml, PyYAML) accepts anywhere.
fn yaml_printable(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7E}' | '\u{85}' | '\u{A0}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Parses the YAML subset the agent writes: block mappings with plain
/// `[a-z_]+` keys whose values are nested mappings, double-quoted scalars
/// or `|` literal blocks (with chomping and indentation indicators).
pub fn parse_yaml(text: &str) -> Result<Yaml, String> {
    if let Some(c) = text.chars().find(|&c| !yaml_printable(c)) {
        return Err(format!("non-printable character {c:?} in YAML"));
    }
    if text.contains('\r') || text.contains('\u{85}') {
        return Err("line break other than \\n in YAML".into());
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut pos = 0;
    let map = parse_map(&lines, &mut pos, 0)?;
    if pos != lines.len() {
        return Err(format!("unexpected line {:?}", lines[pos]));
    }
    Ok(map)
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn parse_map(lines: &[&str], pos: &mut usize, indent: usize) -> Result<Yaml, String> {
    let mut map = BTreeMap::new();
    while *pos < lines.len() {
        let line = lines[*pos];
        let ind = indent_of(line);
        if ind < indent {
            break;
        }
        if ind > indent {
            return Err(format!("bad indentation: {line:?}"));
        }
        let (key, rest) = line[ind..]
            .split_once(':')
            .ok_or_else(|| format!("no key in {line:?}"))?;
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            return Err(format!("bad key {key:?}"));
        }
        *pos += 1;
        let value = if rest.is_empty() {
            let child = lines.get(*pos).map(|l| indent_of(l)).unwrap_or(0);
            if child <= indent {
                return Err(format!("empty value for {key}"));
            }
            parse_map(lines, pos, child)?
        } else if let Some(q) = rest.strip_prefix(" \"") {
            Yaml::Str {
                text: parse_quoted(q)?,
                literal: false,
            }
        } else if let Some(header) = rest.strip_prefix(" |") {
            Yaml::Str {
                text: parse_literal(lines, pos, indent, header)?,
                literal: true,
            }
        } else {
            return Err(format!("unsupported value {rest:?}"));
        };
        if map.insert(key.to_string(), value).is_some() {
            return Err(format!("duplicate key {key}"));
        }
    }
    Ok(Yaml::Map(map))
}

/// The rest of a double-quoted scalar after its opening quote; it must end
/// the line.
fn parse_quoted(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    let hex = |chars: &mut std::str::Chars, n: usize| -> Result<char, String> {
        let digits: String = chars.by_ref().take(n).collect();
        u32::from_str_radix(&digits, 16)
            .ok()
            .filter(|_| digits.len() == n)
            .and_then(char::from_u32)
            .ok_or_else(|| format!("bad escape digits {digits:?}"))
    };
    loop {
        match chars.next().ok_or("unterminated string")? {
            '"' => break,
            '\\' => out.push(match chars.next().ok_or("dangling backslash")? {
                '"' => '"',
                '\\' => '\\',
                '/' => '/',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                '0' => '\0',
                'x' => hex(&mut chars, 2)?,
                'u' => hex(&mut chars, 4)?,
                'U' => hex(&mut chars, 8)?,
                c => return Err(format!("unknown escape \\{c}")),
            }),
            c if c.is_control() => return Err(format!("raw control {c:?} in string")),
            c => out.push(c),
        }
    }
    if !chars.as_str().is_empty() {
        return Err(format!("text after string: {:?}", chars.as_str()));
    }
    Ok(out)
}

/// A literal block scalar whose key is at `key_indent`.
fn parse_literal(
    lines: &[&str],
    pos: &mut usize,
    key_indent: usize,
    header: &str,
) -> Result<String, String> {
    let mut explicit = None;
    let mut chomp = ' ';
    for c in header.chars() {
        match c {
            '1'..='9' if explicit.is_none() => explicit = c.to_digit(10).map(|d| d as usize),
            '-' | '+' if chomp == ' ' => chomp = c,
            _ => return Err(format!("bad block header {header:?}")),
        }
    }
    // Lines of the block: up to the first non-blank line indented less
    // than the content (all indentation here is at least key_indent + 1).
    let start = *pos;
    while *pos < lines.len() {
        let l = lines[*pos];
        if !l.trim_start_matches(' ').is_empty() && indent_of(l) <= key_indent {
            break;
        }
        *pos += 1;
    }
    let block = &lines[start..*pos];
    let content_indent = match explicit {
        Some(n) => key_indent + n,
        None => {
            let first = block
                .iter()
                .find(|l| !l.trim_start_matches(' ').is_empty())
                .ok_or("block without content")?;
            let n = indent_of(first);
            if block
                .iter()
                .take_while(|l| l.trim_start_matches(' ').is_empty())
                .any(|l| l.len() > n)
            {
                return Err("leading blank line with too many spaces".into());
            }
            n
        }
    };
    if content_indent <= key_indent {
        return Err("block content not indented".into());
    }
    let mut text = String::new();
    for l in block {
        if l.trim_start_matches(' ').is_empty() && l.len() <= content_indent {
            text.push('\n');
        } else if indent_of(l) >= content_indent {
            text.push_str(&l[content_indent..]);
            text.push('\n');
        } else {
            return Err(format!("under-indented block line {l:?}"));
        }
    }
    let body_len = text.trim_end_matches('\n').len();
    match chomp {
        '-' => text.truncate(body_len),
        ' ' if body_len < text.len() => text.truncate(body_len + 1),
        _ => {}
    }
    Ok(text)
}

/// What a literal block holds for an output, by the rules of `tap.rs`:
/// CR LF and lone CR become LF, other non-printable characters are
/// replaced by their escape text.
pub fn block_form(output: &str) -> String {
    let mut s = String::new();
    let mut chars = output.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\r' | '\n' => s.push('\n'),
            '\t' => s.push('\t'),
            c if (c as u32) < 0x20
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                let n = c as u32;
                if n <= 0xff {
                    s.push_str(&format!("\\x{n:02x}"));
                } else {
                    s.push_str(&format!("\\u{n:04x}"));
                }
            }
            c => s.push(c),
        }
    }
    s
}

/// Checks each result's YAML block against the result: exact strings,
/// and for a literal-block output, [`block_form`] of it.
pub fn check_tap_against(tap: &str, results: &[Value]) {
    let points = parse_tap(tap).unwrap_or_else(|e| panic!("invalid TAP ({e}):\n{tap}"));
    assert_eq!(points.len(), results.len());
    for (p, r) in points.iter().zip(results) {
        let y = &p.yaml;
        assert_eq!(y.get("checkname").str(), r["checkname"].as_str().unwrap());
        assert_eq!(y.get("item").str(), r["item"].as_str().unwrap());
        assert_eq!(y.get("type").str(), r["item_type"].as_str().unwrap());
        assert_eq!(y.get("outcome").str(), r["outcome"].as_str().unwrap());
        assert_eq!(y.get("summary").str(), r["summary"].as_str().unwrap());
        assert_eq!(p.ok, r["outcome"] == "PASSED" || r["outcome"] == "INFO");
        let output = r["output"].as_str().unwrap();
        match y.get("details").get("output") {
            Yaml::Str {
                text,
                literal: true,
            } => assert_eq!(text, &block_form(output)),
            Yaml::Str { text, .. } => assert_eq!(text, output),
            Yaml::Map(_) => panic!("output is a mapping"),
        }
    }
    check_with_pyyaml(&points);
}

/// When python3 with PyYAML is installed, also loads every YAML block with
/// it and compares with our reading. Skipped (with a note) otherwise.
pub fn check_with_pyyaml(points: &[TestPoint]) {
    use std::io::Write;
    use std::process::Stdio;
    let docs: Vec<&str> = points.iter().map(|p| p.yaml_text.as_str()).collect();
    let script = "import sys, json, yaml\n\
        docs = json.load(sys.stdin)\n\
        print(json.dumps([yaml.safe_load(d) for d in docs]))\n";
    let child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("note: python3 not found, PyYAML check skipped");
        return;
    };
    let input = serde_json::to_vec(&docs).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named 'yaml'") {
        eprintln!("note: PyYAML not installed, PyYAML check skipped");
        return;
    }
    assert!(out.status.success(), "PyYAML rejected a block: {stderr}");
    let loaded: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    for (p, v) in points.iter().zip(loaded) {
        assert_eq!(
            v,
            p.yaml.to_json(),
            "PyYAML reads differently:\n{}",
            p.yaml_text
        );
    }
}
