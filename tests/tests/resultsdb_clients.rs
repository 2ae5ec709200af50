//! ResultsDB's real clients from PyPI (`resultsdb_api`, `resultsdb_conventions`)
//! and Greenwave's exact query against a real `ferrotron serve`, on SQLite
//! and on PostgreSQL: a Taskotron-style reporter, a Bodhi-update reporter
//! with groups, and Greenwave's `results/latest` with `_distinct_on`. Each
//! answer is checked against what upstream ResultsDB answers (its
//! `testing/functest_api_v20.py` and `controllers/api_v2.py`).
//!
//! The scripts are tests/fixtures/resultsdb-clients/*.py; the venv is
//! tests/src/pyclients.rs's.

use std::collections::BTreeSet;

use ferrotron_tests::both;
use ferrotron_tests::pg::{Backend, PgDatabase};
use ferrotron_tests::pyclients;
use ferrotron_tests::service::{http, Service};
use ferrotron_tests::Harness;
use serde_json::{json, Value};

/// A `ferrotron serve` with its own data folder (and database), and a
/// reporter's token.
struct Server {
    s: Option<Service>,
    token: String,
    // Dropped after the service: the database outlives its server.
    _db: Option<PgDatabase>,
    _h: Harness,
}

impl Server {
    fn start(test: &str, backend: Backend) -> Server {
        let h = Harness::new(&format!("rdb-clients-{test}-{backend:?}").to_lowercase());
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgDatabase::new(test)),
        };
        let env: Vec<(&str, &str)> = db
            .as_ref()
            .map(|d| vec![("FERROTRON_DATABASE_URL", d.url.as_str())])
            .unwrap_or_default();
        let out = h
            .command(&["token", "create", "reporter", "--role", "reporter"])
            .envs(env.iter().copied())
            .output()
            .expect("token create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let s = Service::start(&h, &[], &env);
        Server {
            s: Some(s),
            token,
            _db: db,
            _h: h,
        }
    }

    fn base(&self) -> &str {
        &self.s.as_ref().expect("running").base
    }

    fn api(&self) -> String {
        format!("{}/api/v2.0", self.base())
    }

    fn get(&self, path: &str) -> Value {
        let r = http()
            .get(format!("{}{path}", self.api()))
            .send()
            .expect("GET");
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        r.json().expect("JSON")
    }

    fn stop(mut self) {
        if let Some(s) = self.s.take() {
            s.stop();
        }
    }
}

both!(a_taskotron_reporter_writes_and_reads_as_with_upstream);
both!(a_bodhi_reporter_with_groups_writes_and_reads_as_with_upstream);
both!(greenwaves_query_keeps_a_failed_scenario_behind_a_newer_pass);

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("a list: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap_or("?").to_string())
        .collect()
}

fn set(v: &Value) -> BTreeSet<String> {
    strs(v).into_iter().collect()
}

/// The uuid `resultsdb_conventions.helpers.uuid_namespace(name,
/// uuid_namespace(namespace))` gives (uuid5 under uuid5 of DNS), computed
/// once with the library.
const SOURCE_TASKOTRON: &str = "28ed51c9-92c2-517f-97ba-471d87090f85";
const SOURCE_OPENQA: &str = "0f3309ea-6d4c-59b2-b422-d73e9b8511f3";
const BODHI_UPDATE: &str = "e30996c7-bedc-598d-8f83-019f09515b65";
const OPENQA_UPDATE: &str = "0caaa741-453b-5557-9021-ecd99d4631c7";

/// libtaskotron's `resultsdb` directive (testcases made on a 404 whose
/// message starts "Testcase not found", the job as a group with its URL,
/// `note or None`, item/type/arch and every other key as data) and one
/// result through `resultsdb_conventions`' `Result.report()`.
fn a_taskotron_reporter_writes_and_reads_as_with_upstream(backend: Backend) {
    let srv = Server::start("taskotron", backend);
    let job = "f0e1d2c3-b4a5-4968-8776-655443322110";
    let out = pyclients::run(
        "resultsdb-clients/taskotron_report.py",
        &[&srv.api(), &srv.token, job],
    );
    let got: Value = serde_json::from_str(out.trim()).expect("the script's JSON");
    let nvr = "bash-5.2.37-1.fc42";
    let artifacts = format!("https://taskotron.example/artifacts/{job}");
    let placeholder = |tc: &str| format!("https://fedoraproject.org/wiki/Taskotron/Tasks/{tc}");

    // The 404 of an unknown testcase reads "Testcase not found" (the
    // directive tests the message's start), so each was made once...
    assert_eq!(
        strs(&got["created_testcases"]),
        ["dist.rpmlint", "dist.abicheck", "dist.upgradepath"],
        "{got}"
    );
    // ...and a later run finds them (200) and makes none.
    assert_eq!(got["rerun_created_testcases"], json!([]), "{got}");

    let r = &got["results"];
    // As upstream: `note: null` stays null, the outcome is upper-cased,
    // every data value is a list, the testcase carries its own URL (a
    // result naming it by a bare name leaves that URL alone), groups are
    // uuids.
    let rpmlint = &r[0];
    assert_eq!(rpmlint["outcome"], "PASSED");
    assert_eq!(rpmlint["note"], Value::Null, "{rpmlint}");
    assert_eq!(rpmlint["ref_url"], artifacts);
    assert_eq!(rpmlint["testcase"]["name"], "dist.rpmlint");
    assert_eq!(rpmlint["testcase"]["ref_url"], placeholder("dist.rpmlint"));
    assert_eq!(
        rpmlint["testcase"]["href"],
        format!("{}/testcases/dist.rpmlint", srv.api())
    );
    assert_eq!(rpmlint["groups"], json!([job]));
    assert_eq!(
        rpmlint["data"],
        json!({"item": [nvr], "type": ["koji_build"], "arch": ["x86_64"]}),
        "{rpmlint}"
    );
    assert_eq!(
        rpmlint["href"],
        format!("{}/results/{}", srv.api(), rpmlint["id"])
    );
    let abicheck = &r[1];
    assert_eq!(abicheck["outcome"], "FAILED");
    assert_eq!(abicheck["note"], "2 ABI changes");
    assert_eq!(
        abicheck["ref_url"],
        format!("{artifacts}/abicheck/bash.log")
    );
    assert_eq!(
        abicheck["data"],
        json!({"item": [nvr], "type": ["koji_build"], "arch": ["x86_64", "i686"],
               "abi_changes": ["2"]}),
        "{abicheck}"
    );
    let upgradepath = &r[2];
    assert_eq!(upgradepath["outcome"], "INFO", "upper-cased as upstream");
    // Python's str(None), as upstream stores a null.
    assert_eq!(upgradepath["data"]["scenario"], json!(["None"]));
    assert_eq!(got["rerun"][0]["groups"], json!([format!("{job}-rerun")]));

    // resultsdb_conventions: its testcase object sets the URL, `source`
    // makes a `source.taskotron` group, and `meta.conventions` is data.
    let conv = &got["conventions"];
    assert_eq!(conv["outcome"], "PASSED");
    assert_eq!(conv["note"], "all deps resolved");
    assert_eq!(
        conv["testcase"]["ref_url"],
        "https://docs.example/rpmdeplint"
    );
    assert_eq!(
        set(&conv["groups"]),
        [job, SOURCE_TASKOTRON].map(String::from).into()
    );
    assert_eq!(conv["data"]["meta.conventions"], json!(["result"]));
    assert_eq!(conv["data"]["source"], json!(["taskotron"]));
    assert_eq!(conv["data"]["item"], json!([nvr]));

    // A key with a colon is refused in upstream's words, which the
    // client shows.
    let colon = got["colon"].as_str().unwrap_or("");
    assert!(
        colon.starts_with("Colon not allowed in key name: ['bad:key']")
            && colon.ends_with("(HTTP 400)"),
        "{colon}"
    );

    // Reads through the client.
    assert_eq!(got["testcase"]["ref_url"], placeholder("dist.abicheck"));
    let g = &got["group"];
    assert_eq!(g["uuid"], job);
    assert_eq!(
        g["ref_url"],
        format!("https://taskotron.example/execdb/jobs/{job}")
    );
    assert_eq!(g["description"], Value::Null);
    assert_eq!(g["results_count"], 4, "{g}");
    assert_eq!(g["href"], format!("{}/groups/{job}", srv.api()));
    assert_eq!(g["results"], format!("{}/results?groups={job}", srv.api()));
    let listed = &got["listed"];
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(5), "{listed}");
    assert_eq!(
        (&listed["prev"], &listed["next"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(
        listed["data"][0]["testcase"]["name"], "dist.rpmdeplint",
        "newest first"
    );
    let src = &got["source_groups"]["data"];
    assert_eq!(src.as_array().map(Vec::len), Some(1), "{src}");
    assert_eq!(src[0]["uuid"], SOURCE_TASKOTRON);
    assert_eq!(src[0]["description"], "source.taskotron");
    assert_eq!(src[0]["results_count"], 1);
    let names: Vec<String> = got["testcases_like"]["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        names,
        [
            "dist.abicheck",
            "dist.rpmdeplint",
            "dist.rpmlint",
            "dist.upgradepath"
        ],
        "by name, as upstream"
    );
    // And what a dashboard reads over plain HTTP.
    let in_job = srv.get(&format!("/groups/{job}/results"));
    assert_eq!(in_job["data"].as_array().map(Vec::len), Some(4));
    srv.stop();
}

/// openQA's reports of a Bodhi update (`FedoraBodhiResult` with
/// `source="openqa"`): three groups per result named by uuid5s, found by
/// description (exact and `like`), updated through the client.
fn a_bodhi_reporter_with_groups_writes_and_reads_as_with_upstream(backend: Backend) {
    let srv = Server::start("bodhi", backend);
    let out = pyclients::run(
        "resultsdb-clients/bodhi_report.py",
        &[&srv.api(), &srv.token],
    );
    let got: Value = serde_json::from_str(out.trim()).expect("the script's JSON");
    let alias = "FEDORA-2026-4f1e2d3c4b";
    assert_eq!(got["bodhi_uuid"], BODHI_UPDATE, "the library's uuid5");
    let all_groups: BTreeSet<String> = [SOURCE_OPENQA, BODHI_UPDATE, OPENQA_UPDATE]
        .map(String::from)
        .into();
    for r in got["reported"].as_array().expect("reported") {
        assert_eq!(set(&r["groups"]), all_groups, "{r}");
        assert_eq!(r["data"]["item"], json!([alias]));
        assert_eq!(r["data"]["type"], json!(["bodhi_update"]));
        assert_eq!(
            r["data"]["meta.conventions"],
            json!(["result fedora.bodhi"])
        );
        assert_eq!(r["data"]["source"], json!(["openqa"]));
        assert_eq!(r["data"]["firmware"], json!(["bios"]));
    }
    let first = &got["reported"][0];
    assert_eq!(first["note"], "", "an empty note stays empty, as upstream");
    assert_eq!(
        first["testcase"]["ref_url"],
        "https://fedoraproject.org/wiki/QA:Testcase_install_default_update_netinst"
    );
    let bodhi = &got["bodhi_group"];
    assert_eq!(bodhi["description"], format!("bodhi.{alias}"));
    assert_eq!(
        bodhi["ref_url"],
        format!("https://bodhi.fedoraproject.org/updates/{alias}")
    );
    assert_eq!(bodhi["results_count"], 3);
    let descs = |v: &Value| -> BTreeSet<String> {
        v["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|g| g["description"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        descs(&got["by_description"]),
        [format!("bodhi.{alias}")].into()
    );
    assert_eq!(
        descs(&got["by_description_like"]),
        [format!("bodhi.{alias}"), format!("openqa.{alias}")].into()
    );
    assert_eq!(
        got["group_results"]["data"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(
        got["update_results"]["data"].as_array().map(Vec::len),
        Some(3)
    );
    // POST /groups of an existing uuid updates it (201, as upstream); what
    // was not sent stays.
    let after = &got["after_update"];
    assert_eq!(
        got["updated"]["description"],
        format!("bodhi update {alias}")
    );
    assert_eq!(after["description"], format!("bodhi update {alias}"));
    assert_eq!(
        after["ref_url"],
        format!("https://bodhi.fedoraproject.org/updates/{alias}")
    );
    assert_eq!(after["results_count"], 3);
    assert_eq!(
        got["blank_update"]["ref_url"],
        format!("https://bodhi.fedoraproject.org/updates/{alias}"),
        "an empty ref_url leaves the group's"
    );
    // Its results by group, and a group that does not exist (upstream's 404).
    let r = http()
        .get(format!("{}/groups/no-such-group/results", srv.api()))
        .send()
        .expect("GET");
    assert_eq!(r.status().as_u16(), 404);
    let body: Value = r.json().expect("JSON");
    assert_eq!(body["message"], "Group not found: no-such-group", "{body}");
    assert_eq!(
        got["testcase_updated"]["ref_url"],
        "https://docs.example/desktop_browser"
    );
    // The update's newest result per testcase: the browser test passed
    // when run again.
    let latest = srv.get(&format!("/results/latest?item={alias}&type=bodhi_update"));
    let mut picked: Vec<(String, String)> = latest["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| {
            (
                r["testcase"]["name"].as_str().unwrap_or("").to_string(),
                r["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    picked.sort();
    assert_eq!(
        picked,
        [
            ("update.desktop_browser".to_string(), "PASSED".to_string()),
            (
                "update.install_default_update_netinst".to_string(),
                "PASSED".to_string()
            ),
        ]
    );
    srv.stop();
}

/// (testcase, outcome, scenario, arch, variant) of each of Greenwave's
/// answers, `-` for a key the result lacks.
fn answers(got: &Value) -> Vec<(String, String, String, String, String)> {
    got["answers"]
        .as_array()
        .unwrap_or_else(|| panic!("answers: {got}"))
        .iter()
        .map(|a| {
            let f = |k: &str| a[k].as_str().unwrap_or("-").to_string();
            (
                f("testcase"),
                f("outcome"),
                f("scenario"),
                f("system_architecture"),
                f("system_variant"),
            )
        })
        .collect()
}

fn answer(
    tc: &str,
    outcome: &str,
    scenario: &str,
    arch: &str,
    variant: &str,
) -> (String, String, String, String, String) {
    (
        tc.into(),
        outcome.into(),
        scenario.into(),
        arch.into(),
        variant.into(),
    )
}

/// Greenwave's decision query, as its source sends it: per testcase and
/// per (scenario, system_architecture, system_variant) the newest result
/// up to `when`, from both of a koji_build's subject queries.
fn greenwaves_query_keeps_a_failed_scenario_behind_a_newer_pass(backend: Backend) {
    let srv = Server::start("greenwave", backend);
    let nvr = "gate-1.0-1.fc42";
    let ids = pyclients::run(
        "resultsdb-clients/greenwave.py",
        &["write", &srv.api(), &srv.token, nvr],
    );
    let ids: Value = serde_json::from_str(ids.trim()).expect("ids");
    assert_eq!(ids.as_array().map(Vec::len), Some(10), "{ids}");
    const TC: &str = "update.install_default_update_netinst";
    const BOOT: &str = "fedora.updates-everything-boot-iso.x86_64.64bit";
    const SERVER: &str = "fedora.updates-server.x86_64.64bit";
    let api = srv.api();
    let decide = |when: &str, testcase: Option<&str>| -> Value {
        let mut args = vec!["query", api.as_str(), nvr, when];
        args.extend(testcase);
        let out = pyclients::run("resultsdb-clients/greenwave.py", &args);
        serde_json::from_str(out.trim()).expect("the script's JSON")
    };

    let got = decide("2026-11-02T00:00:00.000000", None);
    assert_eq!(
        answers(&got),
        [
            // First query (item, type=koji_build,brew-build), newest first:
            answer(TC, "PASSED", BOOT, "aarch64", "Everything"),
            // The server scenario's pass supersedes its older failure...
            answer(TC, "PASSED", SERVER, "x86_64", "Server"),
            // ...but not the boot-iso failure, which is older than it.
            answer(TC, "FAILED", BOOT, "x86_64", "Everything"),
            answer(TC, "PASSED", "-", "x86_64", "-"),
            answer("dist.rpmdeplint", "FAILED", "-", "-", "-"),
            // Second query (original_spec_nvr).
            answer(
                "fedora-ci.koji-build./plans/basic.functional",
                "PASSED",
                "-",
                "-",
                "-"
            ),
        ],
        "{got}"
    );
    assert_eq!(got["match_time"], true, "{got}");
    // `_distinct_on` alone: 400 and upstream's words.
    assert_eq!(
        got["alone"],
        json!({"status": 400,
               "message": "Please, provide at least one filter beside '_distinct_on'"})
    );

    // A later decision, for one testcase (Greenwave's external-cache
    // query): the boot-iso pass of 3 November now counts.
    let later = decide("2026-11-04T00:00:00.000000", Some(TC));
    assert_eq!(
        answers(&later),
        [
            answer(TC, "PASSED", BOOT, "x86_64", "Everything"),
            answer(TC, "PASSED", BOOT, "aarch64", "Everything"),
            answer(TC, "PASSED", SERVER, "x86_64", "Server"),
            answer(TC, "PASSED", "-", "x86_64", "-"),
        ],
        "{later}"
    );
    // A subject with an empty item is no "any item": upstream matches
    // empty values only, so a gate asked about nothing sees nothing.
    let empty = srv.get(
        "/results/latest?item=&type=koji_build&_distinct_on=scenario,system_architecture,system_variant",
    );
    assert_eq!(empty["data"], json!([]), "{empty}");
    // Without `_distinct_on` (older consumers): one result per testcase.
    let plain = srv.get(&format!(
        "/results/latest?item={nvr}&type=koji_build&since=1900-01-01T00:00:00.000000,2026-11-02T00:00:00.000000"
    ));
    let outcomes: Vec<(String, String)> = plain["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| {
            (
                r["testcase"]["name"].as_str().unwrap_or("").to_string(),
                r["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [(TC.to_string(), "PASSED".to_string())],
        "{plain}"
    );
    srv.stop();
}
