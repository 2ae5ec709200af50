//! The operators' pages: hosts (capacity, use, idle state, what runs
//! there; idle and resume) and the queue (depth and waiting time over the
//! last day, what waits and why).

use axum::extract::{Path, State};
use axum::response::Response;

use super::html::{self, esc, href};
use super::session::Who;
use super::{see_other, Nav, Page, WebError};
use crate::api::AppState;

fn use_cell(used: u64, of: u64, unit: &str) -> String {
    let share = if of == 0 {
        0.0
    } else {
        used as f64 / of as f64
    };
    format!("{} {used} / {of} {unit}", super::plot::bar(share))
}

pub async fn hosts(State(st): State<AppState>, who: Who) -> Result<Response, WebError> {
    let view = st.app.hosts_view().await?;
    let op = who.is_operator();
    let mut cards = String::new();
    for h in &view.hosts {
        let r = &h.record;
        let state = if !h.live {
            "<span class=\"badge off\">gone</span>"
        } else if h.idle || view.all_idle {
            "<span class=\"badge wait\">idle</span>"
        } else {
            "<span class=\"badge ok\">taking jobs</span>"
        };
        let action = if op {
            let (what, label) = if h.idle {
                ("resume", "Resume")
            } else {
                ("idle", "Idle")
            };
            format!(
                "<form method=\"post\" action=\"/hosts/{}/{what}\" class=\"actions\">\
                 <button type=\"submit\" data-host-action=\"{what}\">{label}</button></form>",
                esc(&html::seg(&r.name))
            )
        } else {
            String::new()
        };
        let mut running = String::new();
        for j in &h.jobs {
            running.push_str(&format!(
                "<li><a href=\"/jobs/{u}\">{id}</a> {b} {t} · {i}</li>",
                u = esc(&j.uuid),
                id = html::short_id(&j.uuid),
                b = html::state_badge(j.state),
                t = esc(&j.formula),
                i = esc(&j.item),
            ));
        }
        for res in &h.reservations {
            running.push_str(&format!(
                "<li>{} <a href=\"/jobs/{}\">{}</a> for {} ({})</li>",
                if res.kind == crate::store::ReservationKind::Hold {
                    "held VM"
                } else {
                    "reservation"
                },
                esc(&res.job),
                esc(&res.id),
                esc(&res.requester),
                esc(res.status()),
            ));
        }
        if running.is_empty() {
            running.push_str("<li class=\"empty\">nothing running</li>");
        }
        cards.push_str(&format!(
            "<article class=\"host\" data-host=\"{n}\"><h2>{n} {state}</h2>{action}\
             <dl class=\"facts\"><dt>vCPUs</dt><dd>{cpu}</dd><dt>Memory</dt><dd>{mem}</dd>\
             <dt>VMs</dt><dd>{vms}</dd><dt>Heartbeat</dt><dd>{hb} UTC</dd><dt>Worker</dt><dd><code>{w}</code></dd></dl>\
             <h3>Running</h3><ul>{running}</ul>\
             <p><a href=\"{jobs}\">Jobs run here</a></p></article>",
            n = esc(&r.name),
            cpu = use_cell(u64::from(r.used.vcpus), u64::from(r.capacity.vcpus), ""),
            mem = use_cell(r.used.memory_mib, r.capacity.memory_mib, "MiB"),
            vms = use_cell(u64::from(r.used.vms), u64::from(r.capacity.max_vms), ""),
            hb = html::time(r.heartbeat),
            w = esc(&r.worker),
            jobs = href("/", &[("host", &r.name)]),
        ));
    }
    if cards.is_empty() {
        cards.push_str("<p class=\"empty\">No host has reported yet: start <code>ferrotron serve</code> on one.</p>");
    }
    let banner = if view.all_idle {
        "<p class=\"warn\">Every host is idle (<code>ferrotron host idle --all</code>); \
         <code>ferrotron host resume --all</code> lifts it.</p>"
    } else {
        ""
    };
    let sign_in = if op {
        String::new()
    } else {
        format!(
            "<p><a href=\"{}\">Sign in</a> with an operator token to idle or resume a host.</p>",
            href("/login", &[("next", "/hosts")])
        )
    };
    Ok(Page {
        title: "Hosts",
        nav: Nav::Hosts,
        body: format!("<h1>Hosts</h1>{banner}{sign_in}<div class=\"cards\">{cards}</div>"),
        who: &who,
    }
    .render())
}

async fn set_idle(st: &AppState, who: &Who, name: &str, idle: bool) -> Result<Response, WebError> {
    let holder = who.operator()?;
    st.app.set_host_idle(name, idle).await?;
    tracing::info!(token = %holder.name, host = %name, idle, "host idle set from the dashboard");
    Ok(see_other("/hosts"))
}

pub async fn idle(
    State(st): State<AppState>,
    who: Who,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    set_idle(&st, &who, &name, true).await
}

pub async fn resume(
    State(st): State<AppState>,
    who: Who,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    set_idle(&st, &who, &name, false).await
}

pub async fn queue(State(st): State<AppState>, who: Who) -> Result<Response, WebError> {
    let view = st.app.queue_view(200).await?;
    let label = |us: i64| {
        crate::store::format_time(us)
            .get(11..16)
            .unwrap_or("")
            .to_string()
    };
    let depth: Vec<(String, Option<f64>)> = view
        .history
        .iter()
        .map(|p| (label(p.at), Some(p.depth as f64)))
        .collect();
    let wait: Vec<(String, Option<f64>)> = view
        .history
        .iter()
        .map(|p| (label(p.at), p.median_wait.map(|w| w as f64 / 1e6)))
        .collect();
    let mut rows = String::new();
    for (w, why) in &view.waiting {
        rows.push_str(&format!(
            "<tr><td><a href=\"/jobs/{u}\">{id}</a></td><td>{t}</td><td>{i}</td><td>{p}</td>\
             <td>{c}</td><td>{a}</td><td class=\"why\">{why}</td></tr>",
            u = esc(&w.uuid),
            id = html::short_id(&w.uuid),
            t = esc(&w.formula),
            i = esc(&w.item),
            p = w.priority,
            c = html::time(w.created_at),
            a = w.attempts,
            why = esc(&why.to_string()),
        ));
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"7\" class=\"empty\">Nothing is waiting.</td></tr>");
    }
    let shown = if view.total > view.waiting.len() as i64 {
        format!(
            "The first {} of {} waiting jobs, in the order they will be taken.",
            view.waiting.len(),
            view.total
        )
    } else {
        format!("{} waiting, in the order they will be taken.", view.total)
    };
    let body = format!(
        "<h1>Queue</h1><p id=\"depth\">{shown}</p>\
         <section><h2>Depth, last 24 hours</h2>{d}</section>\
         <section><h2>Median wait of the jobs that started, last 24 hours</h2>{w}</section>\
         <section><h2>Waiting</h2><div class=\"scroll\"><table class=\"queue\"><thead><tr><th>Job</th>\
         <th>Task</th><th>Item</th><th>Priority</th><th>Queued (UTC)</th><th>Attempts</th><th>Why it waits</th>\
         </tr></thead><tbody>{rows}</tbody></table></div></section>",
        d = super::plot::line("Queued jobs", &depth, "jobs"),
        w = super::plot::line("Median wait", &wait, "s"),
    );
    Ok(Page {
        title: "Queue",
        nav: Nav::Queue,
        body,
        who: &who,
    }
    .render())
}
