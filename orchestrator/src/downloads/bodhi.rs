//! The bodhi directive (checkb's `bodhi_directive.py`): an update's builds,
//! each downloaded as the koji directive would.

use super::koji::{compute_arches, download_nvr, with_noarch};
use super::{http, xmlrpc, Ctx, DownloadError, Outcome};

/// An update's JSON is small; more than this is not Bodhi.
const MAX_ANSWER: u64 = 64 << 20;

#[derive(serde::Deserialize)]
struct Answer {
    update: Update,
}

#[derive(serde::Deserialize)]
struct Update {
    builds: Vec<BuildRef>,
}

#[derive(serde::Deserialize)]
struct BuildRef {
    nvr: String,
}

pub(super) fn fetch(
    ctx: &Ctx,
    update_id: &str,
    arch: &[String],
    src: bool,
) -> Result<Outcome, DownloadError> {
    let base = ctx.services.bodhi.trim_end_matches('/');
    let url = format!("{base}/updates/{}", crate::util::url_segment(update_id));
    let shown = crate::util::redact_url(&url);
    let resp = ctx
        .http
        .get(&url)
        .header("Accept", "application/json")
        .send()
        .map_err(|source| DownloadError::Bodhi {
            url: shown.clone(),
            source,
        })?;
    let status = resp.status().as_u16();
    if status == 404 {
        return Err(DownloadError::NoSuchUpdate(update_id.into()));
    }
    if !resp.status().is_success() {
        return Err(DownloadError::BodhiStatus { url: shown, status });
    }
    let body = http::read_bounded(resp, MAX_ANSWER)
        .map_err(|source| DownloadError::BodhiRead {
            url: shown.clone(),
            source,
        })?
        .ok_or_else(|| DownloadError::BodhiAnswer {
            url: shown.clone(),
            source: None,
        })?;
    let answer: Answer = serde_json::from_slice(&body).map_err(|e| DownloadError::BodhiAnswer {
        url: shown.clone(),
        source: Some(e),
    })?;
    let nvrs: Vec<String> = answer.update.builds.into_iter().map(|b| b.nvr).collect();
    (ctx.progress)(&format!("bodhi: {update_id}: {}", nvrs.join(", ")));
    let arches = compute_arches(&with_noarch(arch), &[], src);
    let hub = xmlrpc::Client {
        http: &ctx.http,
        url: &ctx.services.koji_hub,
    };
    let (mut out, mut names) = (Outcome::empty(), Vec::new());
    for nvr in &nvrs {
        download_nvr(ctx, &hub, nvr, &arches, false, &mut out, &mut names)?;
    }
    out.export_names("downloaded_rpms", &names);
    Ok(out)
}
