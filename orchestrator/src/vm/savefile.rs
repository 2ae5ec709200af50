//! libvirt's QEMU save-file format, just enough to give one saved guest
//! state a new domain description per job.
//!
//! A save file is a 92-byte header, then `data_len` bytes holding the
//! domain XML (NUL-terminated) and a "cookie" (NUL-terminated, at
//! `cookie_offset`), padded with NULs, then QEMU's migration stream.
//! libvirt refuses to rename a domain through `virDomainRestoreFlags`'s
//! `dxml`, yet every job's VM needs its own name, UUID, overlay and ports: so
//! each job gets its own file, written here, with the template's header,
//! the job's XML, the template's cookie and the template's migration stream
//! (copied in the kernel with `copy_file_range`). Only version 2,
//! uncompressed files are accepted; anything else is an error the caller
//! answers with a cold boot.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 16] = b"LibvirtQemudSave";
const HEADER_LEN: usize = 92;
const VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum SaveFileError {
    #[error("cannot read save file {0}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("cannot write save file {0}")]
    Write(PathBuf, #[source] std::io::Error),
    #[error("{path} is not a libvirt QEMU save file this version understands ({why})")]
    Format { path: PathBuf, why: String },
    #[error("the job's domain XML ({len} bytes) does not fit the {room} bytes of {path}")]
    TooLong {
        len: usize,
        room: usize,
        path: PathBuf,
    },
}

/// The parsed front of a save file.
#[derive(Debug, Clone)]
pub struct SaveHeader {
    raw: [u8; HEADER_LEN],
    data_len: usize,
    pub xml: String,
    cookie: Vec<u8>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

impl SaveHeader {
    pub fn read(path: &Path) -> Result<SaveHeader, SaveFileError> {
        let err = |e| SaveFileError::Read(path.to_path_buf(), e);
        let bad = |why: &str| SaveFileError::Format {
            path: path.to_path_buf(),
            why: why.to_string(),
        };
        let mut f = File::open(path).map_err(err)?;
        let mut raw = [0u8; HEADER_LEN];
        f.read_exact(&mut raw).map_err(err)?;
        if &raw[..16] != MAGIC {
            return Err(bad("bad magic"));
        }
        if u32_at(&raw, 16) != VERSION {
            return Err(bad(&format!("version {}", u32_at(&raw, 16))));
        }
        if u32_at(&raw, 28) != 0 {
            return Err(bad("compressed"));
        }
        let data_len = u32_at(&raw, 20) as usize;
        let cookie_offset = u32_at(&raw, 32) as usize;
        if data_len > 16 << 20 || cookie_offset > data_len {
            return Err(bad("implausible lengths"));
        }
        let mut data = vec![0u8; data_len];
        f.read_exact(&mut data).map_err(err)?;
        let until_nul = |b: &[u8]| b.iter().position(|&c| c == 0).unwrap_or(b.len());
        let xml_bytes = &data[..cookie_offset];
        let xml = String::from_utf8(xml_bytes[..until_nul(xml_bytes)].to_vec())
            .map_err(|_| bad("XML is not UTF-8"))?;
        let cookie_bytes = &data[cookie_offset..];
        let cookie = cookie_bytes[..until_nul(cookie_bytes)].to_vec();
        Ok(SaveHeader {
            raw,
            data_len,
            xml,
            cookie,
        })
    }

    /// Writes `to`: this header with `xml` as the domain description, then
    /// the migration stream of `template` (the file this header came from).
    pub fn write_with_xml(
        &self,
        template: &Path,
        to: &Path,
        xml: &str,
    ) -> Result<(), SaveFileError> {
        let room = self.data_len.saturating_sub(self.cookie.len() + 1);
        let xml_len = xml.len() + 1;
        if xml_len > room {
            return Err(SaveFileError::TooLong {
                len: xml_len,
                room,
                path: template.to_path_buf(),
            });
        }
        let mut data = Vec::with_capacity(self.data_len);
        data.extend_from_slice(xml.as_bytes());
        data.push(0);
        data.extend_from_slice(&self.cookie);
        data.push(0);
        data.resize(self.data_len, 0);
        let mut header = self.raw;
        header[32..36].copy_from_slice(&(xml_len as u32).to_le_bytes());

        let werr = |e| SaveFileError::Write(to.to_path_buf(), e);
        let mut src =
            File::open(template).map_err(|e| SaveFileError::Read(template.to_path_buf(), e))?;
        src.seek(SeekFrom::Start((HEADER_LEN + self.data_len) as u64))
            .map_err(|e| SaveFileError::Read(template.to_path_buf(), e))?;
        let mut out = File::create(to).map_err(werr)?;
        out.write_all(&header).map_err(werr)?;
        out.write_all(&data).map_err(werr)?;
        // File to file: std uses copy_file_range, no copy through user space.
        std::io::copy(&mut src, &mut out).map_err(werr)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(dir: &Path, xml: &str, cookie: &str, stream: &[u8]) -> PathBuf {
        let data_len = 4096usize;
        let mut h = [0u8; HEADER_LEN];
        h[..16].copy_from_slice(MAGIC);
        h[16..20].copy_from_slice(&2u32.to_le_bytes());
        h[20..24].copy_from_slice(&(data_len as u32).to_le_bytes());
        h[24..28].copy_from_slice(&1u32.to_le_bytes());
        h[32..36].copy_from_slice(&((xml.len() + 1) as u32).to_le_bytes());
        let mut data = xml.as_bytes().to_vec();
        data.push(0);
        data.extend_from_slice(cookie.as_bytes());
        data.push(0);
        data.resize(data_len, 0);
        let p = dir.join("t.sav");
        let mut f = File::create(&p).expect("create");
        f.write_all(&h).expect("h");
        f.write_all(&data).expect("d");
        f.write_all(stream).expect("s");
        p
    }

    #[test]
    fn rewrites_the_xml_and_keeps_cookie_and_stream() {
        let dir = tempfile::tempdir().expect("tmp");
        let t = fake(
            dir.path(),
            "<domain>old</domain>",
            "<cookie/>",
            b"QEVM\0\0\0\x03stream",
        );
        let h = SaveHeader::read(&t).expect("read");
        assert_eq!(h.xml, "<domain>old</domain>");
        let job = dir.path().join("job.sav");
        h.write_with_xml(&t, &job, "<domain>a much longer new name</domain>")
            .expect("write");
        let again = SaveHeader::read(&job).expect("reread");
        assert_eq!(again.xml, "<domain>a much longer new name</domain>");
        assert_eq!(again.cookie, b"<cookie/>");
        let bytes = std::fs::read(&job).expect("bytes");
        assert!(bytes.ends_with(b"QEVM\0\0\0\x03stream"));
        assert_eq!(
            bytes.len(),
            std::fs::metadata(&t).expect("m").len() as usize
        );
    }

    #[test]
    fn refuses_other_formats_and_oversized_xml() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("x.sav");
        std::fs::write(&p, [0u8; 200]).expect("w");
        let e = SaveHeader::read(&p).expect_err("bad magic");
        assert!(e.to_string().contains("bad magic"), "{e}");
        let t = fake(dir.path(), "<d/>", "<c/>", b"");
        let h = SaveHeader::read(&t).expect("read");
        let e = h
            .write_with_xml(&t, &dir.path().join("j"), &"x".repeat(5000))
            .expect_err("too long");
        assert!(matches!(e, SaveFileError::TooLong { .. }), "{e}");
    }
}
