//! `ferrotron results import URL`: a site moving over from ResultsDB
//! keeps its history. The source is a second Ferrotron server (its
//! ResultsDB v2.0 API); after the import both servers answer the same
//! (links aside), an import killed part-way resumes without duplicates,
//! and a run over an unchanged source copies nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrotron_tests::service::{http, token, Service};
use ferrotron_tests::{Harness, Running};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

fn post(s: &Service, t: &str, body: &Value) {
    let r = http()
        .post(format!("{}/api/v2.0/results", s.base))
        .bearer_auth(t)
        .json(body)
        .send()
        .expect("POST");
    assert_eq!(r.status().as_u16(), 201, "{body}");
}

/// Every result of a server, oldest first, without what names the server
/// (links) or this store (ids): what a consumer compares.
fn history(base: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut page = 0;
    loop {
        let v: Value = http()
            .get(format!(
                "{base}/api/v2.0/results?_sort=asc:submit_time&limit=100&page={page}"
            ))
            .send()
            .expect("GET")
            .json()
            .expect("JSON");
        let data = v["data"].as_array().cloned().unwrap_or_default();
        for mut r in data.clone() {
            let o = r.as_object_mut().expect("object");
            o.remove("id");
            o.remove("href");
            o["testcase"].as_object_mut().expect("tc").remove("href");
            out.push(r);
        }
        if data.is_empty() || v["next"].is_null() {
            return out;
        }
        page += 1;
    }
}

fn groups(base: &str) -> BTreeMap<String, (Value, Value, Value)> {
    let v: Value = http()
        .get(format!("{base}/api/v2.0/groups?limit=100"))
        .send()
        .expect("GET groups")
        .json()
        .expect("JSON");
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|g| {
            (
                g["uuid"].as_str().expect("uuid").to_string(),
                (
                    g["description"].clone(),
                    g["ref_url"].clone(),
                    g["results_count"].clone(),
                ),
            )
        })
        .collect()
}

fn import(h: &Harness, url: &str) -> (String, String) {
    let out = h.run(&["results", "import", url, "--page-size", "50"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    (out.stdout, out.stderr)
}

#[test]
fn a_resultsdb_history_is_copied_resumably_and_idempotently() {
    let src = Harness::new("import-source");
    let t = token(&src);
    let source = Service::start(&src, &["--no-scheduler"], &[]);
    // 230 results over 5 testcases and 12 groups, with list data, notes,
    // ref URLs and submit times out of insertion order (some equal).
    for i in 0..230 {
        let minute = (i * 7) % 230;
        let outcome = ["PASSED", "FAILED", "INFO", "NEEDS_INSPECTION"][i % 4];
        post(
            &source,
            &t,
            &json!({
                "testcase": {"name": format!("dist.check{}", i % 5), "ref_url": format!("https://tc.example/{}", i % 5)},
                "outcome": outcome,
                "note": if i % 3 == 0 { Value::Null } else { json!(format!("note {i}")) },
                "ref_url": format!("https://logs.example/{i}"),
                "submit_time": format!("2024-03-01T{:02}:{:02}:00", minute / 60, minute % 60),
                "groups": [{"uuid": format!("g-{}", i % 12), "description": format!("group {}", i % 12), "ref_url": format!("https://g.example/{}", i % 12)}],
                "data": {"item": format!("pkg{}-1.0-1.fc40", i % 17), "type": "koji_build", "arch": ["x86_64", "aarch64"]},
            }),
        );
    }
    let want = history(&source.base);
    assert_eq!(want.len(), 230);

    // An import killed part-way (after its first page at the earliest;
    // it may also have finished: both must end the same).
    let dst = Harness::new("import-dest");
    let mut c = dst.command(&["results", "import", &source.base, "--page-size", "50"]);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut first = Running::from_command(c);
    first.wait_for("import: page 1:", Duration::from_secs(120));
    first.signal(Signal::SIGKILL);
    let _ = first.finish(Duration::from_secs(60));

    let (out, _) = import(&dst, &source.base);
    assert!(out.starts_with("imported "), "{out}");
    let dest = Service::start(&dst, &["--no-scheduler"], &[]);
    assert_eq!(history(&dest.base), want, "the copy answers as the source");
    assert_eq!(groups(&dest.base), groups(&source.base));

    // Again: nothing new, nothing twice.
    let (out, _) = import(&dst, &source.base);
    assert!(out.starts_with("imported 0 result(s)"), "{out}");
    // Three more at the source, one at the cursor's very time: those three.
    for (i, time) in [
        (0, "2024-03-01T03:49:00"),
        (1, "2024-03-02T00:00:00"),
        (2, "2024-03-02T00:00:01"),
    ] {
        post(
            &source,
            &t,
            &json!({"testcase": {"name": "dist.late"}, "outcome": "PASSED",
                    "submit_time": time, "data": {"item": format!("late{i}-1-1")}}),
        );
    }
    let (out, _) = import(&dst, &format!("{}/api/v2.0", source.base));
    assert!(out.starts_with("imported 3 result(s)"), "{out}");
    assert_eq!(history(&dest.base), history(&source.base));

    let bad = dst.run(&["results", "import", "ftp://example.org"]);
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("ftp://example.org"), "{}", bad.stderr);
    dest.stop();
    source.stop();
}
