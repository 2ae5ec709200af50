//! Result and artifact queries that take more than one store call, and
//! synthetic results for benchmarks. Single reads (a result, a testcase, a
//! page of results) the API makes through [`App::store`].

use super::App;
use crate::store::{Artifact, Page, ResultFilter, ResultRow, StoreError};

impl App {
    /// A page of one group's results (`filter.groups` is set to it);
    /// `NotFound` when there is no such group.
    pub async fn group_results(
        &self,
        uuid: &str,
        mut filter: ResultFilter,
        page: Page,
    ) -> Result<(Vec<ResultRow>, bool), StoreError> {
        if self.store.get_group(uuid).await?.is_none() {
            return Err(StoreError::NotFound {
                what: "group",
                name: uuid.to_string(),
            });
        }
        filter.groups = vec![uuid.to_string()];
        self.store.list_results(&filter, page).await
    }

    /// A job's artifacts; `NotFound` when there is no such job.
    pub async fn job_artifacts(&self, uuid: &str) -> Result<Vec<Artifact>, StoreError> {
        self.job(uuid).await?;
        self.store.list_artifacts(uuid).await
    }

    /// Records an uploaded artifact of a job; its `content` (the start of
    /// it, for a large file) is indexed for search when it is a log or
    /// task output.
    pub async fn add_artifact(
        &self,
        uuid: &str,
        a: &Artifact,
        content: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        self.store.put_artifact(uuid, a, content).await
    }

    /// Inserts `n` synthetic results (benchmarks): 10 testcases, 1000 items,
    /// one group per 100 results, data `item`, `type`, `arch`.
    pub async fn seed_results(&self, n: usize) -> Result<(), StoreError> {
        use crate::store::{NewGroup, NewResult, Testcase};
        let start = crate::store::now_micros() - i64::try_from(n).unwrap_or(0) * 1_000_000;
        let outcomes = ["PASSED", "FAILED", "INFO", "NEEDS_INSPECTION"];
        let batch: Vec<NewResult> = (0..n)
            .map(|i| NewResult {
                testcase: Testcase {
                    name: format!("dist.check{}", i % 10),
                    ref_url: None,
                },
                outcome: outcomes[i % outcomes.len()].to_string(),
                note: Some(format!("synthetic result {i}")),
                ref_url: None,
                submit_time: start + i64::try_from(i).unwrap_or(0) * 1_000_000,
                groups: vec![NewGroup {
                    uuid: format!("seed-group-{}", i / 100),
                    description: None,
                    ref_url: None,
                }],
                data: vec![
                    ("item".into(), format!("pkg{}-1.0-1.fc40", i % 1000)),
                    ("type".into(), "koji_build".into()),
                    ("arch".into(), "x86_64".into()),
                ],
            })
            .collect();
        self.store.create_results_bulk(&batch).await
    }
}
