//! Capturing a child's output: pipe readers that cut it into lines, and the
//! bounded tail kept for the result.

use std::io::Read;
use std::sync::mpsc::Sender;
use std::thread;

use crate::protocol::Stream;

/// Longest line sent in an `output` event; longer lines are split.
pub const MAX_LINE: usize = 8 * 1024;

/// How much output (both streams) is kept for a result's details.
pub const TAIL_BYTES: usize = 64 * 1024;

/// What a pipe reader sends to the runner.
#[derive(Debug)]
pub enum Chunk {
    /// A line with its `\n`, or a piece of at most [`MAX_LINE`] bytes.
    Line(Stream, Vec<u8>),
    /// The pipe is closed (or could not be read).
    Eof(Stream),
}

/// Splits a byte stream into lines of at most [`MAX_LINE`] bytes.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Adds bytes; returns the complete lines (each still with its `\n`).
    pub fn push(&mut self, mut data: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        while !data.is_empty() {
            let room = MAX_LINE - self.pending.len();
            let window = &data[..data.len().min(room)];
            if let Some(nl) = window.iter().position(|&b| b == b'\n') {
                self.pending.extend_from_slice(&data[..=nl]);
                lines.push(std::mem::take(&mut self.pending));
                data = &data[nl + 1..];
            } else {
                self.pending.extend_from_slice(window);
                data = &data[window.len()..];
                if self.pending.len() == MAX_LINE {
                    lines.push(self.cut_full());
                }
            }
        }
        lines
    }

    /// What is left when the stream ends.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
    }

    /// Cuts a full buffer before a UTF-8 character that does not fit in
    /// it, keeping the rest for the next line.
    fn cut_full(&mut self) -> Vec<u8> {
        let n = self.pending.len();
        let mut cut = n;
        let mut i = n;
        while i > 0 && n - i < 4 {
            i -= 1;
            let b = self.pending[i];
            if !is_continuation(b) {
                if i > 0 && i + utf8_len(b) > n {
                    cut = i;
                }
                break;
            }
        }
        let rest = self.pending.split_off(cut);
        std::mem::replace(&mut self.pending, rest)
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// Length of the UTF-8 sequence a byte starts (1 if it cannot start one).
fn utf8_len(b: u8) -> usize {
    match b {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

/// Reads a pipe on its own thread until end of file, sending lines.
/// The thread stops early when the receiver is gone.
pub fn spawn_reader<R: Read + Send + 'static>(stream: Stream, mut pipe: R, tx: Sender<Chunk>) {
    thread::spawn(move || {
        let mut splitter = LineSplitter::default();
        let mut buf = vec![0u8; MAX_LINE];
        loop {
            let n = match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            for line in splitter.push(&buf[..n]) {
                if tx.send(Chunk::Line(stream, line)).is_err() {
                    return;
                }
            }
        }
        if let Some(rest) = splitter.finish() {
            let _ = tx.send(Chunk::Line(stream, rest));
        }
        let _ = tx.send(Chunk::Eof(stream));
    });
}

/// Keeps the last `cap` bytes pushed into it.
#[derive(Debug)]
pub struct Tail {
    buf: Vec<u8>,
    cap: usize,
    dropped: u64,
}

impl Tail {
    pub fn new(cap: usize) -> Self {
        Tail {
            buf: Vec::new(),
            cap,
            dropped: 0,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        // Trim in batches so pushing stays linear.
        if self.buf.len() > 2 * self.cap {
            self.trim();
        }
    }

    fn trim(&mut self) {
        if self.buf.len() > self.cap {
            let excess = self.buf.len() - self.cap;
            self.buf.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    /// The last `cap` bytes so far as text (invalid UTF-8 replaced), for
    /// looking at what a command said without ending the tail.
    pub fn text(&self) -> String {
        let from = self.buf.len().saturating_sub(self.cap);
        String::from_utf8_lossy(&self.buf[from..]).into_owned()
    }

    /// The kept bytes as text (invalid UTF-8 replaced). When output was
    /// dropped, a first line says how much, and a character cut in half at
    /// the start is left out.
    pub fn into_string(mut self) -> String {
        self.trim();
        if self.dropped == 0 {
            return String::from_utf8_lossy(&self.buf).into_owned();
        }
        let start = self
            .buf
            .iter()
            .take(3)
            .take_while(|&&b| is_continuation(b))
            .count();
        let dropped = self.dropped + start as u64;
        format!(
            "[... {dropped} bytes of earlier output omitted ...]\n{}",
            String::from_utf8_lossy(&self.buf[start..])
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_pushes() {
        let mut s = LineSplitter::default();
        assert!(s.push(b"ab").is_empty());
        assert_eq!(s.push(b"c\nd\ne"), vec![b"abc\n".to_vec(), b"d\n".to_vec()]);
        assert_eq!(s.finish(), Some(b"e".to_vec()));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn splits_long_lines() {
        let mut s = LineSplitter::default();
        let mut data = vec![b'x'; MAX_LINE * 2 + 10];
        data.push(b'\n');
        let lines = s.push(&data);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(lines[1].len(), MAX_LINE);
        assert_eq!(lines[2].len(), 11);
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn long_lines_are_cut_between_characters() {
        let mut s = LineSplitter::default();
        // One ASCII byte then "é" (2 bytes) repeated: the cut at MAX_LINE
        // would fall inside an "é".
        let text = format!("x{}", "é".repeat(MAX_LINE));
        let lines = s.push(text.as_bytes());
        assert!(!lines.is_empty());
        for line in &lines {
            assert!(std::str::from_utf8(line).is_ok());
            assert!(line.len() <= MAX_LINE);
        }
        let rest = s.finish().unwrap_or_default();
        let joined: Vec<u8> = lines.concat().into_iter().chain(rest).collect();
        assert_eq!(joined, text.as_bytes());
    }

    #[test]
    fn tail_keeps_the_end() {
        let mut t = Tail::new(10);
        for _ in 0..10 {
            t.push(b"0123456789");
        }
        t.push(b"abc");
        let s = t.into_string();
        assert_eq!(
            s,
            "[... 93 bytes of earlier output omitted ...]\n3456789abc"
        );
        let mut t = Tail::new(10);
        t.push(b"short\n");
        assert_eq!(t.into_string(), "short\n");
    }

    #[test]
    fn tail_drops_a_split_character() {
        let mut t = Tail::new(4);
        t.push("aaaé€".as_bytes()); // é = 2 bytes, € = 3 bytes
        assert_eq!(
            t.into_string(),
            "[... 5 bytes of earlier output omitted ...]\n€"
        );
    }
}
