//! Reading the serial console log a domain writes.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

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
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            l.chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .collect::<String>()
        })
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// Follows a console log as it grows, looking for one line.
pub struct Watch {
    path: std::path::PathBuf,
    offset: u64,
    pending: Vec<u8>,
    needle: &'static str,
}

impl Watch {
    pub fn new(path: &Path, needle: &'static str) -> Watch {
        Watch {
            path: path.to_path_buf(),
            offset: 0,
            pending: Vec::new(),
            needle,
        }
    }

    /// Reads what was appended since the last call; true once a line
    /// starting with the needle has been seen.
    pub fn seen(&mut self) -> bool {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return false;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return false;
        }
        let mut buf = Vec::new();
        let Ok(n) = f.read_to_end(&mut buf) else {
            return false;
        };
        self.offset += n as u64;
        self.pending.extend_from_slice(&buf);
        let found = self.pending.split(|b| *b == b'\n').any(|l| {
            String::from_utf8_lossy(l)
                .trim_start()
                .starts_with(self.needle)
        });
        // Keep only the unfinished last line.
        if let Some(i) = self.pending.iter().rposition(|b| *b == b'\n') {
            self.pending.drain(..=i);
        }
        found
    }
}

/// Lines that say what went wrong, whatever follows them (a panic's stack
/// trace can push the panic line itself out of the tail).
const NOTABLE: &[&str] = &[
    "Kernel panic",
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
        let grow = dir.path().join("growing.log");
        let mut w = Watch::new(&grow, "ferrotron: ready");
        assert!(!w.seen());
        std::fs::write(&grow, "one\nferrotron: rea").expect("write");
        assert!(!w.seen());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&grow)
            .expect("open");
        std::io::Write::write_all(&mut f, b"dy\n").expect("append");
        assert!(w.seen());
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
}
