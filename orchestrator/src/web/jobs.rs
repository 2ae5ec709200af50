//! The job list (`/`), a job's page (`/jobs/UUID`), a job's files
//! (`/jobs/UUID/files/PATH`, text inline with line anchors) and cancel.

use std::io::Read;
use std::path::Path as FsPath;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::html::{self, esc, href, seg};
use super::session::Who;
use super::{html_response, param, query_pairs, see_other, Nav, Page, WebError};
use crate::api::AppState;
use crate::beneath::{BeneathError, Dir};
use crate::job::JobState;
use crate::store::{Job, JobCursor, JobFilter, Page as StorePage, ResultFilter};

/// Jobs per page of the list.
const PER_PAGE: i64 = 50;
/// The most of a file shown inline (a log, an artifact); the rest is
/// downloaded.
const INLINE_BYTES: u64 = 2 * 1024 * 1024;
/// Lines of a failed boot's console shown on the job's page.
const CONSOLE_LINES: usize = 200;

fn job_id(s: &str) -> Result<String, WebError> {
    crate::job::canonical_id(s)
        .ok_or_else(|| WebError::BadRequest(format!("`{s}` is not a job UUID")))
}

/// The list's filters from its query, checked as `GET /api/v1/jobs`
/// checks them (an empty form field filters nothing).
fn filter_of(pairs: &[(String, String)]) -> Result<JobFilter, WebError> {
    let given: Vec<(String, String)> = pairs
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k.clone(), v.trim().to_string()))
        .collect();
    crate::api::params::job_filter(&given, &["after", "fragment"])
        .map_err(|e| WebError::BadRequest(e.to_string()))
}

/// The list's rows (also the live fragment).
fn rows(jobs: &[Job]) -> String {
    if jobs.is_empty() {
        return "<tr><td colspan=\"8\" class=\"empty\">No jobs match.</td></tr>".into();
    }
    let mut out = String::new();
    for j in jobs {
        let took = match (j.started_at, j.finished_at) {
            (Some(s), Some(f)) => html::duration(f - s),
            (Some(s), None) => format!("{} so far", html::duration(crate::store::now_micros() - s)),
            _ => String::new(),
        };
        out.push_str(&format!(
            "<tr data-job=\"{u}\" data-state=\"{state}\"><td><a href=\"/jobs/{u}\">{id}</a></td>\
             <td>{badge}</td><td><a href=\"{task}\">{t}</a></td><td><a href=\"/items/{iu}\">{i}</a></td>\
             <td>{ty}</td><td>{host}</td><td>{created}</td><td>{took}</td></tr>",
            u = esc(&j.uuid),
            state = j.state,
            id = html::short_id(&j.uuid),
            badge = html::state_badge(j.state),
            task = href("/", &[("task", &j.formula)]),
            t = esc(&j.formula),
            iu = esc(&seg(&j.item)),
            i = esc(&j.item),
            ty = esc(&j.item_type),
            host = esc(j.host.as_deref().unwrap_or("")),
            created = html::time(j.created_at),
        ));
    }
    out
}

pub async fn list(
    State(st): State<AppState>,
    who: Who,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    let pairs = query_pairs(q.as_deref());
    let filter = filter_of(&pairs)?;
    let after =
        match param(&pairs, "after") {
            Some(a) => Some(JobCursor::decode(a).ok_or_else(|| {
                WebError::BadRequest(format!("after: `{a}` is not a page cursor"))
            })?),
            None => None,
        };
    let (jobs, next) = st
        .app
        .store()
        .jobs_page(&filter, after.as_ref(), PER_PAGE)
        .await?;
    if param(&pairs, "fragment") == Some("rows") {
        return Ok(html_response(StatusCode::OK, rows(&jobs)));
    }
    let kept: Vec<(&str, &str)> = ["state", "task", "item", "type", "host", "since", "until"]
        .into_iter()
        .filter_map(|k| param(&pairs, k).map(|v| (k, v)))
        .collect();
    let states: String = std::iter::once(String::from("<option value=\"\">any</option>"))
        .chain(crate::job::ALL_STATES.iter().map(|s| {
            let sel = if filter.state == Some(*s) {
                " selected"
            } else {
                ""
            };
            format!("<option{sel}>{s}</option>")
        }))
        .collect();
    // Live only on the first page: later pages stay as they were read.
    let live = if after.is_none() {
        let mut p = kept.clone();
        p.push(("fragment", "rows"));
        format!(" data-live=\"{}\"", href("/", &p))
    } else {
        String::new()
    };
    let mut nav = String::new();
    if after.is_some() {
        nav.push_str(&format!("<a href=\"{}\">Newest</a>", href("/", &kept)));
    }
    if let Some(n) = &next {
        let mut p = kept.clone();
        let c = n.encode();
        p.push(("after", &c));
        nav.push_str(&format!(
            " <a href=\"{}\" rel=\"next\">Older →</a>",
            href("/", &p)
        ));
    }
    let body = format!(
        "<h1>Jobs</h1>\
         <form method=\"get\" action=\"/\" class=\"filters\">\
         <label>State <select name=\"state\">{states}</select></label>\
         {fields}\
         <button type=\"submit\">Filter</button></form>\
         <div class=\"scroll\"><table class=\"jobs\"><thead><tr><th>Job</th><th>State</th><th>Task</th>\
         <th>Item</th><th>Type</th><th>Host</th><th>Created (UTC)</th><th>Duration</th></tr></thead>\
         <tbody id=\"jobs\"{live}>{rows}</tbody></table></div><p class=\"pager\">{nav}</p>",
        fields = super::text_fields(
            &pairs,
            &[
                ("Task", "task", ""),
                ("Item", "item", ""),
                ("Type", "type", ""),
                ("Host", "host", ""),
                ("Since", "since", "2024-01-31"),
                ("Until", "until", "2024-02-01T12:00:00Z"),
            ]
        ),
        rows = rows(&jobs),
    );
    Ok(Page {
        title: "Jobs",
        nav: Nav::Jobs,
        body,
        who: &who,
    }
    .render())
}

/// A phase the runner logged: `ferrotron: [2/6] boot ... 1.23 s`.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: String,
    pub detail: String,
    pub secs: f64,
}

/// The phases in a runner log, in order.
pub fn phases(log: &str) -> Vec<Phase> {
    log.lines()
        .filter_map(|l| {
            // `<time> ferrotron: [n/N] ...`; a task's line is `<time>   | ...`.
            let rest = l.split_once(' ')?.1.strip_prefix("ferrotron: [")?;
            let (_, rest) = rest.split_once("] ")?;
            let rest = rest.trim_end();
            let rest = rest.strip_suffix(" s")?;
            let (head, secs) = rest.rsplit_once(' ')?;
            let secs: f64 = secs.parse().ok()?;
            let head = head.trim();
            let (name, detail) = head.split_once(' ').unwrap_or((head, ""));
            Some(Phase {
                name: name.to_string(),
                detail: detail.trim().to_string(),
                secs,
            })
        })
        .collect()
}

/// The first `max` bytes of a job's file, read below its artifacts folder
/// without following links; `None` when it does not exist.
fn read_file(
    root: &FsPath,
    uuid: &str,
    rel: &FsPath,
    max: u64,
) -> Result<Option<(Vec<u8>, u64)>, WebError> {
    let dir = match Dir::open(root) {
        Ok(d) => d,
        Err(BeneathError::Missing(_)) => return Ok(None),
        Err(e) => return Err(WebError::Internal(crate::util::full(&e))),
    };
    let file = match dir.read(&FsPath::new(uuid).join(rel)) {
        Ok(f) => f,
        Err(BeneathError::Missing(_) | BeneathError::Link(_)) => return Ok(None),
        Err(e) => return Err(WebError::Internal(crate::util::full(&e))),
    };
    read_start(file, max).map(Some)
}

/// The first `max` bytes of an open file, and its whole size.
fn read_start(file: std::fs::File, max: u64) -> Result<(Vec<u8>, u64), WebError> {
    let size = file
        .metadata()
        .map_err(|e| WebError::Internal(e.to_string()))?
        .len();
    let mut out = Vec::new();
    file.take(max)
        .read_to_end(&mut out)
        .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok((out, size))
}

/// For a file of `size` bytes shown inline: a line saying only its start
/// is shown, linking to all of it at `href` (already escaped); else nothing.
fn cut_note(size: u64, href: &str, whole: &str) -> String {
    if size <= INLINE_BYTES {
        return String::new();
    }
    format!(
        "<p>The first {} of {} are shown: <a href=\"{href}\">{whole}</a>.</p>",
        html::size(INLINE_BYTES as i64),
        html::size(size as i64)
    )
}

/// Whether bytes look like text (no NUL in the first 8 KiB).
fn is_text(b: &[u8]) -> bool {
    !b[..b.len().min(8192)].contains(&0)
}

/// Text as numbered lines, each with its anchor `L<n>`.
fn numbered(text: &str) -> String {
    let mut out = String::from("<table class=\"src\"><tbody>");
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        out.push_str(&format!(
            "<tr id=\"L{n}\"><td class=\"ln\"><a href=\"#L{n}\">{n}</a></td><td><pre>{}</pre></td></tr>",
            esc(line)
        ));
    }
    out.push_str("</tbody></table>");
    out
}

/// The summary: facts, timeline and phases (also the live fragment).
fn summary(job: &Job, log: &str) -> String {
    let mut facts = String::new();
    let mut fact = |k: &str, v: String| {
        if !v.is_empty() {
            facts.push_str(&format!("<dt>{k}</dt><dd>{v}</dd>"));
        }
    };
    fact("State", html::state_badge(job.state));
    fact(
        "Item",
        format!(
            "<a href=\"/items/{}\">{}</a> ({})",
            esc(&seg(&job.item)),
            esc(&job.item),
            esc(&job.item_type)
        ),
    );
    fact(
        "Task",
        format!(
            "<a href=\"{}\">{}</a>",
            href("/", &[("task", &job.formula)]),
            esc(&job.formula)
        ),
    );
    fact("Arch", esc(&job.arch));
    fact(
        "Commit",
        job.git_commit
            .as_deref()
            .map(|c| format!("<code>{}</code>", esc(c)))
            .unwrap_or_default(),
    );
    fact("Image", esc(job.image.as_deref().unwrap_or("")));
    fact(
        "Host",
        job.host
            .as_deref()
            .map(|h| format!("<a href=\"{}\">{}</a>", href("/", &[("host", h)]), esc(h)))
            .unwrap_or_default(),
    );
    fact("Requested by", esc(job.topic.as_deref().unwrap_or("")));
    fact(
        "Exit status",
        job.exit_status.map(|e| e.to_string()).unwrap_or_default(),
    );
    fact(
        "Error",
        job.last_error
            .as_deref()
            .map(|e| format!("<span class=\"error\">{}</span>", esc(e)))
            .unwrap_or_default(),
    );
    let mut timeline = String::from(
        "<table class=\"timeline\"><thead><tr><th>State</th><th>At (UTC)</th><th>For</th></tr></thead><tbody>",
    );
    let now = crate::store::now_micros();
    for (i, t) in job.transitions.iter().enumerate() {
        let until = job.transitions.get(i + 1).map(|n| n.at);
        let took = match until {
            Some(u) => html::duration(u - t.at),
            None if !t.state.is_final() => format!("{} so far", html::duration(now - t.at)),
            None => String::new(),
        };
        timeline.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{took}</td></tr>",
            html::state_badge(t.state),
            html::time(t.at)
        ));
    }
    timeline.push_str("</tbody></table>");
    let ph = phases(log);
    let phase_part = if ph.is_empty() {
        String::new()
    } else {
        let total: f64 = ph.iter().map(|p| p.secs).sum::<f64>().max(0.001);
        let mut rows = String::new();
        for p in &ph {
            rows.push_str(&format!(
                "<tr class=\"phase\" data-phase=\"{n}\"><td>{n}</td><td>{w}</td><td>{s:.2} s</td><td class=\"detail\">{d}</td></tr>",
                n = esc(&p.name),
                w = super::plot::bar(p.secs / total),
                s = p.secs,
                d = esc(&p.detail),
            ));
        }
        format!(
            "<h3>Phases</h3><div class=\"scroll\"><table class=\"phases\"><thead><tr><th>Phase</th>\
             <th>Share</th><th>Took</th><th>Detail</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
    };
    format!(
        "<dl class=\"facts\">{facts}</dl><h3>Timeline</h3><div class=\"scroll\">{timeline}</div>{phase_part}"
    )
}

pub async fn show(
    State(st): State<AppState>,
    who: Who,
    Path(uuid): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    let uuid = job_id(&uuid)?;
    let job = st.app.job(&uuid).await?;
    let root = st.app.settings().artifacts_dir();
    // The log the API's follow reads: the published copy, else (the job
    // still running here) the runner's own.
    let log = match crate::api::follow::LogRoots::of(st.app.settings()).open(&uuid) {
        Ok((file, _)) => Some(read_start(file, INLINE_BYTES)?),
        Err(BeneathError::Missing(_) | BeneathError::Link(_)) => None,
        Err(e) => return Err(WebError::Internal(crate::util::full(&e))),
    };
    let log_text = log
        .as_ref()
        .map(|(b, _)| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let pairs = query_pairs(q.as_deref());
    let running = !job.state.is_final();
    if param(&pairs, "fragment") == Some("summary") {
        let mut r = html_response(StatusCode::OK, summary(&job, &log_text));
        if !running {
            // The page's script stops asking.
            r.headers_mut().insert(
                "x-ferrotron-final",
                axum::http::HeaderValue::from_static("1"),
            );
        }
        return Ok(r);
    }
    let live = if running {
        format!(" data-live=\"/jobs/{}?fragment=summary\"", esc(&uuid))
    } else {
        String::new()
    };
    let api_log = format!("/api/v1/jobs/{}/log", esc(&uuid));
    let log_part = if running {
        format!(
            "<pre class=\"log\" id=\"log\" data-follow=\"{api_log}\">{}</pre>\
             <noscript><p>The log grows while the job runs: <a href=\"{api_log}\">follow it</a>.</p></noscript>",
            esc(&log_text)
        )
    } else {
        match &log {
            Some((_, size)) => {
                let cut = cut_note(*size, &api_log, "the whole log");
                format!(
                    "{cut}<div class=\"scroll log\" id=\"log\">{}</div>",
                    numbered(&log_text)
                )
            }
            None => "<p class=\"empty\">No log.</p>".into(),
        }
    };
    // Results of this job (its group).
    let results = match st
        .app
        .group_results(
            &uuid,
            ResultFilter::default(),
            StorePage {
                page: 0,
                limit: 200,
            },
        )
        .await
    {
        Ok((rows, _)) => rows,
        Err(crate::store::StoreError::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let results_part = super::history::results_table(&results, false);
    let artifacts = st.app.store().list_artifacts(&uuid).await?;
    let artifacts_part = if artifacts.is_empty() {
        "<p class=\"empty\">No artifacts (yet).</p>".to_string()
    } else {
        let mut r = String::from(
            "<div class=\"scroll\"><table class=\"artifacts\"><thead><tr><th>File</th><th>Size</th><th></th></tr></thead><tbody>",
        );
        for a in &artifacts {
            let p = crate::api::segs(&a.path);
            r.push_str(&format!(
                "<tr><td><a href=\"/jobs/{u}/files/{p}\">{name}</a></td><td>{size}</td>\
                 <td><a href=\"/api/v1/jobs/{u}/artifacts/{p}\" download>download</a></td></tr>",
                u = esc(&uuid),
                p = esc(&p),
                name = esc(&a.path),
                size = html::size(a.size),
            ));
        }
        r.push_str("</tbody></table></div>");
        r
    };
    // The console of a job that did not get to run its task.
    let console_part = if matches!(job.state, JobState::Error) {
        match read_file(&root, &uuid, FsPath::new("console.log"), INLINE_BYTES)? {
            Some((b, _)) => {
                let text = String::from_utf8_lossy(&b);
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(CONSOLE_LINES)..].join("\n");
                format!(
                    "<section id=\"console\"><h2>Console</h2><p>The VM's serial console, its last {} lines \
                     (<a href=\"/jobs/{}/files/console.log\">all of it</a>).</p><pre class=\"log\">{}</pre></section>",
                    CONSOLE_LINES,
                    esc(&uuid),
                    esc(&tail)
                )
            }
            None => String::new(),
        }
    } else {
        String::new()
    };
    let reach_part = match st.app.store().reservation_of_job(&uuid).await? {
        Some(r) => {
            let how = match st.app.reach(&r) {
                Some(info) => format!(
                    "<p>From a machine where you can log in to <b>{host}</b>:</p><pre class=\"cmd\">{jump}</pre>\
                     <p>with this line in the known_hosts file it names:</p><pre class=\"cmd\">{kh}</pre>\
                     <p>On {host} itself:</p><pre class=\"cmd\">{local}</pre>",
                    host = esc(&info.host),
                    jump = esc(&info.ssh_jump_command),
                    kh = esc(&info.known_hosts),
                    local = esc(&info.ssh_command),
                ),
                None => format!(
                    "<p>Status: <b>{}</b>{}</p>",
                    esc(r.status()),
                    r.end_reason
                        .as_deref()
                        .map(|e| format!(" ({})", esc(e)))
                        .unwrap_or_default()
                ),
            };
            let expires = r
                .expires_at
                .map(|e| format!("<p>Expires at {} UTC.</p>", html::time(e)))
                .unwrap_or_default();
            format!(
                "<section id=\"reach\"><h2>{} {}</h2>{how}{expires}</section>",
                if r.kind == crate::store::ReservationKind::Hold {
                    "Held VM"
                } else {
                    "Reservation"
                },
                esc(&r.id)
            )
        }
        None => String::new(),
    };
    let cancel_part = if running {
        if who.is_operator() {
            format!(
                "<form method=\"post\" action=\"/jobs/{}/cancel\" class=\"actions\">\
                 <button type=\"submit\" class=\"danger\" id=\"cancel\">Cancel this job</button></form>",
                esc(&uuid)
            )
        } else {
            format!(
                "<p class=\"actions\"><a href=\"{}\">Sign in</a> with an operator token to cancel.</p>",
                href("/login", &[("next", &format!("/jobs/{uuid}"))])
            )
        }
    } else {
        String::new()
    };
    let title = format!("Job {}", uuid.get(..8).unwrap_or(&uuid));
    let body = format!(
        "<h1>{title_e} <small>{item}</small></h1>{cancel_part}\
         <section id=\"summary\"{live}>{summary}</section>{reach_part}{console_part}\
         <section id=\"results\"><h2>Results</h2>{results_part}</section>\
         <section id=\"artifacts\"><h2>Artifacts</h2>{artifacts_part}</section>\
         <section id=\"log-section\"><h2>Log</h2>{log_part}</section>\
         <p><a href=\"/api/v1/jobs/{u}\">This job as JSON</a></p>",
        title_e = esc(&title),
        item = esc(&job.item),
        summary = summary(&job, &log_text),
        u = esc(&uuid),
    );
    Ok(Page {
        title: &title,
        nav: Nav::Jobs,
        body,
        who: &who,
    }
    .render())
}

pub async fn file(
    State(st): State<AppState>,
    who: Who,
    Path((uuid, rel)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let uuid = job_id(&uuid)?;
    st.app.job(&uuid).await?;
    let path = crate::api::safe_artifact_path(&rel).map_err(WebError::BadRequest)?;
    let root = st.app.settings().artifacts_dir();
    let Some((bytes, size)) = read_file(&root, &uuid, &path, INLINE_BYTES)? else {
        return Err(WebError::NotFound(format!(
            "job `{uuid}` has no file `{rel}`"
        )));
    };
    let download = format!(
        "/api/v1/jobs/{}/artifacts/{}",
        esc(&uuid),
        esc(&crate::api::segs(&rel))
    );
    let content = if !is_text(&bytes) {
        format!(
            "<p>A binary file of {}: <a href=\"{download}\" download>download it</a>.</p>",
            html::size(size as i64)
        )
    } else {
        let cut = cut_note(size, &download, "the whole file");
        format!(
            "{cut}<p><a href=\"{download}\" download>Download</a> ({})</p><div class=\"scroll\">{}</div>",
            html::size(size as i64),
            numbered(&String::from_utf8_lossy(&bytes))
        )
    };
    let title = format!("{rel} · job {}", uuid.get(..8).unwrap_or(&uuid));
    let body = format!(
        "<h1><a href=\"/jobs/{u}\">Job {short}</a> / {name}</h1>{content}",
        u = esc(&uuid),
        short = esc(uuid.get(..8).unwrap_or(&uuid)),
        name = esc(&rel),
    );
    Ok(Page {
        title: &title,
        nav: Nav::Jobs,
        body,
        who: &who,
    }
    .render())
}

pub async fn cancel(
    State(st): State<AppState>,
    who: Who,
    Path(uuid): Path<String>,
) -> Result<Response, WebError> {
    let uuid = job_id(&uuid)?;
    let holder = who.operator()?;
    match st.app.cancel(&uuid).await {
        Ok(c) => {
            tracing::info!(token = %holder.name, job = %uuid, was = %c.was, "cancelled from the dashboard");
            Ok(see_other(&format!("/jobs/{uuid}")))
        }
        Err(crate::store::StoreError::NotFound { what, name }) => {
            Err(WebError::NotFound(format!("no {what} `{name}`")))
        }
        Err(crate::store::StoreError::Conflict(m)) => Err(WebError::BadRequest(m)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_read_from_the_runner_log() {
        let log = "2026-12-03T10:00:00Z ferrotron: [1/6] image    tiny:3 (overlay)                                          0.01 s\n\
                   2026-12-03T10:00:01Z ferrotron: [2/6] boot     restored from template                                    1.20 s\n\
                   2026-12-03T10:00:01Z   | ferrotron: [9/9] fake 1 s\n\
                   2026-12-03T10:00:02Z ferrotron: hello\n";
        let p = phases(log);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].name, "image");
        assert_eq!(p[0].detail, "tiny:3 (overlay)");
        assert!((p[1].secs - 1.2).abs() < 1e-9);
    }

    #[test]
    fn numbered_lines_have_anchors_and_stay_text() {
        let h = numbered("one\n<b>two</b>");
        assert!(h.contains("id=\"L2\""));
        assert!(h.contains("&lt;b&gt;two&lt;/b&gt;"));
        assert!(!h.contains("<b>"));
    }
}
