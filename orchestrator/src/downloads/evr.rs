//! RPM version comparison and N(E)VR parsing, as rpm and libtaskotron do
//! them: "the latest stable build" must mean what `rpm -U` would mean.

use std::cmp::Ordering;

/// A build's name, epoch, version and release. The epoch may be written
/// `E:N-V-R` or `N-E:V-R`; Koji's NVRs never carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nevr {
    pub name: String,
    pub epoch: u64,
    pub version: String,
    pub release: String,
}

impl Nevr {
    /// `None` for anything that is not `name-version-release` with three
    /// non-empty parts (and a numeric epoch, if any).
    pub fn parse(s: &str) -> Option<Nevr> {
        let mut parts = s.rsplitn(3, '-');
        let (release, version, name) = (parts.next()?, parts.next()?, parts.next()?);
        let (epoch, name, version) = match (name.split_once(':'), version.split_once(':')) {
            (Some((e, n)), None) => (Some(e), n, version),
            (None, Some((e, v))) => (Some(e), name, v),
            (None, None) => (None, name, version),
            (Some(_), Some(_)) => return None,
        };
        let epoch = match epoch {
            Some(e) => e.parse().ok()?,
            None => 0,
        };
        if [name, version, release].iter().any(|p| p.is_empty()) {
            return None;
        }
        Some(Nevr {
            name: name.into(),
            epoch,
            version: version.into(),
            release: release.into(),
        })
    }

    /// Without the epoch, as Koji names builds.
    pub fn nvr(&self) -> String {
        format!("{}-{}-{}", self.name, self.version, self.release)
    }

    pub fn cmp_evr(&self, other: &Nevr) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| rpmvercmp(&self.version, &other.version))
            .then_with(|| rpmvercmp(&self.release, &other.release))
    }
}

/// rpm's `rpmvercmp`: alternating runs of digits and letters compared
/// piecewise (numbers numerically, a number beating letters), other
/// characters only separating; `~` sorts before everything, even the end,
/// and `^` after the end but before anything else.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while i < a.len() && sep(a[i]) {
            i += 1;
        }
        while j < b.len() && sep(b[j]) {
            j += 1;
        }
        let (x, y) = (a.get(i).copied(), b.get(j).copied());
        if x == Some(b'~') || y == Some(b'~') {
            if x != Some(b'~') {
                return Ordering::Greater;
            }
            if y != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if x == Some(b'^') || y == Some(b'^') {
            return match (x, y) {
                (None, _) => Ordering::Less,
                (_, None) => Ordering::Greater,
                (Some(b'^'), Some(b'^')) => {
                    i += 1;
                    j += 1;
                    continue;
                }
                (Some(b'^'), _) => Ordering::Less,
                _ => Ordering::Greater,
            };
        }
        let (Some(x), Some(_)) = (x, y) else {
            return match (x, y) {
                (None, None) => Ordering::Equal,
                (Some(_), None) => Ordering::Greater,
                _ => Ordering::Less,
            };
        };
        let numeric = x.is_ascii_digit();
        let run = |s: &[u8], k: usize| {
            let n = s[k..]
                .iter()
                .take_while(|c| {
                    if numeric {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_alphabetic()
                    }
                })
                .count();
            k + n
        };
        let (ni, nj) = (run(a, i), run(b, j));
        let (sa, sb) = (&a[i..ni], &b[j..nj]);
        (i, j) = (ni, nj);
        if sb.is_empty() {
            // Digits against letters: the number is newer.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let ord = if numeric {
            let strip =
                |s: &[u8]| -> Vec<u8> { s.iter().skip_while(|&&c| c == b'0').copied().collect() };
            let (sa, sb) = (strip(sa), strip(sb));
            sa.len().cmp(&sb.len()).then_with(|| sa.cmp(&sb))
        } else {
            sa.cmp(sb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};

    #[test]
    fn rpmvercmp_matches_rpm() {
        // From rpm's own test suite (tests/rpmvercmp.at).
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("2.0.1", "2.0", Greater),
            ("5.5p1", "5.5p2", Less),
            ("5.5p10", "5.5p1", Greater),
            ("10xyz", "10.1xyz", Less),
            ("xyz10", "xyz10.1", Less),
            ("xyz.4", "8", Less),
            ("5.5p1", "5.5.p1", Equal),
            ("10b2", "10a1", Greater),
            ("1.0a", "1.0aa", Less),
            ("1b.fc17", "1.fc17", Less),
            ("6.0.rc1", "6.0", Greater),
            ("010", "10", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0~rc1~git123", "1.0~rc1", Less),
            ("1.0^", "1.0", Greater),
            ("1.0^git1", "1.0", Greater),
            ("1.0^git1", "1.01", Less),
            ("1.0^git1", "1.0^git2", Less),
            ("1.0^git1~pre", "1.0^git1", Less),
            ("1.0~rc1^git1", "1.0~rc1", Greater),
            ("1.0^git1", "1.0~rc1", Greater),
            ("1.1", "1.0", Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(rpmvercmp(a, b), want, "{a} vs {b}");
            assert_eq!(rpmvercmp(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn parses_nevr_forms() {
        let p = |s| Nevr::parse(s);
        let n = p("hello-1.0-1.fc41").expect("nvr");
        assert_eq!(
            (n.name.as_str(), n.epoch, n.nvr()),
            ("hello", 0, "hello-1.0-1.fc41".into())
        );
        assert_eq!(
            p("libfoo-1:0.5-3.fc41").map(|n| (n.epoch, n.nvr())),
            Some((1, "libfoo-0.5-3.fc41".into()))
        );
        assert_eq!(p("1:libfoo-0.5-3.fc41").map(|n| n.epoch), Some(1));
        assert_eq!(
            p("python-foo-bar-2-1").map(|n| n.name),
            Some("python-foo-bar".into())
        );
        for bad in [
            "hello",
            "hello-1.0",
            "-1.0-1",
            "hello--1",
            "hello-1.0-",
            "x:hello-1-1",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
        let older = p("libfoo-0.9-1.fc41").expect("nvr");
        assert_eq!(
            p("libfoo-1:0.5-3.fc41").expect("nvr").cmp_evr(&older),
            Greater
        );
    }
}
