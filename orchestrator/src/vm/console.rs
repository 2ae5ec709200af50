//! Reading the serial console log a domain writes.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use ferrotron_imagebuilder::guest::FATAL_PREFIX;

/// The last `n` non-empty lines of the console log, without control
/// characters; empty when the file is missing or unreadable.
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    const WINDOW: u64 = 64 * 1024;
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if f.seek(SeekFrom::Start(len.saturating_sub(WINDOW))).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<String> = text.lines().map(clean).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// What a guest's console has said about its boot so far (the console
/// lines of the guest contract, docs/images.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// Nothing decisive yet.
    Nothing,
    /// The line the watch waits for (`ferrotron: ready`, or the template's
    /// `ferrotron: waiting for the job`).
    Awaited,
    /// The guest's fatal line (`ferrotron: fatal: <reason>`), as printed,
    /// without control characters: it cannot work and powers off.
    Fatal(String),
}

/// Follows a console log as it grows, looking for one awaited line and for
/// the guest's fatal line. Only whole lines count (a line is read once its
/// newline has arrived), each when it starts with what is looked for.
///
/// The first decisive line is the answer, and it is final: a fatal line
/// after the awaited one is ignored. The awaited line is the boot's last
/// word in the contract (`ready` is always the last line), so whatever
/// follows it is not the boot's; and a guest that printed `ready` and then
/// broke still has its SSH wait (or its death) to show it.
pub struct Watch {
    path: std::path::PathBuf,
    offset: u64,
    pending: Vec<u8>,
    needle: &'static str,
    said: Said,
}

impl Watch {
    pub fn new(path: &Path, needle: &'static str) -> Watch {
        Watch {
            path: path.to_path_buf(),
            offset: 0,
            pending: Vec::new(),
            needle,
            said: Said::Nothing,
        }
    }

    /// Reads what was appended since the last call (nothing once decided)
    /// and returns what the console has said so far. A missing or
    /// unreadable file has said nothing yet.
    pub fn poll(&mut self) -> Said {
        if self.said == Said::Nothing {
            let appended = self.read_appended();
            self.pending.extend_from_slice(&appended);
            self.said = self.decide();
        }
        self.said.clone()
    }

    fn read_appended(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return buf;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return buf;
        }
        if let Ok(n) = f.read_to_end(&mut buf) {
            self.offset += n as u64;
        }
        buf
    }

    /// The first decisive whole line of `pending`; keeps only the
    /// unfinished last line.
    fn decide(&mut self) -> Said {
        let Some(end) = self.pending.iter().rposition(|b| *b == b'\n') else {
            return Said::Nothing;
        };
        let said = self.pending[..end]
            .split(|b| *b == b'\n')
            .map(|l| clean(&without_csi(&String::from_utf8_lossy(l))))
            .find_map(|l| {
                let l = l.trim_start();
                if l.starts_with(self.needle) {
                    Some(Said::Awaited)
                } else if l.starts_with(FATAL_PREFIX) {
                    Some(Said::Fatal(l.to_string()))
                } else {
                    None
                }
            })
            .unwrap_or(Said::Nothing);
        self.pending.drain(..=end);
        said
    }
}

/// A line without terminal control sequences (`ESC [ ... final byte`),
/// which would hide a line's start from the watch.
fn without_csi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            // Parameters and intermediates, then one final byte in @..~.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A console line without control characters (tabs kept) or trailing
/// white space.
fn clean(line: &str) -> String {
    line.chars()
        .filter(|c| !c.is_control() || *c == '\t')
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// Lines that say what went wrong, whatever follows them (a panic's stack
/// trace can push the panic line itself out of the tail).
const NOTABLE: &[&str] = &[
    "Kernel panic",
    FATAL_PREFIX,
    // What images built before the fatal line print when the initramfs fails.
    "ferrotron-initrd: error",
    "ferrotron: error",
    "BUG:",
    "Oops:",
    "Out of memory",
];

/// The first notable line of the console's last 64 KiB.
pub fn notable(path: &Path) -> Option<String> {
    tail(path, usize::MAX)
        .into_iter()
        .find(|l| NOTABLE.iter().any(|n| l.contains(n)))
}

/// `tail` formatted for an error message: the notable line first, then
/// indented lines after a header.
pub fn excerpt(path: &Path, n: usize) -> String {
    let lines = tail(path, n);
    if lines.is_empty() {
        return format!("(console log {} is empty)", path.display());
    }
    let mut s = match notable(path) {
        Some(line) if !lines.contains(&line) => format!("the console says: {line}; "),
        _ => String::new(),
    };
    s.push_str(&format!(
        "last {} lines of the console ({}):",
        lines.len(),
        path.display()
    ));
    for l in lines {
        s.push_str("\n    ");
        s.push_str(&l);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_lines_and_drops_control_chars() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("console.log");
        std::fs::write(&p, "one\r\n\x1b[0mtwo\r\n\r\nthree\n").expect("write");
        assert_eq!(tail(&p, 2), vec!["[0mtwo", "three"]);
        assert!(tail(&dir.path().join("missing"), 5).is_empty());
        assert!(excerpt(&p, 1).ends_with("\n    three"));
        std::fs::write(
            &p,
            "boot\n[ 1.0] Kernel panic - not syncing: sysrq\n trace 1\n trace 2\n",
        )
        .expect("write");
        let e = excerpt(&p, 2);
        assert!(
            e.starts_with(
                "the console says: [ 1.0] Kernel panic - not syncing: sysrq; last 2 lines"
            ),
            "{e}"
        );
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        std::io::Write::write_all(&mut f, text.as_bytes()).expect("append");
    }

    #[test]
    fn watch_sees_the_awaited_line_once_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let grow = dir.path().join("growing.log");
        let mut w = Watch::new(&grow, "ferrotron: ready");
        assert_eq!(w.poll(), Said::Nothing, "no file yet");
        append(&grow, "one\nferrotron: rea");
        assert_eq!(w.poll(), Said::Nothing, "half a line");
        append(&grow, "dy\r\n");
        assert_eq!(w.poll(), Said::Awaited);
        assert_eq!(w.poll(), Said::Awaited, "the answer is final");
    }

    #[test]
    fn watch_sees_a_fatal_line_in_a_growing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let grow = dir.path().join("growing.log");
        let mut w = Watch::new(&grow, "ferrotron: ready");
        append(&grow, "[    1.2] virtio_net virtio0: up\n\x1b[0m");
        assert_eq!(w.poll(), Said::Nothing);
        // A partial fatal line is not read before its newline: the reason
        // would be cut.
        append(&grow, "ferrotron: fatal: no net");
        assert_eq!(w.poll(), Said::Nothing);
        append(
            &grow,
            "work: disabled by ferrotron.net=off\r\nferrotron: ready\n",
        );
        let fatal =
            Said::Fatal("ferrotron: fatal: no network: disabled by ferrotron.net=off".to_string());
        assert_eq!(w.poll(), fatal, "the first decisive line wins");
        append(&grow, "ferrotron: ready\n");
        assert_eq!(w.poll(), fatal, "nothing changes a fatal answer");
    }

    #[test]
    fn watch_ignores_a_fatal_line_after_the_awaited_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let grow = dir.path().join("growing.log");
        let mut w = Watch::new(&grow, "ferrotron: waiting for the job");
        append(
            &grow,
            "ferrotron: waiting for the job on ttyS1\nferrotron: fatal: no agent: x\n",
        );
        assert_eq!(w.poll(), Said::Awaited, "same read");
        let mut w = Watch::new(&grow, "ferrotron: waiting for the job");
        std::fs::write(&grow, "ferrotron: waiting for the job on ttyS1\n").expect("write");
        assert_eq!(w.poll(), Said::Awaited);
        append(&grow, "ferrotron: fatal: no agent: x\n");
        assert_eq!(w.poll(), Said::Awaited, "later read");
    }

    #[test]
    fn watch_takes_fatal_only_at_the_start_of_a_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("console.log");
        let mut w = Watch::new(&p, "ferrotron: ready");
        append(&p, "Kernel command line: x=ferrotron: fatal: no\n");
        assert_eq!(w.poll(), Said::Nothing);
        append(
            &p,
            "  \rferrotron: fatal: no root disk: /dev/vdz did not appear\n",
        );
        assert_eq!(
            w.poll(),
            Said::Fatal("ferrotron: fatal: no root disk: /dev/vdz did not appear".into())
        );
    }
}
