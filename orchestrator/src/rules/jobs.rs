//! What the rules make of a message: job requests, the plain serde records
//! the queue stores, and the evaluation `ferrotron rules test` shows.

use serde::{Deserialize, Serialize};

use super::extract::Extracted;

/// One job a message asks for: what the queue stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRequest {
    /// The message's id (for deduplication of redeliveries), if it had one.
    pub message_id: Option<String>,
    pub topic: String,
    pub item: String,
    pub item_type: String,
    pub arch: String,
    /// The task's name.
    pub task: String,
    /// Git repository holding the task (URL or absolute local path).
    pub repo: String,
    /// Git ref (branch, tag or commit) to check out.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Folder of the task's `runtask.yml` inside the repository (`.` for the root).
    pub path: String,
    /// Higher runs first.
    pub priority: i32,
    /// Base image; `None` for the formula's own.
    pub image: Option<String>,
    /// Seconds the whole job may take; `None` for the service's default.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Keep the VM if the job fails (the rule's `hold_on_failure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<HoldRequest>,
    /// Index (0-based) of the rule that asked for it.
    pub rule: usize,
}

/// A rule's `hold_on_failure`, for one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRequest {
    /// How long the VM is kept once the job failed.
    pub secs: u64,
    /// Who gets root in it.
    pub ssh_key: String,
    /// Whose limit it counts against.
    pub requester: String,
    /// At most this many VMs held at once for this requester by this rule.
    pub count: u32,
}

/// A task a matching rule named that could not become a job, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub rule: usize,
    pub task: String,
    pub reason: String,
}

/// What the rules made of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    pub message_id: Option<String>,
    pub topic: String,
    #[serde(flatten)]
    pub extracted: Extracted,
    /// Indexes (0-based) of the rules whose `when` held.
    pub matched_rules: Vec<usize>,
    /// The jobs, in rule order, without duplicates.
    pub jobs: Vec<JobRequest>,
    pub skipped: Vec<Skipped>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON shape the queue and `rules test --json` share.
    #[test]
    fn job_request_json_round_trips() {
        let j = JobRequest {
            message_id: Some("m".into()),
            topic: "t".into(),
            item: "$(x)".into(),
            item_type: "koji_build".into(),
            arch: "x86_64".into(),
            task: "hello".into(),
            repo: "/r".into(),
            git_ref: "HEAD".into(),
            path: "hello".into(),
            priority: -1,
            image: None,
            timeout: Some(600),
            hold: None,
            rule: 2,
        };
        let text = serde_json::to_string(&j).expect("serialize");
        assert_eq!(
            text,
            r#"{"message_id":"m","topic":"t","item":"$(x)","item_type":"koji_build","arch":"x86_64","task":"hello","repo":"/r","ref":"HEAD","path":"hello","priority":-1,"image":null,"timeout":600,"rule":2}"#
        );
        assert_eq!(serde_json::from_str::<JobRequest>(&text).expect("parse"), j);
    }
}
