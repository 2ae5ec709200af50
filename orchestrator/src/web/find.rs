//! Search (`/search?q=...`): full-text over job logs, task output and
//! result notes through [`crate::app::App::search`] (the same function as
//! `GET /api/v1/search` and `ferrotron search`), matches highlighted, each
//! linking to its line in the job's file.

use axum::extract::{RawQuery, State};
use axum::response::Response;

use super::html::{self, esc, href, seg};
use super::session::Who;
use super::{param, query_pairs, Nav, Page, WebError};
use crate::api::AppState;
use crate::app::search::{HitKind, SearchArgs, SearchError};
use crate::exit::{ExitStatus, HasExitStatus};
use crate::store::Page as StorePage;

const PER_PAGE: i64 = 50;

pub async fn search(
    State(st): State<AppState>,
    who: Who,
    RawQuery(q): RawQuery,
) -> Result<Response, WebError> {
    let pairs = query_pairs(q.as_deref());
    let text = |k: &str| param(&pairs, k).map(str::to_string);
    let args = SearchArgs {
        query: text("q").unwrap_or_default(),
        job: None,
        testcase: text("testcase"),
        item: text("item"),
        outcome: text("outcome"),
        since: text("since"),
        until: text("until"),
    };
    let page: i64 = param(&pairs, "page")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p >= 0)
        .unwrap_or(0);
    let value = |k: &str| esc(param(&pairs, k).unwrap_or(""));
    let form = format!(
        "<form method=\"get\" action=\"/search\" class=\"filters\" role=\"search\">\
         <label class=\"wide\">Search <input type=\"search\" name=\"q\" id=\"q\" value=\"{q}\" \
         placeholder=\"words, \\\"a phrase\\\", -not\" autofocus></label>\
         {fields}\
         <button type=\"submit\">Search</button></form>",
        q = value("q"),
        fields = super::text_fields(
            &pairs,
            &[
                ("Testcase", "testcase", ""),
                ("Item", "item", ""),
                ("Outcome", "outcome", "FAILED"),
                ("Since", "since", "2024-01-31"),
                ("Until", "until", ""),
            ]
        ),
    );
    let results = if args.query.trim().is_empty() {
        "<p class=\"empty\">Type words to find in job logs, task output and result notes.</p>"
            .to_string()
    } else {
        match st
            .app
            .search(
                &args,
                StorePage {
                    page,
                    limit: PER_PAGE,
                },
            )
            .await
        {
            Ok((hits, more)) => render_hits(&hits, more, page, &pairs),
            Err(e) if e.exit_status() == ExitStatus::BadInput => format!(
                "<p class=\"error\" role=\"alert\">{}</p>",
                esc(&crate::util::full(&e))
            ),
            Err(SearchError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(WebError::Internal(crate::util::full(&e))),
        }
    };
    Ok(Page {
        title: "Search",
        nav: Nav::Search,
        body: format!("<h1>Search</h1>{form}<section id=\"hits\">{results}</section>"),
        who: &who,
    }
    .render())
}

fn render_hits(
    hits: &[crate::app::search::Hit],
    more: bool,
    page: i64,
    pairs: &[(String, String)],
) -> String {
    if hits.is_empty() {
        return "<p class=\"empty\">Nothing matches.</p>".into();
    }
    let mut out = String::from("<ol class=\"hits\">");
    for h in hits {
        let snippet: String = h
            .snippet
            .iter()
            .map(|f| {
                if f.hit {
                    format!("<mark>{}</mark>", esc(&f.text))
                } else {
                    esc(&f.text)
                }
            })
            .collect();
        let (link, place) = match (h.kind, &h.job, &h.file) {
            (HitKind::Log, Some(job), Some(file)) => (
                format!(
                    "/jobs/{}/files/{}#L{}",
                    esc(job),
                    esc(&crate::api::segs(file)),
                    h.line
                ),
                format!("{} line {}", esc(file), h.line),
            ),
            (_, Some(job), _) => (
                format!("/jobs/{}#results", esc(job)),
                format!("result note, line {}", h.line),
            ),
            _ => (esc(&h.link), format!("line {}", h.line)),
        };
        let item = h
            .item
            .as_deref()
            .map(|i| format!(" · <a href=\"/items/{}\">{}</a>", esc(&seg(i)), esc(i)))
            .unwrap_or_default();
        out.push_str(&format!(
            "<li class=\"hit\"><a class=\"where\" href=\"{link}\">{place}</a>{job}{item} · {at}\
             <pre class=\"snippet\">{snippet}</pre></li>",
            job = h
                .job
                .as_deref()
                .map(|j| format!(" · job {}", html::short_id(j)))
                .unwrap_or_default(),
            at = html::time(h.at),
        ));
    }
    out.push_str("</ol>");
    let keep: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(k, v)| k != "page" && !v.is_empty())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut nav = String::new();
    if page > 0 {
        let p = (page - 1).to_string();
        let mut q = keep.clone();
        q.push(("page", &p));
        nav.push_str(&format!(
            "<a href=\"{}\" rel=\"prev\">← Newer</a> ",
            href("/search", &q)
        ));
    }
    if more {
        let p = (page + 1).to_string();
        let mut q = keep.clone();
        q.push(("page", &p));
        nav.push_str(&format!(
            "<a href=\"{}\" rel=\"next\">Older →</a>",
            href("/search", &q)
        ));
    }
    format!("{out}<p class=\"pager\">{nav}</p>")
}
