//! An item's history (`/items/ITEM`: every result for a build, update or
//! commit, the latest per testcase first, and its jobs) and a testcase's
//! (`/testcases/NAME`: pass/fail and duration over time, recent failures,
//! the items it ran on).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;

use super::html::{self, esc, href, seg};
use super::plot::{self, Stack};
use super::session::Who;
use super::{Nav, Page, WebError};
use crate::api::AppState;
use crate::store::{now_micros, DataFilter, JobFilter, Page as StorePage, ResultFilter, ResultRow};

/// Days a testcase's plots cover.
const DAYS: i64 = 30;
const DAY: i64 = 24 * 3600 * 1_000_000;

/// Results as a table (with their items' column if asked), each linking
/// to its testcase and its job.
pub(super) fn results_table(rows: &[ResultRow], with_item: bool) -> String {
    if rows.is_empty() {
        return "<p class=\"empty\">No results.</p>".into();
    }
    let mut out = format!(
        "<div class=\"scroll\"><table class=\"results\"><thead><tr><th>Testcase</th><th>Outcome</th>\
         {}<th>When (UTC)</th><th>Job</th><th>Note</th></tr></thead><tbody>",
        if with_item { "<th>Item</th>" } else { "" }
    );
    for r in rows {
        let item = r
            .data
            .get("item")
            .and_then(|v| v.first())
            .map(String::as_str)
            .unwrap_or("");
        let item_cell = if with_item {
            format!(
                "<td><a href=\"/items/{}\">{}</a></td>",
                esc(&seg(item)),
                esc(item)
            )
        } else {
            String::new()
        };
        let job = r
            .groups
            .first()
            .map(|g| format!("<a href=\"/jobs/{}\">{}</a>", esc(g), html::short_id(g)))
            .unwrap_or_default();
        out.push_str(&format!(
            "<tr><td><a href=\"/testcases/{}\">{}</a></td><td>{}</td>{item_cell}<td>{}</td><td>{job}</td><td>{}</td></tr>",
            esc(&seg(&r.testcase.name)),
            esc(&r.testcase.name),
            html::outcome_badge(&r.outcome),
            html::time(r.submit_time),
            esc(r.note.as_deref().unwrap_or("")),
        ));
    }
    out.push_str("</tbody></table></div>");
    out
}

pub async fn item(
    State(st): State<AppState>,
    who: Who,
    Path(item): Path<String>,
) -> Result<Response, WebError> {
    let filter = ResultFilter {
        data: vec![DataFilter {
            key: "item".into(),
            values: vec![item.clone()],
            like: false,
        }],
        ..ResultFilter::default()
    };
    let latest = st.app.store().latest_results(&filter, &[]).await?;
    let (all, more) = st
        .app
        .store()
        .list_results(
            &filter,
            StorePage {
                page: 0,
                limit: 200,
            },
        )
        .await?;
    let jf = JobFilter {
        item: Some(item.clone()),
        ..JobFilter::default()
    };
    let (jobs, next) = st.app.store().jobs_page(&jf, None, 50).await?;
    let mut job_rows = String::new();
    for j in &jobs {
        job_rows.push_str(&format!(
            "<tr><td><a href=\"/jobs/{u}\">{id}</a></td><td>{b}</td><td>{t}</td><td>{c}</td></tr>",
            u = esc(&j.uuid),
            id = html::short_id(&j.uuid),
            b = html::state_badge(j.state),
            t = esc(&j.formula),
            c = html::time(j.created_at),
        ));
    }
    let more_jobs = if next.is_some() {
        format!(
            "<p><a href=\"{}\">All jobs about this item</a></p>",
            href("/", &[("item", &item)])
        )
    } else {
        String::new()
    };
    let more_results = if more {
        format!(
            "<p>The newest 200 are shown; <a href=\"{}\">all of them as JSON</a>.</p>",
            href("/api/v2.0/results", &[("item", &item)])
        )
    } else {
        String::new()
    };
    let body = format!(
        "<h1>Item <span class=\"name\">{name}</span></h1>\
         <section id=\"latest\"><h2>Latest outcome per testcase</h2>{latest}</section>\
         <section id=\"jobs\"><h2>Jobs</h2><div class=\"scroll\"><table class=\"jobs\"><thead><tr><th>Job</th>\
         <th>State</th><th>Task</th><th>Created (UTC)</th></tr></thead><tbody>{job_rows}</tbody></table></div>{more_jobs}</section>\
         <section id=\"history\"><h2>Every result</h2>{all}{more_results}</section>",
        name = esc(&item),
        latest = results_table(&latest, false),
        all = results_table(&all, false),
    );
    Ok(Page {
        title: &format!("Item {item}"),
        nav: Nav::Jobs,
        body,
        who: &who,
    }
    .render())
}

pub async fn testcase(
    State(st): State<AppState>,
    who: Who,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    if st.app.store().get_testcase(&name).await?.is_none() {
        return Err(WebError::NotFound(format!("no testcase `{name}`")));
    }
    let now = now_micros();
    let first_day = now / DAY - (DAYS - 1);
    let runs = st.app.store().testcase_runs(&name, first_day * DAY).await?;
    // Per day: outcomes counted, durations' median.
    let mut days: BTreeMap<i64, (f64, f64, f64, Vec<i64>)> = (first_day..=now / DAY)
        .map(|d| (d, (0.0, 0.0, 0.0, Vec::new())))
        .collect();
    for r in &runs {
        let e = days.entry(r.submit_time / DAY).or_default();
        match r.outcome.as_str() {
            "PASSED" | "INFO" => e.0 += 1.0,
            "FAILED" | "ERROR" => e.1 += 1.0,
            _ => e.2 += 1.0,
        }
        if let Some(d) = r.duration {
            e.3.push(d);
        }
    }
    let label = |d: i64| {
        crate::store::format_time(d * DAY)
            .get(..10)
            .unwrap_or("")
            .to_string()
    };
    let stacks: Vec<Stack<'_>> = days
        .iter()
        .map(|(d, (p, f, o, _))| Stack {
            label: label(*d),
            parts: vec![("pass", *p), ("fail", *f), ("other", *o)],
        })
        .collect();
    let durations: Vec<(String, Option<f64>)> = days
        .iter_mut()
        .map(|(d, (_, _, _, ds))| {
            ds.sort_unstable();
            (label(*d), ds.get(ds.len() / 2).map(|v| *v as f64 / 1e6))
        })
        .collect();
    let total = runs.len();
    let passed = runs
        .iter()
        .filter(|r| matches!(r.outcome.as_str(), "PASSED" | "INFO"))
        .count();
    let rate = if total > 0 {
        format!(
            "{:.1}% passed of {total} results in the last {DAYS} days",
            passed as f64 * 100.0 / total as f64
        )
    } else {
        format!("no results in the last {DAYS} days")
    };
    let failures = ResultFilter {
        testcases: vec![name.clone()],
        outcomes: vec!["FAILED".into(), "ERROR".into()],
        ..ResultFilter::default()
    };
    let (failed, _) = st
        .app
        .store()
        .list_results(&failures, StorePage { page: 0, limit: 20 })
        .await?;
    let items = st.app.store().testcase_items(&name, 50).await?;
    let mut item_rows = String::new();
    for (i, last) in &items {
        item_rows.push_str(&format!(
            "<li><a href=\"/items/{}\">{}</a> <small>{}</small></li>",
            esc(&seg(i)),
            esc(i),
            html::time(*last)
        ));
    }
    let body = format!(
        "<h1>Testcase <span class=\"name\">{n}</span></h1><p id=\"rate\">{rate}.</p>\
         <section id=\"outcomes\"><h2>Outcomes per day</h2>{outcomes}\
         <p class=\"legend\"><span class=\"key pass\"></span> passed <span class=\"key fail\"></span> failed or error \
         <span class=\"key other\"></span> other</p></section>\
         <section id=\"durations\"><h2>Median job duration per day</h2>{dur}</section>\
         <section id=\"failures\"><h2>Recent failures</h2>{failed}</section>\
         <section id=\"items\"><h2>Items it ran on</h2><ul class=\"items\">{item_rows}</ul></section>\
         <p><a href=\"/api/v2.0/testcases/{nu}\">This testcase as JSON</a></p>",
        n = esc(&name),
        nu = esc(&seg(&name)),
        outcomes = plot::stacked("Results per day", &stacks, "results"),
        dur = plot::line("Median duration per day", &durations, "s"),
        failed = results_table(&failed, true),
    );
    Ok(Page {
        title: &format!("Testcase {name}"),
        nav: Nav::Jobs,
        body,
        who: &who,
    }
    .render())
}
