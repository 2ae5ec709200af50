//! The koji directive (checkb's `koji_directive.py` and `koji_utils.py`):
//! a build's RPMs by NVR, a tag's builds, the latest stable build, and
//! build logs.

use std::collections::BTreeSet;

use super::evr::Nevr;
use super::xmlrpc::{self, Value, XmlRpcError};
use super::{human, Ctx, DownloadError, KojiAction, Outcome};

/// checkb's `supported_arches`, what `all` means.
const SUPPORTED_ARCHES: [&str; 2] = ["x86_64", "armhfp"];

/// checkb's `arch_utils.Arches`: a base arch means its concrete ones.
const BASE_ARCHES: [(&str, &[&str]); 2] = [
    ("i386", &["i386", "i486", "i586", "i686"]),
    ("armhfp", &["armhfp", "armv7hl"]),
];

pub(super) struct Params<'a> {
    pub action: KojiAction,
    pub build: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub arch: &'a [String],
    pub arch_exclude: &'a [String],
    pub src: bool,
    pub debuginfo: bool,
    pub build_log: bool,
}

/// The directives' own step: naming arches means their noarch packages too.
pub(super) fn with_noarch(arch: &[String]) -> Vec<String> {
    let mut out = arch.to_vec();
    if !out.is_empty() && !out.iter().any(|a| a == "all" || a == "noarch") {
        out.push("noarch".into());
    }
    out
}

/// checkb's `_compute_arches`: `all` and base arches expanded to the
/// concrete ones Koji stores, `src` only when asked, excludes last.
pub(super) fn compute_arches(arch: &[String], exclude: &[String], src: bool) -> BTreeSet<String> {
    let mut set: BTreeSet<String> = BTreeSet::new();
    for a in arch {
        match a.as_str() {
            "all" => set.extend(
                SUPPORTED_ARCHES
                    .iter()
                    .chain(&["noarch"])
                    .map(|s| s.to_string()),
            ),
            a => {
                set.insert(a.to_string());
            }
        }
    }
    for (base, binary) in BASE_ARCHES {
        if set.contains(base) {
            set.extend(binary.iter().map(|s| s.to_string()));
        }
    }
    if src {
        set.insert("src".into());
    } else {
        set.remove("src");
    }
    for e in exclude {
        set.remove(e);
    }
    set
}

pub(super) fn is_debuginfo(name: &str) -> bool {
    name.ends_with("-debuginfo") || name.ends_with("-debugsource") || name.contains("-debuginfo-")
}

/// The last `.fcNN` of a release, as checkb's `get_dist_tag` finds it with
/// `re.findall(r'\.(fc\d{1,2})\.?')`, trailing-dot consumption included.
pub(super) fn dist_tag(release: &str) -> Option<&str> {
    let b = release.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let (mut i, mut last) = (0, None);
    while i < b.len() {
        if b[i..].starts_with(b".fc") && digit(i + 3) {
            let end = i + 4 + usize::from(digit(i + 4));
            last = release.get(i + 1..end);
            i = end + usize::from(b.get(end) == Some(&b'.'));
        } else {
            i += 1;
        }
    }
    last
}

pub(super) struct Build {
    id: i64,
    package_name: String,
    version: String,
    release: String,
}

impl Build {
    fn dir(&self, packages: &str) -> String {
        let (p, v, r) = (&self.package_name, &self.version, &self.release);
        format!("{}/{p}/{v}/{r}", packages.trim_end_matches('/'))
    }
}

struct Rpm {
    name: String,
    version: String,
    release: String,
    arch: String,
    size: Option<u64>,
}

impl Rpm {
    /// `koji.pathinfo.rpm`, below the build's folder.
    fn file_name(&self) -> String {
        format!(
            "{}-{}-{}.{}.rpm",
            self.name, self.version, self.release, self.arch
        )
    }
}

fn text(v: &Value, method: &'static str, key: &str) -> Result<String, DownloadError> {
    v.get(key)
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| DownloadError::HubAnswer {
            method,
            what: format!("a string `{key}`"),
        })
}

fn list<'v>(v: &'v Value, method: &'static str) -> Result<&'v [Value], DownloadError> {
    v.as_array().ok_or(DownloadError::HubAnswer {
        method,
        what: "a list".into(),
    })
}

pub(super) fn fetch(ctx: &Ctx, p: &Params) -> Result<Outcome, DownloadError> {
    let arches = compute_arches(&with_noarch(p.arch), p.arch_exclude, p.src);
    let hub = xmlrpc::Client {
        http: &ctx.http,
        url: &ctx.services.koji_hub,
    };
    let mut out = Outcome::empty();
    let mut rpms = Vec::new();
    let nvr = match p.action {
        KojiAction::DownloadTag => {
            let tag = p.tag.ok_or(DownloadError::Missing {
                action: "download_tag",
                what: "koji_tag",
            })?;
            let tagged = hub
                .call("listTagged", &[Value::str(tag)])
                .map_err(|e| no_such_tag(tag, e))?;
            let mut nvrs = list(&tagged, "listTagged")?
                .iter()
                .map(|b| text(b, "listTagged", "nvr"))
                .collect::<Result<Vec<_>, _>>()?;
            nvrs.sort();
            (ctx.progress)(&format!("koji: tag {tag}: {} builds", nvrs.len()));
            for nvr in &nvrs {
                download_nvr(ctx, &hub, nvr, &arches, p.debuginfo, &mut out, &mut rpms)?;
            }
            if p.build_log {
                (ctx.progress)("koji: build logs are not supported for download_tag, ignoring");
            }
            out.export_names("downloaded_rpms", &rpms);
            return Ok(out);
        }
        KojiAction::Download => {
            let build = p.build.ok_or(DownloadError::Missing {
                action: "download",
                what: "koji_build",
            })?;
            Nevr::parse(build)
                .ok_or_else(|| DownloadError::BadNvr(build.into()))?
                .nvr()
        }
        KojiAction::DownloadLatestStable => {
            let what = "koji_build";
            let build = p.build.ok_or(DownloadError::Missing {
                action: "download_latest_stable",
                what,
            })?;
            match latest_stable(ctx, &hub, build)? {
                Some(nvr) => nvr,
                None => return Ok(out),
            }
        }
    };
    let found = download_nvr(ctx, &hub, &nvr, &arches, p.debuginfo, &mut out, &mut rpms)?;
    out.export_names("downloaded_rpms", &rpms);
    if p.build_log {
        let (ok, errors) = match found {
            Some((build, rpm_arches)) => {
                build_logs(ctx, &nvr, &build, &rpm_arches, &arches, &mut out)
            }
            None => (Vec::new(), Vec::new()),
        };
        out.export_names("downloaded_logs", &ok);
        out.export_names("log_errors", &errors);
    }
    Ok(out)
}

fn no_such_tag(tag: &str, e: XmlRpcError) -> DownloadError {
    match e {
        XmlRpcError::Fault { .. } if !e.is_infrastructure() => DownloadError::NoSuchTag {
            tag: tag.into(),
            source: e,
        },
        e => DownloadError::Hub(e),
    }
}

/// The highest EVR tagged `fNN-updates` or `fNN` (latest per tag, no
/// inheritance, as checkb asks), `None` when neither has the package.
fn latest_stable(
    ctx: &Ctx,
    hub: &xmlrpc::Client,
    build: &str,
) -> Result<Option<String>, DownloadError> {
    let nevr = Nevr::parse(build).ok_or_else(|| DownloadError::BadNvr(build.into()))?;
    let disttag = dist_tag(&nevr.release).ok_or_else(|| DownloadError::NoDistTag(build.into()))?;
    let base = disttag.replace('c', "");
    let tags = [format!("{base}-updates"), base];
    let kwargs = || {
        Value::kwargs([
            ("package", Value::str(&nevr.name)),
            ("latest", Value::Bool(true)),
        ])
    };
    let calls: Vec<_> = tags
        .iter()
        .map(|t| ("listTagged", vec![Value::str(t), kwargs()]))
        .collect();
    let mut best: Option<Nevr> = None;
    for (answer, tag) in hub.multicall(&calls)?.into_iter().zip(&tags) {
        let answer = answer.map_err(|e| no_such_tag(tag, e))?;
        for b in list(&answer, "listTagged")? {
            let epoch = b.get("epoch").and_then(Value::as_i64).unwrap_or(0);
            let found = Nevr {
                name: text(b, "listTagged", "package_name")?,
                epoch: u64::try_from(epoch).unwrap_or(0),
                version: text(b, "listTagged", "version")?,
                release: text(b, "listTagged", "release")?,
            };
            if best.as_ref().is_none_or(|cur| found.cmp_evr(cur).is_gt()) {
                best = Some(found);
            }
        }
    }
    let [updates, base] = &tags;
    match &best {
        Some(b) => (ctx.progress)(&format!("koji: latest stable {} is {}", nevr.name, b.nvr())),
        None => (ctx.progress)(&format!(
            "koji: no stable build of {} in {updates} or {base}, skipping",
            nevr.name
        )),
    }
    Ok(best.map(|b| b.nvr()))
}

/// checkb's `get_nvr_rpms`: the build's RPMs of `arches` in URL order,
/// into `out`; the build and all its listed arches, for the build logs.
pub(super) fn download_nvr(
    ctx: &Ctx,
    hub: &xmlrpc::Client,
    nvr: &str,
    arches: &BTreeSet<String>,
    debuginfo: bool,
    out: &mut Outcome,
    names: &mut Vec<String>,
) -> Result<Option<(Build, BTreeSet<String>)>, DownloadError> {
    if arches.is_empty() {
        (ctx.progress)(&format!("koji: {nvr}: no arches left to download"));
        return Ok(None);
    }
    let info = hub.call("getBuild", &[Value::str(nvr)])?;
    if info == Value::Nil {
        return Err(DownloadError::NoSuchBuild { nvr: nvr.into() });
    }
    let build = Build {
        id: info
            .get("id")
            .and_then(Value::as_i64)
            .ok_or(DownloadError::HubAnswer {
                method: "getBuild",
                what: "an int `id`".into(),
            })?,
        package_name: text(&info, "getBuild", "package_name")?,
        version: text(&info, "getBuild", "version")?,
        release: text(&info, "getBuild", "release")?,
    };
    let arch_list = Value::Array(arches.iter().map(|a| Value::str(a)).collect());
    let kwargs = Value::kwargs([("buildID", Value::Int(build.id)), ("arches", arch_list)]);
    let listed = hub.call("listRPMs", &[kwargs])?;
    let mut rpms = Vec::new();
    for r in list(&listed, "listRPMs")? {
        rpms.push(Rpm {
            name: text(r, "listRPMs", "name")?,
            version: text(r, "listRPMs", "version")?,
            release: text(r, "listRPMs", "release")?,
            arch: text(r, "listRPMs", "arch")?,
            size: r
                .get("size")
                .and_then(Value::as_i64)
                .and_then(|s| u64::try_from(s).ok()),
        });
    }
    let rpm_arches = rpms.iter().map(|r| r.arch.clone()).collect();
    let dir = build.dir(&ctx.services.koji_packages);
    let mut urls: Vec<_> = rpms
        .iter()
        .filter(|r| debuginfo || !is_debuginfo(&r.name))
        .map(|r| {
            (
                format!("{dir}/{}/{}", r.arch, r.file_name()),
                r.file_name(),
                r.size,
            )
        })
        .collect();
    urls.sort();
    let (mut hits, mut bytes) = (0, 0);
    for (url, name, size) in &urls {
        let entry = ctx.cache.get(&ctx.http, url, *size)?;
        match entry.fetched {
            Some(n) => bytes += n,
            None => hits += 1,
        }
        out.push(name.clone(), entry);
        names.push(name.clone());
    }
    let fetched = urls.len() - hits;
    (ctx.progress)(&format!(
        "koji: {nvr}: {} file{}, {hits} from the cache, {fetched} fetched ({})",
        urls.len(),
        if urls.len() == 1 { "" } else { "s" },
        human(bytes)
    ));
    Ok(Some((build, rpm_arches)))
}

/// checkb's `get_build_log`: one `build.log.<arch>` per requested arch the
/// build has; a log Koji lacks (noarch, cleaned up) is recorded, not fatal.
fn build_logs(
    ctx: &Ctx,
    nvr: &str,
    build: &Build,
    rpm_arches: &BTreeSet<String>,
    arches: &BTreeSet<String>,
    out: &mut Outcome,
) -> (Vec<String>, Vec<String>) {
    let (mut ok, mut errors) = (Vec::new(), Vec::new());
    let dir = build.dir(&ctx.services.koji_packages);
    for arch in arches.intersection(rpm_arches).filter(|a| *a != "src") {
        let url = format!("{dir}/data/logs/{arch}/build.log");
        match ctx.cache.get(&ctx.http, &url, None) {
            Ok(entry) => {
                let name = format!("build.log.{arch}");
                out.push(name.clone(), entry);
                ok.push(name);
            }
            Err(e) => {
                (ctx.progress)(&format!(
                    "koji: {nvr}: no build.log for {arch}: {}",
                    crate::util::full(&e)
                ));
                errors.push(arch.clone());
            }
        }
    }
    (ok, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn arches(arch: &[&str], exclude: &[&str], src: bool) -> Vec<String> {
        compute_arches(&with_noarch(&v(arch)), &v(exclude), src)
            .into_iter()
            .collect()
    }

    #[test]
    fn parses_actions() {
        assert_eq!(
            "download_tag".parse::<KojiAction>().ok(),
            Some(KojiAction::DownloadTag)
        );
        let e = "download_all".parse::<KojiAction>().expect_err("unknown");
        assert!(!e.is_infrastructure() && e.to_string().contains("download_all"));
    }

    #[test]
    fn computes_arches_like_checkb() {
        assert_eq!(arches(&["x86_64"], &[], false), v(&["noarch", "x86_64"]));
        assert_eq!(
            arches(&["i386"], &[], false),
            v(&["i386", "i486", "i586", "i686", "noarch"])
        );
        assert_eq!(
            arches(&["all"], &[], false),
            v(&["armhfp", "armv7hl", "noarch", "x86_64"])
        );
        assert_eq!(
            arches(&["x86_64"], &["noarch"], true),
            v(&["src", "x86_64"])
        );
        assert_eq!(arches(&["src"], &[], false), v(&["noarch"]));
        assert!(arches(&[], &[], false).is_empty());
        assert!(arches(&["noarch"], &["noarch"], false).is_empty());
    }

    #[test]
    fn filters_debuginfo_names() {
        for name in [
            "hello-debuginfo",
            "hello-debugsource",
            "hello-debuginfo-common",
        ] {
            assert!(is_debuginfo(name), "{name}");
        }
        for name in ["hello", "debuginfo-tools", "hello-doc"] {
            assert!(!is_debuginfo(name), "{name}");
        }
    }

    #[test]
    fn finds_the_dist_tag() {
        assert_eq!(dist_tag("1.fc41"), Some("fc41"));
        assert_eq!(dist_tag("0.3.fc9.1"), Some("fc9"));
        assert_eq!(dist_tag("1.gitfc2.fc22abc.fc41"), Some("fc41"));
        assert_eq!(dist_tag("1.fc41.fc42"), Some("fc41"));
        assert_eq!(dist_tag("1.el9"), None);
    }

    #[test]
    fn builds_koji_urls() {
        let b = Build {
            id: 1,
            package_name: "hello".into(),
            version: "1.0".into(),
            release: "1.fc41".into(),
        };
        let r = Rpm {
            name: "hello-doc".into(),
            version: "1.0".into(),
            release: "1.fc41".into(),
            arch: "noarch".into(),
            size: None,
        };
        let dir = b.dir("https://kojipkgs.fedoraproject.org/packages/");
        assert_eq!(
            format!("{dir}/{}/{}", r.arch, r.file_name()),
            "https://kojipkgs.fedoraproject.org/packages/hello/1.0/1.fc41/noarch/hello-doc-1.0-1.fc41.noarch.rpm"
        );
    }
}
