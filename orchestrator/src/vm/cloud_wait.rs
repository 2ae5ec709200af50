//! Warm start for imported cloud images: the guest-side waiter.
//!
//! A cloud image has no `ferrotron.key=wait` boot script, so its template
//! boots cold with a seed holding a key of the template's own, and the
//! host then installs, over SSH, a small script and a systemd unit
//! (`ferrotron-wait.service`, never enabled: started once) and starts it.
//! The waiter waits for cloud-init's last stage, stops sshd, empties the login user's `authorized_keys`,
//! removes the host keys, prints `ferrotron: waiting for the job on ttyS1`
//! and blocks reading ttyS1: the host saves the VM there, as for built
//! images. A job's VM restored from it gets the same line as theirs (key
//! blob, epoch seconds, random hex; docs/warm-start.md); the waiter
//! authorizes the key for the image's user, sets the clock, mixes the
//! bytes into the entropy pool and reseeds the kernel's CRNG from it (the
//! copies share its state), makes a fresh ed25519 host key, starts
//! sshd and prints `ferrotron: ready`.

use std::time::{Duration, Instant};

use crate::cancel::Cancel;
use crate::images::ResolvedImage;
use crate::ssh::session::{Exit, Poll, SshError};
use crate::ssh::wait::{wait_for_banner, WaitFailure, SLOW_BANNER_PATIENCE};
use crate::ssh::{GuestSsh, KeyPair};
use crate::util::shell_quote;

pub const WAITER: &str = "usr/libexec/ferrotron/cloud-wait";
pub const UNIT: &str = "etc/systemd/system/ferrotron-wait.service";

#[derive(Debug, thiserror::Error)]
pub enum CloudWaitError {
    #[error("no SSH banner from the template VM within {secs} s")]
    Deadline { secs: u64 },
    #[error("the template VM stopped before its SSH server answered")]
    Died,
    #[error("interrupted by {0} while the warm-start template was prepared")]
    Cancelled(String),
    #[error("cannot log in to the template VM")]
    Ssh(#[source] SshError),
    #[error("installing the warm-start waiter failed ({exit}): {stderr}")]
    Install { exit: String, stderr: String },
    #[error("cannot pack the warm-start waiter")]
    Pack(#[source] std::io::Error),
}

/// The waiter script for an image whose jobs log in as `user`.
pub fn waiter_script(user: &str) -> String {
    format!(
        r#"#!/bin/sh
# Ferrotron's warm-start waiter for cloud images (orchestrator/src/vm/cloud_wait.rs).
user={user}
# Each line on a line of its own (a login prompt may be on the console).
say() {{ printf '\nferrotron: %s\n' "$*" >/dev/ttyS0; }}
# Saved after cloud-init's first boot: its last stage has finished.
i=0
while [ ! -e /var/lib/cloud/instance/boot-finished ] && [ $i -lt 1200 ]; do
	sleep 0.5
	i=$((i + 1))
done
systemctl stop ssh.service 2>/dev/null
systemctl stop sshd.service 2>/dev/null
home=$(getent passwd "$user" | cut -d: -f6)
keys=$home/.ssh/authorized_keys
: >"$keys"
rm -f /etc/ssh/ssh_host_*
stty -F /dev/ttyS1 raw -echo 2>/dev/null
sync
say "waiting for the job on ttyS1"
job=
while [ -z "$job" ]; do
	IFS= read -r job </dev/ttyS1 || sleep 0.1
done
set -- $job
case "$1" in
*[!A-Za-z0-9+/=]* | "") say "error: bad key line on ttyS1" ;;
*) printf 'ssh-ed25519 %s ferrotron-job\n' "$1" >"$keys" ;;
esac
case "$2" in
*[!0-9]* | "") say "error: bad clock on ttyS1" ;;
*) date -u -s "@$2" >/dev/null || say "error: cannot set the clock" ;;
esac
[ -n "$3" ] && echo "$3" >/dev/urandom
# Every restored copy starts from the same CRNG state, and a write to
# /dev/urandom only feeds the input pool: reseed (RNDRESEEDCRNG) so that
# no two jobs get the same host key. Python is there for cloud-init.
python3 -c 'import fcntl, os; fcntl.ioctl(os.open("/dev/urandom", os.O_WRONLY), 0x5207)' ||
	say "error: cannot reseed the kernel's random number generator"
say "job received"
ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key || say "error: ssh-keygen failed"
say "host key $(cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub)"
systemctl start ssh.service 2>/dev/null || systemctl start sshd.service || say "error: sshd did not start"
say "ready"
"#,
        user = shell_quote(user)
    )
}

pub const UNIT_TEXT: &str = "[Unit]
Description=Ferrotron warm start: wait for the job on ttyS1

[Service]
Type=simple
ExecStart=/usr/libexec/ferrotron/cloud-wait
";

/// What the template key must cover: a new waiter makes a new template.
pub fn fingerprint(image: &ResolvedImage) -> String {
    format!("{}{UNIT_TEXT}", waiter_script(&image.user))
}

/// Waits for the template's SSH server, installs the waiter and starts it;
/// returns once the session is closed (the waiter then stops sshd).
pub fn install(
    image: &ResolvedImage,
    port: u16,
    keys: &KeyPair,
    deadline: Duration,
    cancel: &Cancel,
    mut running: impl FnMut() -> bool,
) -> Result<(), CloudWaitError> {
    let until = Instant::now() + deadline;
    let mut looks = 0u32;
    let stream = wait_for_banner(port, until, SLOW_BANNER_PATIENCE, || {
        looks += 1;
        if cancel.is_cancelled() {
            crate::ssh::wait::Guest::Failed(WaitFailure::Cancelled)
        } else if looks.is_multiple_of(50) && !running() {
            crate::ssh::wait::Guest::Failed(WaitFailure::Died)
        } else {
            crate::ssh::wait::Guest::Booting
        }
    })
    .map_err(|f| match f {
        WaitFailure::Cancelled => CloudWaitError::Cancelled(cancel.reason()),
        WaitFailure::Died | WaitFailure::Fatal(_) => CloudWaitError::Died,
        WaitFailure::Deadline => CloudWaitError::Deadline {
            secs: deadline.as_secs(),
        },
    })?;
    let ssh = GuestSsh::handshake(stream, port, keys, &image.user, Duration::from_secs(60))
        .map_err(CloudWaitError::Ssh)?;
    let tarball = pack(image).map_err(CloudWaitError::Pack)?;
    let command = image.as_root(
        "tar -x -o -f - -C / && chmod 0755 /usr/libexec/ferrotron/cloud-wait && \
         systemctl daemon-reload && systemctl start --no-block ferrotron-wait.service",
    );
    let (exit, stderr) = ssh
        .stream(&command, &tarball, |_| {}, || Poll::Continue)
        .map_err(CloudWaitError::Ssh)?;
    if exit != Exit::Status(0) {
        return Err(CloudWaitError::Install {
            exit: exit.to_string(),
            stderr: stderr.trim().to_string(),
        });
    }
    Ok(())
}

/// The waiter and its unit as a tar archive to unpack at `/`.
fn pack(image: &ResolvedImage) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, text, mode) in [
        (WAITER, waiter_script(&image.user), 0o755),
        (UNIT, UNIT_TEXT.to_string(), 0o644),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(text.len() as u64);
        h.set_mode(mode);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append_data(&mut h, path, text.as_bytes())?;
    }
    b.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_is_quoted_and_the_line_checked() {
        let s = waiter_script("fedora");
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains("\nuser=fedora\n"));
        assert!(s.contains("*[!A-Za-z0-9+/=]*"));
        let odd = waiter_script("a'b");
        assert!(odd.contains("\nuser='a'\\''b'\n"), "{odd}");
    }
}
