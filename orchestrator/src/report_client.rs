//! `ferrotron run --report URL`: records a finished job on a Ferrotron
//! server (or, for the results, any ResultsDB v2.0): the job record with its
//! transitions, its artifact files, then one result per check, grouped
//! under the job's UUID. The results are what the scheduler stores for a
//! job of its own ([`NewResult::of_job`]), posted to the ResultsDB API.

use std::path::PathBuf;

use reqwest::{Client, StatusCode, Url};
use serde_json::json;

use crate::runner::RunOutcome;
use crate::store::{JobRef, NewResult};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("`{0}` is not an http(s) URL")]
    BadUrl(String),
    #[error("cannot reach {url}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}: {body}")]
    Refused {
        url: String,
        status: StatusCode,
        body: String,
    },
    #[error("cannot read artifact {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a result cannot be posted as ResultsDB data")]
    Data(#[from] crate::results::DataError),
}

/// What the job was about (the runner's request, minus the formula body).
#[derive(Debug, Clone)]
pub struct JobInfo {
    pub item: String,
    pub item_type: String,
    pub arch: String,
    pub formula: String,
    pub exit_status: i32,
    /// The states the job went through (the runner's phase events).
    pub history: crate::job::History,
}

/// What was sent.
#[derive(Debug, Default)]
pub struct Reported {
    pub results: usize,
    pub artifacts: usize,
}

pub struct Reporter {
    client: Client,
    base: Url,
    token: Option<String>,
}

impl Reporter {
    pub fn new(base: &str, token: Option<String>) -> Result<Reporter, ReportError> {
        let base = Url::parse(base.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| ReportError::BadUrl(base.to_string()))?;
        let client = Client::builder()
            .user_agent(concat!("ferrotron/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ReportError::Http {
                url: base.to_string(),
                source,
            })?;
        Ok(Reporter {
            client,
            base,
            token,
        })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut u = self.base.clone();
        if let Ok(mut s) = u.path_segments_mut() {
            s.pop_if_empty();
            s.extend(segments);
        }
        u
    }

    async fn send(&self, req: reqwest::RequestBuilder, url: &Url) -> Result<(), ReportError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.map_err(|source| ReportError::Http {
            url: url.to_string(),
            source,
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        Err(ReportError::Refused {
            url: url.to_string(),
            status,
            body: body.chars().take(500).collect(),
        })
    }

    /// Records `outcome` on the server.
    pub async fn report(
        &self,
        info: &JobInfo,
        outcome: &RunOutcome,
    ) -> Result<Reported, ReportError> {
        let id = outcome.job_id.as_str();
        // Before anything is sent: a result that cannot be posted stops the
        // report rather than leaving half a job.
        let this = JobRef {
            uuid: id,
            what: &info.formula,
            item: &info.item,
            arch: &info.arch,
        };
        let results = NewResult::of_job(self.base(), this, &outcome.results, 0)?;
        let job_url = self.url(&["api", "v1", "jobs", id]);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok();
        let transitions: Vec<_> = info
            .history
            .transitions
            .iter()
            .map(|t| json!({"state": t.state, "at": t.at}))
            .collect();
        let body = json!({
            "state": info.history.state,
            "item": info.item,
            "type": info.item_type,
            "arch": info.arch,
            "formula": info.formula,
            "host": host,
            "exit_status": info.exit_status,
            "transitions": transitions,
        });
        self.send(self.client.put(job_url.clone()).json(&body), &job_url)
            .await?;

        let mut reported = Reported::default();
        for (rel, path) in crate::runner::published::files(&outcome.job_dir) {
            let mut segs = vec!["api", "v1", "jobs", id, "artifacts"];
            segs.extend(rel.split('/'));
            let url = self.url(&segs);
            let bytes = tokio::fs::read(&path)
                .await
                .map_err(|source| ReportError::Read { path, source })?;
            self.send(self.client.put(url.clone()).body(bytes), &url)
                .await?;
            reported.artifacts += 1;
        }

        reported.results = self.post_results(&results).await?;
        Ok(reported)
    }

    /// Posts `results` to the server's ResultsDB API, in order; how many.
    pub async fn post_results(&self, results: &[NewResult]) -> Result<usize, ReportError> {
        let results_url = self.url(&["api", "v2.0", "results"]);
        for r in results {
            self.send(
                self.client
                    .post(results_url.clone())
                    .json(&r.to_resultsdb_json()),
                &results_url,
            )
            .await?;
        }
        Ok(results.len())
    }

    /// The server's URL, as links in what is posted start.
    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }
}
