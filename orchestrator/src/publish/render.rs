//! The bodies of outgoing messages, as their consumers read them:
//! `resultsdb.result.new` is the result as ResultsDB's API v2.0 serves it
//! (Greenwave and Bodhi read it so); `taskotron.result.new` has the shape
//! ResultsDB's Taskotron-compatible message has (`task` with `item`,
//! `type`, `name`; `result` with `id`, `submit_time`, `prev_outcome`,
//! `outcome`, `log_url`); `ferrotron.job.<state>` is the job after its move
//! with a link to it.

use serde_json::{json, Value};

use crate::store::{OutboxRow, ResultRow, Topic};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("outbox message {id} ({topic}): its result {result} is gone")]
    ResultGone { id: i64, topic: String, result: i64 },
}

/// The body of `row`; `result` is the result a result message names (read
/// by the caller), links are under `base`.
pub fn body(row: &OutboxRow, result: Option<ResultRow>, base: &str) -> Result<Value, RenderError> {
    let gone = || RenderError::ResultGone {
        id: row.id,
        topic: row.topic.clone(),
        result: row.result_id.unwrap_or_default(),
    };
    match Topic::parse(&row.topic) {
        Some(Topic::ResultNew) => Ok(crate::api::resultsdb::result_value(
            base,
            result.ok_or_else(gone)?,
        )),
        Some(Topic::TaskotronResultNew) => {
            let r = result.ok_or_else(gone)?;
            Ok(taskotron(&r, row.body.get("prev_outcome").cloned(), base))
        }
        Some(Topic::JobState(_)) => {
            let mut body = row.body.clone();
            if let Some(job) = body.get_mut("job").and_then(Value::as_object_mut) {
                let uuid = job.get("uuid").and_then(Value::as_str).unwrap_or_default();
                let href = format!("{base}/api/v1/jobs/{uuid}");
                job.insert("href".into(), href.into());
            }
            Ok(body)
        }
        Some(Topic::Reservation(_)) => Ok(reservation(row.body.clone(), base)),
        None => Ok(row.body.clone()),
    }
}

/// A reservation message with its link and, while its VM is up, how to
/// reach it: the `known_hosts` line to save as
/// `ferrotron-<id>.known_hosts` and the `ssh -J` line that uses it.
fn reservation(mut body: Value, base: &str) -> Value {
    let Some(r) = body.get_mut("reservation").and_then(Value::as_object_mut) else {
        return body;
    };
    let id = r
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    r.insert(
        "href".into(),
        format!("{base}/api/v1/reservations/{id}").into(),
    );
    let host = r.get("host").and_then(Value::as_str).map(str::to_string);
    let port = r
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok());
    let key = r
        .get("host_key")
        .and_then(Value::as_str)
        .map(str::to_string);
    let up = r.get("status").and_then(Value::as_str) == Some("ready");
    if let (true, Some(host), Some(port), Some(key)) = (up, host, port, key) {
        use crate::app::reservations::{jump_command, known_hosts_line};
        r.insert("known_hosts".into(), known_hosts_line(port, &key).into());
        r.insert(
            "ssh_jump_command".into(),
            jump_command(&id, &host, port).into(),
        );
    }
    body
}

/// ResultsDB's `taskotron.result.new` body: `item` and `type` from the
/// result's data (the first value of each), the testcase as the task's
/// name, the submit time as `2024-01-01 10:00:00 UTC`.
fn taskotron(r: &ResultRow, prev_outcome: Option<Value>, base: &str) -> Value {
    let mut task = serde_json::Map::new();
    for key in ["item", "type"] {
        if let Some(v) = r.data.get(key).and_then(|v| v.first()) {
            task.insert(key.into(), v.clone().into());
        }
    }
    task.insert("name".into(), r.testcase.name.clone().into());
    let submit = crate::store::format_time(r.submit_time);
    let submit = submit
        .split_once('.')
        .map_or(submit.as_str(), |(s, _)| s)
        .replace('T', " ");
    json!({
        "task": task,
        "result": {
            "id": r.id,
            "submit_time": format!("{submit} UTC"),
            "prev_outcome": prev_outcome.unwrap_or(Value::Null),
            "outcome": r.outcome,
            "log_url": r.ref_url.as_deref().map(|u| absolute(u, base)),
        },
    })
}

/// A link stored relative to the server (a job's artifacts) made absolute.
fn absolute(url: &str, base: &str) -> String {
    if url.starts_with('/') {
        format!("{base}{url}")
    } else {
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Testcase;
    use std::collections::BTreeMap;

    fn row(topic: &str, body: Value) -> OutboxRow {
        OutboxRow {
            id: 7,
            message_id: "m".into(),
            topic: topic.into(),
            body,
            result_id: Some(3),
            created_at: 0,
            attempts: 1,
        }
    }

    fn result() -> ResultRow {
        let mut data = BTreeMap::new();
        data.insert("item".to_string(), vec!["hello-1.0-1.fc40".to_string()]);
        data.insert("type".to_string(), vec!["koji_build".to_string()]);
        data.insert("arch".to_string(), vec!["x86_64".to_string()]);
        ResultRow {
            id: 3,
            testcase: Testcase {
                name: "dist.rpmlint".into(),
                ref_url: None,
            },
            outcome: "FAILED".into(),
            note: None,
            ref_url: Some("/api/v1/jobs/j/artifacts".into()),
            submit_time: 1_700_000_000_123_456,
            groups: vec!["j".into()],
            data,
        }
    }

    #[test]
    fn taskotron_body_has_resultsdbs_shape() {
        let b = body(
            &row(
                Topic::TASKOTRON_RESULT_NEW,
                json!({"prev_outcome": "PASSED"}),
            ),
            Some(result()),
            "http://h:1",
        )
        .expect("body");
        assert_eq!(
            b,
            json!({
                "task": {"item": "hello-1.0-1.fc40", "type": "koji_build", "name": "dist.rpmlint"},
                "result": {"id": 3, "submit_time": "2023-11-14 22:13:20 UTC",
                           "prev_outcome": "PASSED", "outcome": "FAILED",
                           "log_url": "http://h:1/api/v1/jobs/j/artifacts"}
            })
        );
    }

    #[test]
    fn result_body_is_the_api_form_and_a_gone_result_is_an_error() {
        let b = body(
            &row(Topic::RESULT_NEW, json!({})),
            Some(result()),
            "http://h:1",
        )
        .expect("body");
        assert_eq!(b["href"], "http://h:1/api/v2.0/results/3");
        assert_eq!(b["testcase"]["name"], "dist.rpmlint");
        assert_eq!(b["data"]["item"], json!(["hello-1.0-1.fc40"]));
        let e = body(&row(Topic::RESULT_NEW, json!({})), None, "").expect_err("gone");
        assert_eq!(
            e.to_string(),
            "outbox message 7 (resultsdb.result.new): its result 3 is gone"
        );
    }

    #[test]
    fn a_ready_reservation_says_how_to_reach_it_and_an_ended_one_does_not() {
        let ready = json!({"reservation": {"id": "r1", "status": "ready", "host": "hv1",
                           "port": 40022, "host_key": "ssh-ed25519 AAAA"}});
        let b = body(
            &row("ferrotron.reservation.ready", ready),
            None,
            "http://h:1",
        )
        .expect("body");
        let r = &b["reservation"];
        assert_eq!(r["href"], "http://h:1/api/v1/reservations/r1");
        assert_eq!(r["known_hosts"], "[127.0.0.1]:40022 ssh-ed25519 AAAA");
        assert_eq!(
            r["ssh_jump_command"],
            "ssh -J hv1 -o StrictHostKeyChecking=yes \
             -o UserKnownHostsFile=ferrotron-r1.known_hosts -p 40022 root@127.0.0.1"
        );
        let ended = json!({"reservation": {"id": "r1", "status": "ended", "host": "hv1",
                           "port": 40022, "host_key": "ssh-ed25519 AAAA"}});
        let b = body(
            &row("ferrotron.reservation.ended", ended),
            None,
            "http://h:1",
        )
        .expect("body");
        assert_eq!(
            b["reservation"]["href"],
            "http://h:1/api/v1/reservations/r1"
        );
        assert!(b["reservation"].get("ssh_jump_command").is_none());
    }

    #[test]
    fn job_body_gets_its_link() {
        let b = body(
            &row(
                "ferrotron.job.running",
                json!({"job": {"uuid": "u1", "state": "running"}}),
            ),
            None,
            "http://h:1",
        )
        .expect("body");
        assert_eq!(b["job"]["href"], "http://h:1/api/v1/jobs/u1");
    }
}
