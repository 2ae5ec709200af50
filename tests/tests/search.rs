//! Full-text search (`GET /api/v1/search`, `ferrotron search`) through the
//! real `ferrotron serve` on 127.0.0.1, against SQLite and PostgreSQL: a
//! job run by the local runner and reported to the server (`ferrotron run
//! --report`) prints a word no other line holds; the API and the CLI find
//! it, name the job, the file and the line, and the link gives that line.
//! Hostile queries get a 400 (exit 2) naming the query, or clean results;
//! never a 500, and the index is still there after them.

use std::process::Command;
use std::time::Duration;

use ferrotron_tests::both;
use ferrotron_tests::pg::{Backend, PgDatabase};
use ferrotron_tests::{Harness, Running};
use nix::sys::signal::Signal;
use reqwest::blocking::Client;
use serde_json::Value;

/// `ferrotron serve` with its own data folder and database.
struct Server {
    h: Harness,
    db: Option<PgDatabase>,
    proc: Option<Running>,
    base: String,
    token: String,
    http: Client,
}

impl Server {
    fn start(backend: Backend, extra: &[&str]) -> Server {
        let h = Harness::new(&format!("search-{backend:?}-{}", extra.len()).to_lowercase());
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgDatabase::new("search")),
        };
        let mut s = Server {
            h,
            db,
            proc: None,
            base: String::new(),
            token: String::new(),
            http: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        };
        let out = s
            .command(&["token", "create", "ci", "--role", "operator"])
            .output()
            .expect("token create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        s.token = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut c = s.command(&args);
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut proc = Running::from_command(c);
        let line = proc.wait_for("listening on ", Duration::from_secs(60));
        s.base = line
            .split("listening on ")
            .nth(1)
            .expect("url")
            .trim()
            .to_string();
        s.proc = Some(proc);
        s
    }

    /// A `ferrotron` command on this server's data folder and database.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = self.h.command(args);
        if let Some(db) = &self.db {
            c.env("FERROTRON_DATABASE_URL", &db.url);
        }
        c
    }

    /// GET `path` (under the server): status and body.
    fn get(&self, path: &str) -> (u16, String) {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let r = self.http.get(url).send().expect("GET");
        (r.status().as_u16(), r.text().expect("body"))
    }

    /// `GET /api/v1/search` with these parameters (URL-encoded here).
    fn search(&self, params: &[(&str, &str)]) -> (u16, Value) {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/search", self.base), params)
            .expect("url");
        let r = self.http.get(url).send().expect("GET search");
        let status = r.status().as_u16();
        (status, r.json().expect("search answers are JSON"))
    }

    fn hits(&self, params: &[(&str, &str)]) -> Vec<Value> {
        let (status, body) = self.search(params);
        assert_eq!(status, 200, "{params:?}: {body}");
        body["data"].as_array().expect("data").clone()
    }

    /// Stops the server; it must exit 0.
    fn stop(mut self) {
        if let Some(p) = self.proc.take() {
            p.signal(Signal::SIGTERM);
            let (code, log) = p.finish(Duration::from_secs(30));
            assert_eq!(code, Some(0), "server log:\n{log}");
            assert!(!log.contains("internal_error"), "server log:\n{log}");
        }
        drop(self.db.take());
    }
}

/// A task whose action prints `word` on its second line of output and
/// whose result's note holds `note_word`.
fn task(h: &Harness, word: &str, note_word: &str) -> String {
    let dir = h.data_dir.join("searchable");
    std::fs::create_dir_all(&dir).expect("task dir");
    let formula = format!(
        r#"name: searchable
desc: prints a word to search for
maintainer: ferrotron-tests
input:
  args:
    - koji_build

actions:
  - name: say the word
    shell:
      - echo "a line before"
      - echo "the word is {word} here"
      - echo "a line after"

  - name: report
    resultsdb:
      file: results.yml
"#
    );
    // The work folder starts as a copy of the task folder.
    std::fs::write(
        dir.join("results.yml"),
        format!(
            "results:\n  - checkname: searchable\n    outcome: PASSED\n    \
             note: \"found {note_word} in the note\"\n"
        ),
    )
    .expect("results");
    let path = dir.join("runtask.yml");
    std::fs::write(&path, formula).expect("formula");
    path.display().to_string()
}

fn search_finds_a_printed_word_and_links_to_its_line(backend: Backend) {
    let s = Server::start(backend, &[]);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let word = format!("zq{}", &tag[..12]);
    let note_word = format!("nq{}", &tag[12..24]);
    let item = format!("searchable-{}-1.fc40", &tag[..8]);
    let formula = task(&s.h, &word, &note_word);
    let out = s
        .command(&[
            "run",
            "-i",
            &item,
            "-t",
            "koji_build",
            &formula,
            "--report",
            &s.base,
        ])
        .env("FERROTRON_TOKEN", &s.token)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let job = ferrotron_tests::job_id_in(&stderr).expect("job id");

    // The API: the printed line, in the action's log, with its number;
    // every hit is this job's and its link gives its line.
    let hits = s.hits(&[("q", &word)]);
    assert!(!hits.is_empty(), "no hit for {word}");
    let mut in_action_log = None;
    for h in &hits {
        assert_eq!(h["job"], job.as_str(), "{h}");
        assert_eq!(h["kind"], "log", "{h}");
        assert_eq!(h["item"], item.as_str(), "{h}");
        let file = h["file"].as_str().expect("file");
        let line = h["line"].as_u64().expect("line");
        let href = h["href"].as_str().expect("href");
        assert_eq!(
            href,
            format!("{}/api/v1/jobs/{job}/artifacts/{file}#L{line}", s.base)
        );
        let (status, text) = s.get(href.split('#').next().expect("url"));
        assert_eq!(status, 200, "{href}");
        let at = text
            .split('\n')
            .nth(usize::try_from(line).expect("line") - 1)
            .expect("the line exists");
        assert!(at.contains(&word), "{href}: line {line} is {at:?}");
        assert!(h["text"].as_str().expect("text").contains(&word), "{h}");
        let marked: Vec<&str> = h["snippet"]
            .as_array()
            .expect("snippet")
            .iter()
            .filter(|f| f["match"] == true)
            .filter_map(|f| f["text"].as_str())
            .collect();
        assert_eq!(marked, [word.as_str()], "{h}");
        if file.starts_with("artifacts/actions/") && at.trim() == format!("the word is {word} here")
        {
            in_action_log = Some((file.to_string(), line));
        }
    }
    let (log, line) =
        in_action_log.unwrap_or_else(|| panic!("no hit in an action's log: {hits:?}"));
    // The second line the action printed.
    let (_, text) = s.get(&format!("/api/v1/jobs/{job}/artifacts/{log}"));
    let printed: Vec<&str> = text.lines().collect();
    assert_eq!(
        printed
            .iter()
            .position(|l| l.trim() == format!("the word is {word} here")),
        Some(usize::try_from(line).expect("line") - 1),
        "{text}"
    );

    // The note, linked to its result; the TAP output has it too.
    let found = s.hits(&[("q", &note_word)]);
    assert!(
        found
            .iter()
            .any(|h| h["kind"] == "log" && h["file"] == "artifacts/results.tap"),
        "{found:?}"
    );
    let notes: Vec<&Value> = found.iter().filter(|h| h["kind"] == "note").collect();
    assert_eq!(notes.len(), 1, "{found:?}");
    assert_eq!(notes[0]["kind"], "note");
    assert_eq!(notes[0]["job"], job.as_str());
    let (status, result) = s.get(notes[0]["href"].as_str().expect("href"));
    assert_eq!(status, 200);
    assert!(result.contains(&note_word), "{result}");

    // Filters.
    let count = |extra: &[(&str, &str)]| {
        let mut p = vec![("q", word.as_str())];
        p.extend_from_slice(extra);
        s.hits(&p).len()
    };
    let all = hits.len();
    assert_eq!(count(&[("job", &job)]), all);
    assert_eq!(count(&[("item", &item)]), all);
    assert_eq!(count(&[("item", "other-1-1")]), 0);
    assert_eq!(
        count(&[("testcase", "searchable"), ("outcome", "passed")]),
        all
    );
    assert_eq!(count(&[("outcome", "FAILED")]), 0);
    assert_eq!(count(&[("testcase", "other")]), 0);
    assert_eq!(count(&[("since", "2000-01-01")]), all);
    assert_eq!(count(&[("until", "2000-01-01")]), 0);
    // Phrases in order, exclusions, prefixes.
    assert_eq!(s.hits(&[("q", &format!("\"word is {word}\""))]).len(), all);
    assert_eq!(s.hits(&[("q", &format!("\"{word} is word\""))]).len(), 0);
    assert_eq!(s.hits(&[("q", &format!("{word} -here"))]).len(), 0);
    assert_eq!(s.hits(&[("q", &format!("{word} -absent"))]).len(), all);
    assert_eq!(s.hits(&[("q", &format!("{}*", &word[..8]))]).len(), all);
    let (status, page) = s.search(&[("q", &word), ("limit", "1")]);
    assert_eq!(status, 200);
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["next"].is_string(), all > 1, "{page}");

    // The CLI: one line per hit, `job  file:line  snippet`, the same hits.
    let out = s.command(&["search", &word]).output().expect("search");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), all, "{stdout}");
    assert!(
        lines.contains(&format!("{job}  {log}:{line}  the word is {word} here").as_str()),
        "{stdout}"
    );
    let out = s
        .command(&["search", &note_word, "--testcase", "searchable"])
        .output()
        .expect("search");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result_id = notes[0]["result_id"].as_i64().expect("result id");
    assert!(
        stdout
            .lines()
            .any(|l| l == format!("{job}  results/{result_id}:1  found {note_word} in the note")),
        "{stdout}"
    );

    // Hostile and malformed queries: a 400 naming the query, or results.
    for q in [
        "\"unbalanced",
        "'; DROP TABLE search_lines; --",
        "x\" OR \"1\"=\"1",
        "NEAR(a b) body:x ^y",
        "*",
        "-",
        "OR",
        "a OR",
        "\"\"",
        "%' OR 1=1 --",
        "$1 :* <-> & | ! \\",
        "",
        "<script>alert(1)</script>",
    ] {
        let (status, body) = s.search(&[("q", q)]);
        match status {
            200 => assert!(body["data"].is_array(), "{q}: {body}"),
            400 => {
                assert_eq!(body["code"], "bad_query", "{q}: {body}");
                let message = body["message"].as_str().expect("message");
                assert!(
                    message.starts_with(&format!("search query `{q}`")),
                    "{q}: {message}"
                );
            }
            other => panic!("{q}: {other} {body}"),
        }
    }
    let (status, body) = s.search(&[("q", "\"unbalanced")]);
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "search query `\"unbalanced`: a \" opens a phrase that is never closed"
    );
    let (status, body) = s.search(&[]);
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_query")));
    let (status, body) = s.search(&[("q", &word), ("outcome", "GREAT")]);
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_filter")));
    let (status, body) = s.search(&[("q", &word), ("sort", "x")]);
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_filter")));
    let out = s
        .command(&["search", "\"unbalanced"])
        .output()
        .expect("search");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("search query `\"unbalanced`: a \" opens a phrase"),
        "{stderr}"
    );
    let out = s
        .command(&["search", &word, "--since", "yesterday"])
        .output()
        .expect("search");
    assert_eq!(out.status.code(), Some(2));
    // Nothing was dropped.
    assert_eq!(s.hits(&[("q", &word)]).len(), all);
    s.stop();
}

both!(search_finds_a_printed_word_and_links_to_its_line);

/// With `--require-token-for-reads`, searching needs a token (any role),
/// as every other read.
#[test]
fn search_needs_a_token_when_reads_do() {
    let s = Server::start(Backend::Sqlite, &["--require-token-for-reads"]);
    let (status, body) = s.search(&[("q", "anything")]);
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let url =
        reqwest::Url::parse_with_params(&format!("{}/api/v1/search", s.base), &[("q", "anything")])
            .expect("url");
    let r = s
        .http
        .get(url)
        .bearer_auth(&s.token)
        .send()
        .expect("GET search");
    assert_eq!(r.status().as_u16(), 200);
    s.stop();
}
