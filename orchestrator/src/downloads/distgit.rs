//! The distgit directive (checkb's `distgit_directive.py`): files of a
//! package's dist-git repository at a ref, by Pagure's raw URL.

use std::path::{Component, Path};

use super::{Ctx, DownloadError, Outcome};

pub(super) struct Params<'a> {
    pub package: &'a str,
    pub gitref: &'a str,
    pub namespace: &'a str,
    pub paths: &'a [String],
    pub localpaths: Option<&'a [String]>,
    pub ignore_missing: bool,
}

/// A name below `target_dir`: relative and never climbing out.
fn relative(p: &str) -> Result<&str, DownloadError> {
    let ok = !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    ok.then_some(p)
        .ok_or_else(|| DownloadError::BadPath(p.into()))
}

/// A branch moves, a commit does not: only files at a commit id may be
/// served from the cache.
fn is_commit(gitref: &str) -> bool {
    gitref.len() == 40 && gitref.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(super) fn url(base: &str, p: &Params, path: &str) -> String {
    let seg = crate::util::url_segment;
    let path: Vec<String> = path.split('/').map(seg).collect();
    let (ns, pkg, gitref) = (seg(p.namespace), seg(p.package), seg(p.gitref));
    format!(
        "{}/{ns}/{pkg}/raw/{gitref}/f/{}",
        base.trim_end_matches('/'),
        path.join("/")
    )
}

pub(super) fn fetch(ctx: &Ctx, p: &Params) -> Result<Outcome, DownloadError> {
    let locals = match p.localpaths {
        Some(l) if l.len() != p.paths.len() => {
            return Err(DownloadError::LocalpathsLength {
                paths: p.paths.len(),
                localpaths: l.len(),
            })
        }
        Some(l) => l,
        None => p.paths,
    };
    let (mut out, mut names) = (Outcome::empty(), Vec::new());
    for (path, local) in p.paths.iter().zip(locals) {
        let (path, local) = (relative(path)?, relative(local)?);
        let url = url(&ctx.services.distgit, p, path);
        match ctx.cache.get_fresh(&ctx.http, &url, !is_commit(p.gitref)) {
            Ok(entry) => {
                out.push(local.to_string(), entry);
                names.push(local.to_string());
            }
            Err(e) if e.is_not_found() && p.ignore_missing => {
                (ctx.progress)(&format!(
                    "distgit: {} has no {path} at {}, ignored",
                    p.package, p.gitref
                ));
            }
            Err(e) if e.is_not_found() => {
                let (package, gitref) = (p.package.to_string(), p.gitref.to_string());
                return Err(DownloadError::NoSuchFile {
                    package,
                    gitref,
                    path: path.into(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    (ctx.progress)(&format!(
        "distgit: {} at {}: {} files",
        p.package,
        p.gitref,
        names.len()
    ));
    out.export_names("downloaded_files", &names);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_urls_and_refuses_escapes() {
        let paths = ["tests/tests.yml".to_string()];
        let p = Params {
            package: "hello",
            gitref: "f41",
            namespace: "rpms",
            paths: &paths,
            localpaths: None,
            ignore_missing: false,
        };
        assert_eq!(
            url("https://src.fedoraproject.org/", &p, "tests/a b.yml"),
            "https://src.fedoraproject.org/rpms/hello/raw/f41/f/tests/a%20b.yml"
        );
        for bad in ["", "/etc/passwd", "../x", "a/../../x"] {
            assert!(
                matches!(relative(bad), Err(DownloadError::BadPath(_))),
                "{bad}"
            );
        }
        assert!(relative("tests/./tests.yml").is_ok());
        assert!(is_commit(&"a".repeat(40)) && !is_commit("f41"));
    }
}
