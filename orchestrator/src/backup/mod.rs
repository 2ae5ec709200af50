//! Backups of an installation and their restore (`ferrotron backup DEST`,
//! `ferrotron restore SRC`).
//!
//! A backup is a folder: `backup.json` (the [`Manifest`]: what is in it,
//! every file with its size and sha256) and the files it lists:
//! - `database/`: the results store, consistent as of one commit while
//!   the service runs: SQLite through `VACUUM INTO` (one read
//!   transaction), PostgreSQL through `pg_dump` (its custom format, one
//!   snapshot);
//! - `data/jobs/<job>/`, `data/artifacts/<job>/`: the folders of the jobs
//!   the database holds (logs, console, artifacts; not the per-job SSH
//!   keys of VMs that no longer exist);
//! - `data/cache/`: the git cache's list of repositories and origins (the
//!   mirrors themselves are cloned again);
//! - `images/`: the images' manifests (`--include-images`: the images);
//! - `config/<n>/`: configuration files and folders (default
//!   `/etc/ferrotron`), each with the path it is restored to.
//!
//! A backup is written under a temporary name and renamed when complete;
//! a restore copies everything into a staging folder, checking every
//! checksum, before it puts anything in place, and the database last.

mod copy;
mod manifest;
mod pg;
mod restore;
mod take;

pub use manifest::{DatabaseCopy, Entry, Manifest, ManifestError, MANIFEST};
pub use restore::{restore, RestoreError, RestoreOptions, RestoreSummary};
pub use take::{backup, human_bytes, BackupError, BackupOptions, BackupSummary};
