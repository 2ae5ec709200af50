//! `ferrotron results import URL`: copies an existing ResultsDB v2.0 (its
//! HTTP API) into this installation's store, so that a site keeps its
//! history when it moves over: testcases (with their `ref_url`), groups
//! (with description and `ref_url`), and results with their data, notes,
//! `ref_url`s and submit times, oldest first.
//!
//! Resumable and idempotent: results are read `_sort=asc:submit_time` and
//! each page is stored in one transaction together with a cursor (a host
//! flag `results-import:<url>`: the last submit time and the source ids
//! stored at that time). A run starts from the cursor (`since=` it, those
//! ids skipped), so an interrupted import goes on where it stopped and a
//! second run over an unchanged source stores nothing. Messages are not
//! published for imported results (the CLI's store has no outbox).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use reqwest::{Client, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::App;
use crate::store::{NewGroup, NewResult, StoreError, Testcase};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("`{0}` is not an http(s) URL of a ResultsDB (http://host/api/v2.0)")]
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
    #[error("{url}: not a ResultsDB v2.0 answer: {why}")]
    Shape { url: String, why: String },
    #[error("the import's cursor {0} is unreadable; remove it to start over")]
    Cursor(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Imported {
    pub results: usize,
    pub pages: usize,
    /// Groups read from the source (for their descriptions).
    pub groups: usize,
}

/// Where an import stands, kept with each stored page.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    /// The source's `submit_time` of the last stored result.
    submit_time: Option<String>,
    /// Source ids stored with that submit time (skipped when read again).
    ids: BTreeSet<i64>,
}

#[derive(Deserialize)]
struct Page {
    data: Vec<SourceResult>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct SourceTestcase {
    name: String,
    ref_url: Option<String>,
}

#[derive(Deserialize)]
struct SourceResult {
    id: i64,
    testcase: SourceTestcase,
    outcome: String,
    note: Option<String>,
    ref_url: Option<String>,
    submit_time: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    data: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct SourceGroup {
    uuid: String,
    description: Option<String>,
    ref_url: Option<String>,
}

/// The API root of `url`: `http://host` and `http://host/api/v2.0` both
/// name it.
fn api_root(url: &str) -> Result<String, ImportError> {
    let u = url.trim().trim_end_matches('/');
    if !(u.starts_with("http://") || u.starts_with("https://")) {
        return Err(ImportError::BadUrl(crate::util::redact_url(url)));
    }
    Ok(if u.ends_with("/api/v2.0") {
        u.to_string()
    } else {
        format!("{u}/api/v2.0")
    })
}

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &Client,
    url: &str,
) -> Result<T, ImportError> {
    let shown = crate::util::redact_url(url);
    let http = |source| ImportError::Http {
        url: shown.clone(),
        source,
    };
    let r = client.get(url).send().await.map_err(http)?;
    let status = r.status();
    let text = r.text().await.map_err(http)?;
    if !status.is_success() {
        return Err(ImportError::Refused {
            url: shown,
            status,
            body: text.chars().take(300).collect(),
        });
    }
    serde_json::from_str(&text).map_err(|e| ImportError::Shape {
        url: shown,
        why: e.to_string(),
    })
}

/// A data value as ResultsDB serves it (a list of strings, or one value)
/// as the key/value pairs the store keeps.
fn data_pairs(data: &BTreeMap<String, Value>) -> Vec<(String, String)> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = Vec::new();
    for (k, v) in data {
        match v {
            Value::Array(list) => out.extend(list.iter().map(|x| (k.clone(), text(x)))),
            one => out.push((k.clone(), text(one))),
        }
    }
    out
}

impl App {
    /// Copies the results of the ResultsDB at `url` that are not here yet
    /// (see the module's documentation); `progress` gets a line per page.
    pub async fn import_results(
        &self,
        url: &str,
        page_size: u32,
        progress: &dyn Fn(&str),
    ) -> Result<Imported, ImportError> {
        let root = api_root(url)?;
        let flag = format!("results-import:{}", crate::util::redact_url(&root));
        let mut cursor: Cursor = match self.store.get_flag(&flag).await? {
            Some(text) => {
                serde_json::from_str(&text).map_err(|_| ImportError::Cursor(flag.clone()))?
            }
            None => Cursor::default(),
        };
        let client = Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|source| ImportError::Http {
                url: root.clone(),
                source,
            })?;
        let mut groups: HashMap<String, NewGroup> = HashMap::new();
        let mut done = Imported::default();
        let limit = page_size.clamp(1, 400);
        // Fixed for the run: pages are counted from it.
        let since = cursor.submit_time.clone();
        let mut page = 0u64;
        loop {
            let mut q = format!("{root}/results?_sort=asc:submit_time&limit={limit}&page={page}");
            if let Some(t) = &since {
                q.push_str(&format!("&since={}", crate::util::url_segment(t)));
            }
            let answer: Page = get_json(&client, &q).await?;
            let mut batch = Vec::new();
            let mut last: Option<(String, i64)> = None;
            for r in &answer.data {
                let same_time = cursor.submit_time.as_deref() == Some(r.submit_time.as_str());
                if same_time && cursor.ids.contains(&r.id) {
                    continue;
                }
                let submit =
                    crate::store::parse_time(&r.submit_time).ok_or_else(|| ImportError::Shape {
                        url: crate::util::redact_url(&q),
                        why: format!("result {}: submit_time `{}`", r.id, r.submit_time),
                    })?;
                let mut gs = Vec::with_capacity(r.groups.len());
                for uuid in &r.groups {
                    if !groups.contains_key(uuid) {
                        let g: SourceGroup = get_json(
                            &client,
                            &format!("{root}/groups/{}", crate::util::url_segment(uuid)),
                        )
                        .await?;
                        done.groups += 1;
                        groups.insert(
                            uuid.clone(),
                            NewGroup {
                                uuid: g.uuid,
                                description: g.description,
                                ref_url: g.ref_url,
                            },
                        );
                    }
                    if let Some(g) = groups.get(uuid) {
                        gs.push(g.clone());
                    }
                }
                batch.push(NewResult {
                    testcase: Testcase {
                        name: r.testcase.name.clone(),
                        ref_url: r.testcase.ref_url.clone(),
                    },
                    outcome: r.outcome.clone(),
                    note: r.note.clone(),
                    ref_url: r.ref_url.clone(),
                    submit_time: submit,
                    groups: gs,
                    data: data_pairs(&r.data),
                });
                last = Some((r.submit_time.clone(), r.id));
                if cursor.submit_time.as_deref() != Some(r.submit_time.as_str()) {
                    cursor.submit_time = Some(r.submit_time.clone());
                    cursor.ids.clear();
                }
                cursor.ids.insert(r.id);
            }
            if !batch.is_empty() {
                let value = serde_json::to_string(&cursor).unwrap_or_default();
                self.store
                    .import_results_page(&batch, (&flag, &value))
                    .await?;
                done.results += batch.len();
            }
            done.pages += 1;
            progress(&format!(
                "page {}: {} new result(s), {} in all{}",
                done.pages,
                batch.len(),
                done.results,
                last.map(|(t, _)| format!(", up to {t}"))
                    .unwrap_or_default()
            ));
            if answer.data.is_empty() || answer.next.is_none() {
                break;
            }
            page += 1;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_and_values() {
        assert_eq!(api_root("http://h:1/").expect("ok"), "http://h:1/api/v2.0");
        assert_eq!(
            api_root("https://h/api/v2.0").expect("ok"),
            "https://h/api/v2.0"
        );
        assert!(matches!(api_root("ftp://h"), Err(ImportError::BadUrl(_))));
        let mut d = BTreeMap::new();
        d.insert("arch".to_string(), serde_json::json!(["x86_64", "aarch64"]));
        d.insert("n".to_string(), serde_json::json!(3));
        assert_eq!(
            data_pairs(&d),
            [
                ("arch".to_string(), "x86_64".to_string()),
                ("arch".to_string(), "aarch64".to_string()),
                ("n".to_string(), "3".to_string())
            ]
        );
    }
}
