//! The outbox of outgoing messages: what a write tells the message bus is
//! added in the write's own transaction, so a message exists exactly when
//! what it tells was committed; the publisher ([`crate::publish`]) sends
//! the rows after commit and deletes them once the broker confirmed them.
//! A row is claimed by one publisher at a time, for a while: a publisher
//! that dies leaves its claim to lapse and another sends the row, so each
//! message goes out at least once (consumers deduplicate on `message_id`).
//!
//! What is written, when the store has an outbox ([`Store::with_outbox`]):
//! - every stored result: `resultsdb.result.new`;
//! - a stored result whose outcome differs from the previous result of
//!   the same testcase and `item`/`type`/`arch` (ResultsDB's rule):
//!   `taskotron.result.new`, with that previous outcome;
//! - every state a job reaches (created `queued` included):
//!   `ferrotron.job.<state>`;
//! - a reservation or hold whose VM is up (`ferrotron.reservation.ready`,
//!   with how to reach it) and one that ended (`ferrotron.reservation.ended`,
//!   with why).
//!
//! A result's messages keep only its id and what is known at insert time
//! (the previous outcome); the publisher renders the result as the API
//! serves it when it sends them.

use serde_json::{json, Value};

use super::jobs::TransitionRow;
use super::query::Binder;
use super::{bind_all, row_get, Backend, Store, StoreError, WriteTx};
use crate::job::JobState;

/// The kinds of message in the outbox, by topic (before the configured
/// prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// `resultsdb.result.new`: the result as `/api/v2.0/results/<id>`.
    ResultNew,
    /// `taskotron.result.new`: the outcome changed.
    TaskotronResultNew,
    /// `ferrotron.job.<state>`.
    JobState(String),
    /// `ferrotron.reservation.<event>` (`ready`, `ended`).
    Reservation(String),
}

impl Topic {
    pub const RESULT_NEW: &'static str = "resultsdb.result.new";
    pub const TASKOTRON_RESULT_NEW: &'static str = "taskotron.result.new";
    pub const JOB_PREFIX: &'static str = "ferrotron.job.";
    pub const RESERVATION_PREFIX: &'static str = "ferrotron.reservation.";

    pub fn parse(topic: &str) -> Option<Topic> {
        match topic {
            Topic::RESULT_NEW => Some(Topic::ResultNew),
            Topic::TASKOTRON_RESULT_NEW => Some(Topic::TaskotronResultNew),
            t => {
                let after = |prefix: &str| {
                    t.strip_prefix(prefix)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                };
                after(Topic::JOB_PREFIX)
                    .map(Topic::JobState)
                    .or_else(|| after(Topic::RESERVATION_PREFIX).map(Topic::Reservation))
            }
        }
    }
}

/// One message waiting to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    /// The AMQP `message_id`, fixed when the row was written: a message
    /// sent twice (after a lost confirmation) keeps its id.
    pub message_id: String,
    /// Without the configured prefix.
    pub topic: String,
    pub body: Value,
    /// The result a result message is about.
    pub result_id: Option<i64>,
    /// Microseconds since the epoch (the `sent-at` header).
    pub created_at: i64,
    /// Claims so far, this one included.
    pub attempts: i64,
}

async fn insert(
    tx: &mut WriteTx,
    topic: &str,
    body: &Value,
    result_id: Option<i64>,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox (message_id, topic, body, result_id, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(topic.to_string())
    .bind(body.to_string())
    .bind(result_id)
    .bind(at)
    .execute(&mut *tx.tx)
    .await?;
    tx.wrote_outbox = true;
    Ok(())
}

/// The `ferrotron.job.<state>` message of a job's move (none without an
/// outbox): the job as it is after the move.
pub(super) async fn job_moved(
    tx: &mut WriteTx,
    uuid: &str,
    from: Option<JobState>,
    t: &TransitionRow,
) -> Result<(), StoreError> {
    if !tx.publishing() {
        return Ok(());
    }
    let row = sqlx::query(
        "SELECT item, item_type, arch, formula, task, host, attempts, max_attempts, \
         exit_status, last_error, message_id FROM jobs WHERE uuid = $1",
    )
    .bind(uuid.to_string())
    .fetch_one(&mut *tx.tx)
    .await?;
    let task: Option<String> = row_get(&row, "task")?;
    let formula: String = row_get(&row, "formula")?;
    let body = json!({
        "job": {
            "uuid": uuid,
            "state": t.state.as_str(),
            "previous_state": from.map(|s| s.as_str()),
            "item": row_get::<String>(&row, "item")?,
            "type": row_get::<String>(&row, "item_type")?,
            "arch": row_get::<String>(&row, "arch")?,
            "task": task.unwrap_or(formula),
            "host": row_get::<Option<String>>(&row, "host")?,
            "attempts": row_get::<i64>(&row, "attempts")?,
            "max_attempts": row_get::<i64>(&row, "max_attempts")?,
            "exit_status": row_get::<Option<i64>>(&row, "exit_status")?,
            "last_error": row_get::<Option<String>>(&row, "last_error")?,
            "message_id": row_get::<Option<String>>(&row, "message_id")?,
        },
        "at": super::format_time(t.at),
    });
    let topic = format!("{}{}", Topic::JOB_PREFIX, t.state.as_str());
    insert(tx, &topic, &body, None, t.at).await
}

/// The `ferrotron.reservation.<event>` message of reservation `r` as it
/// is after this transaction's change (none without an outbox): who asked,
/// for which job, where its VM is and until when, and while it is up the
/// `known_hosts` line (to save as `ferrotron-<id>.known_hosts`) and the
/// `ssh -J` line that uses it.
pub(super) async fn reservation_moved(
    tx: &mut WriteTx,
    event: &str,
    r: &super::Reservation,
) -> Result<(), StoreError> {
    if !tx.publishing() {
        return Ok(());
    }
    let at = super::now_micros();
    let mut body = json!({
        "reservation": {
            "id": r.id,
            "kind": r.kind.as_str(),
            "status": r.status(),
            "job": r.job,
            "requester": r.requester,
            "host": r.host,
            "port": r.port,
            "host_key": r.host_key,
            "vm_name": r.vm_name,
            "expires_at": r.expires_at.map(super::format_time),
            "ended_at": r.ended_at.map(super::format_time),
            "end_reason": r.end_reason,
        },
        "at": super::format_time(at),
    });
    if let Some((host, port, key)) = r.forward() {
        body["reservation"]["known_hosts"] = super::known_hosts_line(port, key).into();
        body["reservation"]["ssh_jump_command"] = super::jump_command(&r.id, host, port).into();
    }
    let topic = format!("{}{event}", Topic::RESERVATION_PREFIX);
    insert(tx, &topic, &body, None, at).await
}

/// The messages of result `id`, just inserted in this transaction (none
/// without an outbox).
pub(super) async fn result_stored(
    tx: &mut WriteTx,
    id: i64,
    testcase_id: i64,
    outcome: &str,
    data: &[(String, String)],
    at: i64,
) -> Result<(), StoreError> {
    if !tx.publishing() {
        return Ok(());
    }
    insert(tx, Topic::RESULT_NEW, &json!({}), Some(id), at).await?;
    // The previous result of the same testcase and the same values of
    // those of `item`, `type` and `arch` this result has; among results
    // stored together (one job's), the earlier ids come first.
    let mut b = Binder::default();
    let mut sql = format!(
        "SELECT r.outcome FROM results r WHERE r.testcase_id = {} AND r.id < {}",
        b.int(testcase_id),
        b.int(id)
    );
    for key in ["item", "type", "arch"] {
        if let Some((_, v)) = data.iter().find(|(k, _)| k == key) {
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM result_data d WHERE d.result_id = r.id \
                 AND d.key = {} AND d.value = {})",
                b.text(key),
                b.text(v)
            ));
        }
    }
    sql.push_str(" ORDER BY r.submit_time DESC, r.id DESC LIMIT 1");
    let prev = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &b.params)
        .fetch_optional(&mut *tx.tx)
        .await?;
    let prev: Option<String> = prev.map(|r| row_get(&r, "outcome")).transpose()?;
    if prev.as_deref() == Some(outcome) {
        return Ok(());
    }
    let body = json!({ "prev_outcome": prev });
    insert(tx, Topic::TASKOTRON_RESULT_NEW, &body, Some(id), at).await
}

fn outbox_row(r: &sqlx::any::AnyRow) -> Result<OutboxRow, StoreError> {
    let id: i64 = row_get(r, "id")?;
    let body: String = row_get(r, "body")?;
    let body = serde_json::from_str(&body)
        .map_err(|e| StoreError::Corrupt(format!("outbox message {id}: body is not JSON: {e}")))?;
    Ok(OutboxRow {
        id,
        message_id: row_get(r, "message_id")?,
        topic: row_get(r, "topic")?,
        body,
        result_id: row_get(r, "result_id")?,
        created_at: row_get(r, "created_at")?,
        attempts: row_get(r, "attempts")?,
    })
}

impl Store {
    /// Claims up to `limit` unclaimed (or lapsed) messages, oldest first,
    /// until `until` (microseconds since the epoch).
    pub async fn outbox_claim(
        &self,
        limit: i64,
        now: i64,
        until: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        // Two publishers on PostgreSQL never claim the same rows.
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET claimed_until = $1, attempts = attempts + 1 WHERE id IN \
             (SELECT id FROM outbox WHERE claimed_until IS NULL OR claimed_until < $2 \
             ORDER BY id LIMIT $3{lock}) \
             RETURNING id, message_id, topic, body, result_id, created_at, attempts"
        );
        let mut tx = self.begin().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(until)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx.tx)
            .await?;
        tx.commit().await?;
        let mut out = rows.iter().map(outbox_row).collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    /// Deletes sent messages (`confirmed`) and gives the others back
    /// (`failed`: sent again at the next claim).
    pub async fn outbox_done(&self, confirmed: &[i64], failed: &[i64]) -> Result<(), StoreError> {
        if confirmed.is_empty() && failed.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for (ids, sql) in [
            (confirmed, "DELETE FROM outbox WHERE id IN"),
            (failed, "UPDATE outbox SET claimed_until = NULL WHERE id IN"),
        ] {
            for part in ids.chunks(500) {
                let mut b = Binder::default();
                let list: Vec<String> = part.iter().map(|i| b.int(*i)).collect();
                let sql = format!("{sql} ({})", list.join(", "));
                bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &b.params)
                    .execute(&mut *tx.tx)
                    .await?;
            }
        }
        tx.commit().await
    }

    /// Messages not yet confirmed by the broker.
    pub async fn outbox_pending(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox")
            .fetch_one(&self.pool)
            .await?;
        row_get(&row, "n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Actor, Move};
    use crate::store::{NewResult, Testcase};

    async fn store(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
        Store::open(&url).await.expect("open").with_outbox()
    }

    use crate::store::queue::tests::{pg_drop, pg_store};

    fn result(name: &str, outcome: &str, item: &str, at: i64) -> NewResult {
        NewResult {
            testcase: Testcase {
                name: name.into(),
                ref_url: None,
            },
            outcome: outcome.into(),
            note: None,
            ref_url: None,
            submit_time: at,
            groups: vec![],
            data: vec![
                ("item".into(), item.into()),
                ("type".into(), "koji_build".into()),
            ],
        }
    }

    fn topics(rows: &[OutboxRow]) -> Vec<(String, Value)> {
        rows.iter()
            .map(|r| (r.topic.clone(), r.body.clone()))
            .collect()
    }

    /// ResultsDB's rule: `taskotron.result.new` only when the outcome
    /// differs from the previous one of the same testcase and item (with
    /// that previous outcome); `resultsdb.result.new` always.
    #[tokio::test]
    async fn result_messages_follow_outcome_changes_sqlite() {
        let dir = tempfile::tempdir().expect("tempdir");
        result_messages_follow_outcome_changes(&store(&dir).await).await;
    }

    #[tokio::test]
    async fn result_messages_follow_outcome_changes_postgres() {
        let (s, name) = pg_store().await;
        let s = s.with_outbox();
        result_messages_follow_outcome_changes(&s).await;
        pg_drop(s, &name).await;
    }

    async fn result_messages_follow_outcome_changes(s: &Store) {
        let a = s
            .create_result(&result("dist.x", "PASSED", "a-1", 1))
            .await
            .expect("r");
        s.create_result(&result("dist.x", "PASSED", "a-1", 2))
            .await
            .expect("r");
        s.create_result(&result("dist.x", "PASSED", "b-1", 3))
            .await
            .expect("r");
        s.create_results_bulk(&[result("dist.x", "FAILED", "a-1", 4)])
            .await
            .expect("bulk");
        let rows = s.outbox_claim(100, 10, 20).await.expect("claim");
        let t: Vec<_> = topics(&rows);
        let rn = || (Topic::RESULT_NEW.to_string(), json!({}));
        let tn = |p: Value| {
            (
                Topic::TASKOTRON_RESULT_NEW.to_string(),
                json!({"prev_outcome": p}),
            )
        };
        assert_eq!(
            t,
            [
                rn(),
                tn(Value::Null),
                rn(),
                rn(),
                tn(Value::Null),
                rn(),
                tn(json!("PASSED"))
            ]
        );
        assert_eq!(rows[0].result_id, Some(a.id));
        // Claimed: not claimed again until the claim lapses.
        assert!(s.outbox_claim(100, 10, 20).await.expect("again").is_empty());
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        s.outbox_done(&ids[..3], &ids[3..]).await.expect("done");
        assert_eq!(s.outbox_pending().await.expect("pending"), 4);
        let again = s.outbox_claim(100, 10, 20).await.expect("given back");
        assert_eq!(again.iter().map(|r| r.id).collect::<Vec<_>>(), ids[3..]);
        assert!(again.iter().all(|r| r.attempts == 2));
        // A lapsed claim is taken again, with the same message id.
        let lapsed = s.outbox_claim(100, 30, 40).await.expect("lapsed");
        assert_eq!(lapsed[0].message_id, again[0].message_id);
    }

    /// Every state a job reaches has its message, the first (`queued`)
    /// included; a store without an outbox writes none.
    #[tokio::test]
    async fn job_moves_have_messages_and_no_outbox_writes_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let job = crate::store::lifecycle::tests::job();
        let s = store(&dir).await;
        let uuid = s
            .enqueue("m1", "t", std::slice::from_ref(&job))
            .await
            .expect("enqueue")
            .jobs[0]
            .clone();
        s.claim_next("w1", 60_000_000)
            .await
            .expect("claim")
            .expect("job");
        s.transition(&uuid, &Move::new(JobState::Cancelled, Actor::Operator))
            .await
            .expect("cancel");
        let rows = s.outbox_claim(100, 0, 1).await.expect("claim");
        let t: Vec<_> = rows.iter().map(|r| r.topic.as_str()).collect();
        assert_eq!(
            t,
            [
                "ferrotron.job.queued",
                "ferrotron.job.scheduled",
                "ferrotron.job.cancelled"
            ]
        );
        let last = &rows[2].body["job"];
        assert_eq!(last["uuid"], uuid.as_str());
        assert_eq!(last["previous_state"], "scheduled");
        assert_eq!(last["host"], "w1");
        assert_eq!(rows[0].body["job"]["previous_state"], Value::Null);
        assert_eq!(last["task"], "hello");
        assert_eq!(
            Topic::parse(&rows[2].topic),
            Some(Topic::JobState("cancelled".into()))
        );

        let quiet = Store::open(&format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("q.db").display()
        ))
        .await
        .expect("open");
        quiet.enqueue("m1", "t", &[job]).await.expect("enqueue");
        quiet
            .create_result(&result("dist.x", "PASSED", "a-1", 1))
            .await
            .expect("r");
        assert_eq!(quiet.outbox_pending().await.expect("pending"), 0);
    }
}
