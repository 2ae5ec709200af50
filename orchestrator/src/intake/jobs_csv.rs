//! Jobs as a CSV file: what `serve --record-csv` appends for every message
//! the intake stores, what `ferrotron jobs export` writes and what
//! `ferrotron jobs replay` reads, to move jobs between installations.
//!
//! One row per job; the jobs of one message share its `message_id`, so a
//! replay stores them as that message and replaying a file twice (or into
//! the installation that recorded it) creates no duplicates. Columns (the
//! header row names them, in any order; all are required):
//!
//! `message_id, topic, item, item_type, arch, task, repo, git_ref, path,
//! priority, image, max_attempts, timeout`
//!
//! `image` and `timeout` may be empty (the formula's image, the service's
//! default time-out); `timeout` is whole seconds. Reading checks every row
//! before anything is stored: the first bad one fails the whole file with
//! `FILE:LINE: column X: why`.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::store::{NewQueuedJob, QueuedMessage};

/// The columns, in the order this program writes them.
pub const COLUMNS: [&str; 13] = [
    "message_id",
    "topic",
    "item",
    "item_type",
    "arch",
    "task",
    "repo",
    "git_ref",
    "path",
    "priority",
    "image",
    "max_attempts",
    "timeout",
];

#[derive(Debug, thiserror::Error)]
pub enum JobsCsvError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: column {column}: {why}")]
    Field {
        file: String,
        line: u64,
        column: String,
        why: String,
    },
    #[error("{file}:{line}: {why}")]
    Row {
        file: String,
        line: u64,
        why: String,
    },
}

/// Reads a jobs CSV file; see the module documentation for the format.
pub fn read_file(path: &Path) -> Result<Vec<QueuedMessage>, JobsCsvError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| JobsCsvError::Io {
        file: file.clone(),
        source,
    })?;
    parse(&file, &bytes)
}

/// Parses jobs CSV text; `file` names it in errors.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Vec<QueuedMessage>, JobsCsvError> {
    let row_err = |line: u64, why: String| JobsCsvError::Row {
        file: file.to_string(),
        line,
        why,
    };
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let header = rd
        .headers()
        .map_err(|e| row_err(csv_line(&e).unwrap_or(1), csv_why(&e)))?
        .clone();
    let mut index = [usize::MAX; COLUMNS.len()];
    for (i, name) in header.iter().enumerate() {
        let Some(c) = COLUMNS.iter().position(|c| *c == name.trim()) else {
            return Err(JobsCsvError::Field {
                file: file.to_string(),
                line: 1,
                column: name.to_string(),
                why: format!("unknown column; expected {}", COLUMNS.join(", ")),
            });
        };
        if index[c] != usize::MAX {
            return Err(row_err(1, format!("column {} appears twice", COLUMNS[c])));
        }
        index[c] = i;
    }
    if let Some(c) = index.iter().position(|i| *i == usize::MAX) {
        return Err(JobsCsvError::Field {
            file: file.to_string(),
            line: 1,
            column: COLUMNS[c].to_string(),
            why: "missing from the header row".into(),
        });
    }
    let mut out: Vec<QueuedMessage> = Vec::new();
    for rec in rd.records() {
        let rec = rec.map_err(|e| row_err(csv_line(&e).unwrap_or(0), csv_why(&e)))?;
        let line = rec.position().map_or(0, csv::Position::line);
        let field = |c: usize| rec.get(index[c]).unwrap_or("");
        let bad = |c: usize, why: String| JobsCsvError::Field {
            file: file.to_string(),
            line,
            column: COLUMNS[c].to_string(),
            why,
        };
        let text = |c: usize, required: bool| -> Result<String, JobsCsvError> {
            let v = field(c);
            if required && v.trim().is_empty() {
                return Err(bad(c, "must not be empty".into()));
            }
            if v.chars().any(char::is_control) {
                return Err(bad(c, "contains a control character".into()));
            }
            Ok(v.to_string())
        };
        let int = |c: usize, min: i64| -> Result<i64, JobsCsvError> {
            let v = field(c).trim();
            let n: i64 = v
                .parse()
                .map_err(|_| bad(c, format!("`{v}` is not a whole number")))?;
            if n < min {
                return Err(bad(c, format!("{n} is less than {min}")));
            }
            Ok(n)
        };
        let message_id = text(0, true)?;
        let topic = text(1, true)?;
        let image = text(10, false)?;
        let timeout = if field(12).trim().is_empty() {
            None
        } else {
            Some(int(12, 1)?)
        };
        let job = NewQueuedJob {
            item: text(2, true)?,
            item_type: text(3, true)?,
            arch: text(4, true)?,
            task: text(5, true)?,
            repo: text(6, true)?,
            git_ref: text(7, false)?,
            path: text(8, false)?,
            priority: int(9, i64::from(i32::MIN))?,
            image: (!image.is_empty()).then_some(image),
            max_attempts: int(11, 1)?,
            timeout_secs: timeout,
            // This installation's images decide (`jobs replay`).
            needs: None,
        };
        // The rows of one message go together, wherever they are.
        match out.iter_mut().find(|m| m.message_id == message_id) {
            Some(m) if m.topic != topic => {
                return Err(bad(
                    1,
                    format!(
                        "`{topic}` differs from `{}`, the topic of message {message_id} on an earlier line",
                        m.topic
                    ),
                ))
            }
            Some(m) => m.jobs.push(job),
            None => out.push(QueuedMessage {
                message_id,
                topic,
                jobs: vec![job],
            }),
        }
    }
    Ok(out)
}

fn csv_line(e: &csv::Error) -> Option<u64> {
    e.position().map(csv::Position::line)
}

/// A CSV syntax error without the position the caller already names.
fn csv_why(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} field(s) where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".into(),
        _ => e.to_string(),
    }
}

/// The rows of `messages` as CSV, with the header row first if `header`.
pub fn to_csv(messages: &[QueuedMessage], header: bool) -> Result<Vec<u8>, std::io::Error> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    let io = |e: csv::Error| std::io::Error::other(e.to_string());
    if header {
        w.write_record(COLUMNS).map_err(io)?;
    }
    for m in messages {
        for j in &m.jobs {
            w.write_record([
                m.message_id.as_str(),
                m.topic.as_str(),
                &j.item,
                &j.item_type,
                &j.arch,
                &j.task,
                &j.repo,
                &j.git_ref,
                &j.path,
                &j.priority.to_string(),
                j.image.as_deref().unwrap_or(""),
                &j.max_attempts.to_string(),
                &j.timeout_secs.map(|t| t.to_string()).unwrap_or_default(),
            ])
            .map_err(io)?;
        }
    }
    w.into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Appends every message the intake stores to a CSV file: one write per
/// message under an exclusive lock (several processes may record to one
/// file), flushed before the message counts as recorded, the header row
/// only into an empty file.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub path: PathBuf,
}

impl Recorder {
    pub fn new(path: PathBuf) -> Recorder {
        Recorder { path }
    }

    pub fn record(&self, message: &QueuedMessage) -> Result<(), JobsCsvError> {
        use fs4::fs_std::FileExt;
        let io = |source| JobsCsvError::Io {
            file: self.path.display().to_string(),
            source,
        };
        if message.jobs.is_empty() {
            return Ok(());
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        f.lock_exclusive().map_err(io)?;
        let empty = f.metadata().map_err(io)?.len() == 0;
        let bytes = to_csv(std::slice::from_ref(message), empty).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_data().map_err(io)?;
        // The lock goes with the file.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "message_id,topic,item,item_type,arch,task,repo,git_ref,path,priority,image,max_attempts,timeout\n";

    fn job(item: &str) -> NewQueuedJob {
        NewQueuedJob {
            item: item.into(),
            item_type: "koji_build".into(),
            arch: "x86_64".into(),
            task: "rpmlint".into(),
            repo: "/srv/tasks".into(),
            git_ref: "HEAD".into(),
            path: "rpmlint".into(),
            priority: 0,
            image: None,
            max_attempts: 3,
            timeout_secs: None,
            needs: None,
        }
    }

    fn err(text: &str) -> String {
        parse("jobs.csv", text.as_bytes())
            .expect_err("bad")
            .to_string()
    }

    #[test]
    fn rows_of_one_message_are_one_message() {
        let text = format!(
            "{HEADER}m1,t,a-1,koji_build,x86_64,rpmlint,/r,HEAD,rpmlint,0,,3,\n\
             m2,t,b-1,koji_build,x86_64,rpmlint,/r,HEAD,rpmlint,5,tiny,1,600\n\
             m1,t,a-1,koji_build,aarch64,rpmlint,/r,HEAD,rpmlint,0,,3,\n"
        );
        let m = parse("jobs.csv", text.as_bytes()).expect("parse");
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].jobs.len(), 2);
        assert_eq!(m[0].jobs[1].arch, "aarch64");
        assert_eq!(m[1].jobs[0].image.as_deref(), Some("tiny"));
        assert_eq!(m[1].jobs[0].timeout_secs, Some(600));
        assert_eq!(m[1].jobs[0].priority, 5);
        assert_eq!(m[0].jobs[0].timeout_secs, None);
    }

    #[test]
    fn bad_rows_name_file_line_and_column() {
        let row =
            |s: &str| format!("{HEADER}m1,t,a-1,koji_build,x86_64,rpmlint,/r,HEAD,p,0,,3,\n{s}\n");
        assert_eq!(
            err(&row("m2,t,b,koji_build,x86_64,rpmlint,/r,HEAD,p,high,,3,")),
            "jobs.csv:3: column priority: `high` is not a whole number"
        );
        assert_eq!(
            err(&row("m2,t,b,koji_build,x86_64,rpmlint,/r,HEAD,p,0,,3,-5")),
            "jobs.csv:3: column timeout: -5 is less than 1"
        );
        assert_eq!(
            err(&row("m2,t,b,koji_build,x86_64,rpmlint,/r,HEAD,p,0,,0,")),
            "jobs.csv:3: column max_attempts: 0 is less than 1"
        );
        assert_eq!(
            err(&row(",t,b,koji_build,x86_64,rpmlint,/r,HEAD,p,0,,3,")),
            "jobs.csv:3: column message_id: must not be empty"
        );
        assert_eq!(
            err(&row("m2,t,b,koji_build,x86_64,rpmlint,/r,HEAD,p,0,,3")),
            "jobs.csv:3: 12 field(s) where the header has 13"
        );
        assert_eq!(
            err(&row("m1,other,b,koji_build,x86_64,rpmlint,/r,HEAD,p,0,,3,")),
            "jobs.csv:3: column topic: `other` differs from `t`, the topic of message m1 on an earlier line"
        );
        // A quoted field spanning lines: the next row's line is still right.
        assert_eq!(
            err(&row("m2,t,\"b\nc\",koji_build,x86_64,rpmlint,/r,HEAD,p,0,,3,\nm3,t,b,k,x,r,/r,H,p,0,,3,x")),
            "jobs.csv:3: column item: contains a control character"
        );
        assert_eq!(
            err("message_id,topic,colour\n"),
            "jobs.csv:1: column colour: unknown column; expected message_id, topic, item, item_type, arch, task, repo, git_ref, path, priority, image, max_attempts, timeout"
        );
        assert_eq!(
            err("message_id,topic\n"),
            "jobs.csv:1: column item: missing from the header row"
        );
    }

    #[test]
    fn quoting_round_trips() {
        let mut j = job("a \"quoted\", item; $(rm -rf /)");
        j.image = Some("tiny,2".into());
        j.timeout_secs = Some(90);
        let m = vec![QueuedMessage {
            message_id: "id,with\"quotes".into(),
            topic: "org.fedoraproject.prod.buildsys.build.state.change".into(),
            jobs: vec![j, job("b")],
        }];
        let bytes = to_csv(&m, true).expect("write");
        let back = parse("x.csv", &bytes).expect("parse");
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].message_id, m[0].message_id);
        assert_eq!(back[0].jobs[0].item, m[0].jobs[0].item);
        assert_eq!(back[0].jobs[0].image, m[0].jobs[0].image);
        assert_eq!(back[0].jobs[0].timeout_secs, Some(90));
        assert_eq!(back[0].jobs[1].item, "b");
    }

    #[test]
    fn the_recorder_writes_the_header_once_and_appends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Recorder::new(dir.path().join("jobs.csv"));
        for id in ["m1", "m2"] {
            r.record(&QueuedMessage {
                message_id: id.into(),
                topic: "t".into(),
                jobs: vec![job(id)],
            })
            .expect("record");
        }
        let text = std::fs::read_to_string(&r.path).expect("read");
        assert_eq!(text.matches("message_id,").count(), 1);
        let back = parse("jobs.csv", text.as_bytes()).expect("parse");
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].jobs[0].item, "m2");
    }

    proptest::proptest! {
        /// Whatever text a job carries (quotes, commas, unicode) comes
        /// back unchanged through a file.
        #[test]
        fn any_printable_text_round_trips(
            id in "[^\\p{C}]{1,20}",
            item in "[^\\p{C}]{1,40}",
            path in "[^\\p{C}]{0,20}",
            prio in -1000i64..1000,
        ) {
            proptest::prop_assume!(!id.trim().is_empty() && !item.trim().is_empty());
            let mut j = job(&item);
            j.path = path.clone();
            j.priority = prio;
            let m = vec![QueuedMessage { message_id: id.clone(), topic: "t".into(), jobs: vec![j] }];
            let bytes = to_csv(&m, true).expect("write");
            let back = parse("p.csv", &bytes).expect("parse");
            proptest::prop_assert_eq!(&back[0].message_id, &id);
            proptest::prop_assert_eq!(&back[0].jobs[0].item, &item);
            proptest::prop_assert_eq!(&back[0].jobs[0].path, &path);
            proptest::prop_assert_eq!(back[0].jobs[0].priority, prio);
        }
    }
}
