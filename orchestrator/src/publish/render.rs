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
        Some(Topic::JobState(_)) => Ok(linked(row.body.clone(), "job", "uuid", base, "jobs")),
        Some(Topic::Reservation(_)) => Ok(linked(
            row.body.clone(),
            "reservation",
            "id",
            base,
            "reservations",
        )),
        None => Ok(row.body.clone()),
    }
}

/// `body` with `href` (`<base>/api/v1/<path>/<id>`) added to its object
/// `key`, the id read from that object's field `id_field`.
fn linked(mut body: Value, key: &str, id_field: &str, base: &str, path: &str) -> Value {
    if let Some(obj) = body.get_mut(key).and_then(Value::as_object_mut) {
        let id = obj
            .get(id_field)
            .and_then(Value::as_str)
            .unwrap_or_default();
        let href = format!("{base}/api/v1/{path}/{id}");
        obj.insert("href".into(), href.into());
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
    fn reservation_body_gets_its_link() {
        let b = body(
            &row(
                "ferrotron.reservation.ended",
                json!({"reservation": {"id": "r1", "status": "ended"}}),
            ),
            None,
            "http://h:1",
        )
        .expect("body");
        assert_eq!(
            b["reservation"]["href"],
            "http://h:1/api/v1/reservations/r1"
        );
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
