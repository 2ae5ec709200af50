//! Synthetic history for benchmarks (`ferrotron store seed --jobs N
//! --log-mb M`): finished jobs in bulk, each with a `runner.log` written
//! under the artifacts folder and stored through [`App::add_artifact`],
//! the path an uploaded log takes, so its lines are indexed for search as
//! a real job's are. The time that indexing takes is reported per MB.
//!
//! The logs are deterministic: lines of words drawn from a fixed
//! vocabulary with a skewed (Zipf-like) frequency, the way build logs
//! repeat a few words often and most rarely, plus two marker words a
//! benchmark searches for: [`COMMON_WORD`] in about one line in 20 and
//! [`RARE_WORD`] in about one in 10,000.

use std::path::PathBuf;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::App;
use crate::job::JobState;
use crate::store::{Artifact, SeedJob, StoreError};

/// In about one line in 20 of the seeded logs.
pub const COMMON_WORD: &str = "warning";
/// In about one line in 10,000 of the seeded logs.
pub const RARE_WORD: &str = "segfault";

/// Jobs per store batch.
const BATCH: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the seeded log {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a seed wrote and how long its parts took.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeedReport {
    pub jobs: usize,
    pub jobs_secs: f64,
    pub log_bytes: u64,
    pub log_lines: u64,
    /// Storing the logs' artifact records with their lines indexed (the
    /// files' writing not included).
    pub index_secs: f64,
    pub index_ms_per_mb: f64,
}

/// A small deterministic generator (xorshift64*): the same seed gives the
/// same history on every run and backend.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Skewed towards 0: word `k` about as often as 1/(k+1).
    fn skewed(&mut self, n: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (((n as f64 + 1.0).powf(u)) as u64)
            .saturating_sub(1)
            .min(n - 1)
    }
}

/// The vocabulary: syllables combined into 4,096 words.
fn vocabulary() -> Vec<String> {
    const SYL: [&str; 16] = [
        "ka", "lo", "mi", "ne", "su", "tra", "gen", "pol", "dex", "vi", "ron", "bu", "ash", "el",
        "qui", "zor",
    ];
    (0..4096)
        .map(|i| {
            format!(
                "{}{}{}",
                SYL[i % 16],
                SYL[(i / 16) % 16],
                SYL[(i / 256) % 16]
            )
        })
        .collect()
}

fn log_text(rng: &mut Rng, words: &[String], task: &str, bytes: usize) -> (String, u64) {
    let mut out = String::with_capacity(bytes + 200);
    let mut lines = 0u64;
    while out.len() < bytes {
        lines += 1;
        let level = if rng.below(20) == 0 {
            COMMON_WORD
        } else {
            "info"
        };
        out.push_str(&format!("[{level}] {task}: step {lines}:"));
        for _ in 0..(6 + rng.below(10)) {
            out.push(' ');
            out.push_str(&words[rng.skewed(words.len() as u64) as usize]);
        }
        if rng.below(10_000) == 0 {
            out.push(' ');
            out.push_str(RARE_WORD);
        }
        out.push('\n');
    }
    (out, lines)
}

impl App {
    /// Inserts `jobs` finished jobs spread over the last `jobs` minutes
    /// (40 tasks, 5,000 items, 8 hosts; one in ten failed, one in fifty
    /// in error) with `log_bytes` of runner.log between them.
    pub async fn seed_jobs(&self, jobs: usize, log_bytes: u64) -> Result<SeedReport, SeedError> {
        let now = crate::store::now_micros();
        let minute = 60_000_000i64;
        let start = now - i64::try_from(jobs).unwrap_or(i64::MAX / minute) * minute;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let all: Vec<SeedJob> = (0..jobs)
            .map(|i| {
                let created = start + i64::try_from(i).unwrap_or(0) * minute;
                let state = match rng.below(50) {
                    0 => JobState::Error,
                    1..=5 => JobState::Failed,
                    _ => JobState::Passed,
                };
                let wait = i64::try_from(rng.below(30_000_000)).unwrap_or(0);
                let boot = 8_000_000 + i64::try_from(rng.below(4_000_000)).unwrap_or(0);
                let run = 2_000_000 + i64::try_from(rng.below(40_000_000)).unwrap_or(0);
                SeedJob {
                    uuid: uuid::Uuid::from_u64_pair(rng.next(), rng.next()).to_string(),
                    state,
                    item: format!("pkg{}-1.{}-1.fc41", i % 5000, i / 5000),
                    item_type: if i % 7 == 0 {
                        "bodhi_update"
                    } else {
                        "koji_build"
                    }
                    .into(),
                    task: format!("dist.check{}", i % 40),
                    host: format!("hv{:02}", i % 8),
                    image: "fedora-41".into(),
                    created_at: created,
                    started_at: created + wait,
                    running_at: created + wait + boot,
                    finished_at: created + wait + boot + run,
                }
            })
            .collect();
        let t = Instant::now();
        for part in all.chunks(BATCH) {
            self.store.seed_jobs(part).await?;
        }
        let jobs_secs = t.elapsed().as_secs_f64();

        let words = vocabulary();
        let per_job = usize::try_from(log_bytes / (jobs.max(1) as u64)).unwrap_or(usize::MAX);
        let root = self.settings.artifacts_dir();
        let (mut written, mut lines, mut index_secs) = (0u64, 0u64, 0f64);
        for j in all.iter().filter(|_| per_job > 0) {
            let (text, n) = log_text(&mut rng, &words, &j.task, per_job);
            let dir = root.join(&j.uuid);
            let path = dir.join("runner.log");
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&path, &text))
                .map_err(|source| SeedError::Write {
                    path: path.clone(),
                    source,
                })?;
            let a = Artifact {
                path: "runner.log".into(),
                size: i64::try_from(text.len()).unwrap_or(i64::MAX),
                sha256: hex::encode(Sha256::digest(text.as_bytes())),
                created_at: j.finished_at,
            };
            let t = Instant::now();
            self.add_artifact(&j.uuid, &a, Some(text.as_bytes()))
                .await?;
            index_secs += t.elapsed().as_secs_f64();
            written += text.len() as u64;
            lines += n;
        }
        let mb = written as f64 / 1_048_576.0;
        Ok(SeedReport {
            jobs,
            jobs_secs,
            log_bytes: written,
            log_lines: lines,
            index_secs,
            index_ms_per_mb: if mb > 0.0 {
                index_secs * 1000.0 / mb
            } else {
                0.0
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::search::SearchArgs;
    use crate::store::{JobFilter, Page, Store};

    /// Seeded jobs are pages of the list, their logs files on disk and
    /// lines the search finds, newest stored first, also about one item.
    #[tokio::test]
    async fn seeded_jobs_are_listed_and_their_logs_searchable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
        let store = Store::open(&url).await.expect("store");
        let settings = crate::settings::Settings::new(dir.path().to_path_buf());
        let app = App::new(store, std::sync::Arc::new(settings.clone()));
        let r = app.seed_jobs(300, 3_000_000).await.expect("seed");
        assert_eq!(r.jobs, 300);
        assert!(r.log_bytes >= 3_000_000 && r.log_lines > 20_000, "{r:?}");
        let (page, next) = app
            .store()
            .jobs_page(&JobFilter::default(), None, 50)
            .await
            .expect("page");
        assert_eq!(page.len(), 50);
        let newest = &page[0];
        assert!(next.is_some());
        assert!(page.windows(2).all(|w| w[0].created_at >= w[1].created_at));
        let log = settings
            .artifacts_dir()
            .join(&newest.uuid)
            .join("runner.log");
        assert!(std::fs::read_to_string(log)
            .expect("log")
            .contains(&newest.formula));
        let find = |query: &str, item: Option<&str>| {
            let args = SearchArgs {
                query: query.into(),
                item: item.map(str::to_string),
                ..Default::default()
            };
            let app = &app;
            async move {
                app.search(&args, Page { page: 0, limit: 20 })
                    .await
                    .expect("search")
            }
        };
        let (hits, more) = find(COMMON_WORD, None).await;
        assert_eq!(hits.len(), 20);
        assert!(more);
        assert_eq!(
            hits[0].job.as_deref(),
            Some(newest.uuid.as_str()),
            "newest first"
        );
        let (rare, _) = find(RARE_WORD, None).await;
        assert!(rare.iter().all(|h| h.text.contains(RARE_WORD)));
        let (about, _) = find(COMMON_WORD, Some(&newest.item)).await;
        assert!(!about.is_empty());
        assert!(about
            .iter()
            .all(|h| h.item.as_deref() == Some(newest.item.as_str())));
        assert!(
            about.windows(2).all(|w| w[0].line < w[1].line),
            "a file's lines in order"
        );
    }

    #[test]
    fn logs_are_deterministic_and_hold_both_marker_words() {
        let words = vocabulary();
        let (a, n) = log_text(&mut Rng(7), &words, "dist.check1", 2_000_000);
        let (b, _) = log_text(&mut Rng(7), &words, "dist.check1", 2_000_000);
        assert_eq!(a, b);
        assert!(a.len() >= 2_000_000 && n as usize == a.lines().count());
        let common = a.lines().filter(|l| l.contains(COMMON_WORD)).count() as f64;
        let rare = a.lines().filter(|l| l.contains(RARE_WORD)).count();
        assert!(
            (0.03..0.07).contains(&(common / n as f64)),
            "{common} of {n}"
        );
        assert!((1..20).contains(&rare), "{rare} of {n}");
    }
}
