//! The guest side of an image: initramfs `/init`, the boot script, `/etc` files.
//! The contract these implement is documented in `docs/images.md`.

/// Path of the guest agent inside the image.
pub const AGENT_PATH: &str = "/usr/libexec/ferrotron/ferrotron-agent";
/// Path of the boot script inside the image.
pub const BOOT_SCRIPT_PATH: &str = "/etc/ferrotron/boot";
/// Where jobs live inside the guest.
pub const JOBS_DIR: &str = "/var/lib/ferrotron/jobs";
/// The port of the job's package proxy inside the guest: the guest's
/// package manager is configured (`Acquire::http::Proxy`) to fetch through
/// `http://127.0.0.1:8472/`, which a job that installs packages tunnels to
/// the host's proxy (see the orchestrator's `packages` module).
pub const PACKAGE_PROXY_PORT: u16 = 8472;
/// Guest address on QEMU user networking.
pub const GUEST_ADDR: &str = "10.0.2.15/24";
/// Gateway on QEMU user networking.
pub const GATEWAY: &str = "10.0.2.2";

/// The start of the guest's fatal console line, `ferrotron: fatal: <reason>`:
/// the guest cannot do its work (no network, no root disk, no agent), says
/// so in this one line on the console and powers off [`FATAL_GRACE_SECS`]
/// later. Nothing else follows it. See docs/images.md, "Console lines".
pub const FATAL_PREFIX: &str = "ferrotron: fatal: ";
/// The guest's last console line of a good boot: SSH listens.
pub const READY_LINE: &str = "ferrotron: ready";
/// Seconds a guest waits after its fatal line before it powers off, so that
/// the host reads the line while the VM still runs (the host normally
/// destroys it first).
pub const FATAL_GRACE_SECS: u32 = 10;

/// The shell function both guest scripts use to give up: one fatal line on
/// the console, a grace period, power off. It never returns.
fn fatal_function() -> String {
    format!(
        r#"fatal() {{
	echo "{FATAL_PREFIX}$*" >/dev/console
	sleep {FATAL_GRACE_SECS}
	poweroff -f
	exit 1
}}"#
    )
}

/// Directory where the initramfs keeps its modules.
pub const INITRD_MODULE_DIR: &str = "lib/modules";

/// The initramfs `/init` for the given module load order.
pub fn initrd_init(modules: &[String]) -> String {
    let list = modules.join(" ");
    format!(
        r#"#!/bin/sh
# Ferrotron initramfs: load the virtio drivers, mount the root disk, switch to it.
# Any failure is one fatal line on the console, then the VM powers off.
export PATH=/bin
{fatal}
mount -t proc proc /proc || fatal "initramfs: cannot mount /proc"
mount -t sysfs sysfs /sys || fatal "initramfs: cannot mount /sys"
mount -t devtmpfs devtmpfs /dev || fatal "initramfs: cannot mount devtmpfs on /dev"
# Reading /dev/random makes the kernel start generating jitter entropy now, in
# parallel with the rest of the boot: without a hardware RNG (TCG) the SSH host
# key generation would otherwise wait about a second for the crng.
head -c 1 /dev/random >/dev/null 2>&1 &
for m in {list}; do
	insmod /{INITRD_MODULE_DIR}/$m.ko || fatal "initramfs: cannot load kernel module $m"
done
set -f
root=/dev/vda
fstype=ext4
read -r cmdline </proc/cmdline
for arg in $cmdline; do
	case "$arg" in
	root=/dev/*) root=${{arg#root=}} ;;
	rootfstype=*) fstype=${{arg#rootfstype=}} ;;
	esac
done
read -r up _ </proc/uptime
deadline=$((${{up%.*}} + 10))
while [ ! -b "$root" ]; do
	read -r up _ </proc/uptime
	[ "${{up%.*}}" -ge "$deadline" ] && fatal "no root disk: $root did not appear within 10 s"
	usleep 2000
done
mount -t "$fstype" -o rw "$root" /newroot || fatal "no root disk: cannot mount $root ($fstype)"
[ -x /newroot/sbin/init ] || fatal "no root disk: $root has no /sbin/init"
for d in dev proc sys; do
	mount --move /$d /newroot/$d || fatal "initramfs: cannot move /$d to the root disk"
done
exec switch_root /newroot /sbin/init
fatal "initramfs: switch_root failed"
"#,
        fatal = fatal_function()
    )
}

/// The boot script run by busybox init (`::sysinit:`) on the root disk.
pub fn boot_script() -> String {
    format!(
        r#"#!/bin/sh
# Ferrotron guest boot script (run once by init). Every console line starts
# with "ferrotron:" so the orchestrator can quote it; a guest that cannot
# work (no network, no agent) says why in one fatal line and powers off.
# See docs/images.md.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
say() {{ echo "ferrotron: $*" >/dev/console; }}
{fatal}
[ -e /proc/self ] || mount -t proc proc /proc || say "error: cannot mount /proc"
[ -e /sys/class ] || mount -t sysfs sysfs /sys || say "error: cannot mount /sys"
[ -d /dev/pts ] || mkdir /dev/pts
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts || say "error: cannot mount /dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp || say "error: cannot mount /tmp"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run || say "error: cannot mount /run"
read -r h </etc/hostname && echo "$h" >/proc/sys/kernel/hostname
[ -f {AGENT_PATH} ] && [ -x {AGENT_PATH} ] ||
	fatal "no agent: {AGENT_PATH} is missing or not executable"

set -f
key=
net=on
read -r cmdline </proc/cmdline
for arg in $cmdline; do
	case "$arg" in
	ferrotron.key=*) key=${{arg#ferrotron.key=}} ;;
	ferrotron.net=off) net=off ;;
	esac
done
authorize() {{
	umask 077
	echo "ssh-ed25519 $1" >/root/.ssh/authorized_keys ||
		say "error: cannot write /root/.ssh/authorized_keys"
	umask 022
}}
if [ -z "$key" ]; then
	say "error: no ferrotron.key= on the kernel command line"
elif [ "$key" != wait ]; then
	authorize "$key"
fi

ip link set lo up || say "error: cannot bring up lo"
# The host reaches the guest only over the network: without it the guest
# cannot work. ferrotron.net=off takes this path on purpose (for tests).
if [ "$net" = off ]; then
	fatal "no network: disabled by ferrotron.net=off"
elif [ ! -e /sys/class/net/eth0 ]; then
	fatal "no network: interface eth0 not found (virtio_net missing?)"
fi
ip link set eth0 up &&
	ip addr add {GUEST_ADDR} dev eth0 &&
	ip route add default via {GATEWAY} ||
	fatal "no network: cannot configure eth0 ({GUEST_ADDR} via {GATEWAY})"

# Warm-start template (ferrotron.key=wait): the host saves the VM here and
# restores a copy per job, then writes one line on ttyS1: the job's public
# key, the host's clock (epoch seconds) and fresh random bytes (hex) mixed
# into the guest's entropy pool, so no two jobs share keys or randomness.
if [ "$key" = wait ]; then
	stty -F /dev/ttyS1 raw -echo 2>/dev/null
	say "waiting for the job on ttyS1"
	job=
	while [ -z "$job" ]; do
		IFS= read -r job </dev/ttyS1 || {{ say "error: cannot read ttyS1"; usleep 100000; }}
	done
	set -- $job
	case "$1" in
	*[!A-Za-z0-9+/=]* | "") say "error: bad key line on ttyS1" ;;
	*) authorize "$1" ;;
	esac
	case "$2" in
	*[!0-9]* | "") say "error: bad clock on ttyS1" ;;
	*) date -u -s "@$2" >/dev/null || say "error: cannot set the clock" ;;
	esac
	[ -n "$3" ] && echo "$3" >/dev/urandom
	say "job received"
fi

hk=/etc/dropbear/dropbear_ed25519_host_key
if [ ! -s "$hk" ]; then
	out=$(dropbearkey -t ed25519 -f "$hk" 2>&1) || say "error: dropbearkey failed: $out"
else
	out=$(dropbearkey -y -f "$hk" 2>&1) || say "error: dropbearkey -y failed: $out"
fi
case "$out" in
*"ssh-ed25519 "*)
	pub=${{out#*ssh-ed25519 }}
	pub=${{pub%%[[:space:]]*}}
	say "host key ssh-ed25519 $pub"
	;;
*) say "error: no ed25519 host key" ;;
esac
dropbear -s -p 22 -r "$hk" || say "error: dropbear did not start"
# Wait (at most ~2 s) until port 22 listens, so "ready" means ready.
i=0
while [ $i -lt 400 ]; do
	while read -r _ local _ st _; do
		[ "$st" = 0A ] && case "$local" in *:0016) break 2 ;; esac
	done </proc/net/tcp
	usleep 5000
	i=$((i + 1))
done
[ $i -lt 400 ] || say "error: nothing listens on port 22"
say "ready"
"#,
        fatal = fatal_function()
    )
}

/// `/etc/inittab` for busybox init.
pub const INITTAB: &str = "\
::sysinit:/etc/ferrotron/boot
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r
";

/// Small text files of a `kind: unpack` root file system, which has no
/// distribution's own: [`system_files`] and [`contract_files`].
pub fn etc_files(hostname: &str) -> Vec<(&'static str, u32, String)> {
    let mut files = system_files();
    files.extend(contract_files(hostname));
    files
}

/// Accounts, shells and loader paths for an image without a distribution's
/// own (`tiny`). A Debian image keeps Debian's (apt needs its `_apt` user).
pub fn system_files() -> Vec<(&'static str, u32, String)> {
    vec![
        (
            "/etc/passwd",
            0o644,
            "root:x:0:0:root:/root:/bin/sh\n".into(),
        ),
        (
            "/etc/group",
            0o644,
            "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n".into(),
        ),
        ("/etc/shadow", 0o600, "root:*:19000:0:99999:7:::\n".into()),
        ("/etc/shells", 0o644, "/bin/sh\n/bin/ash\n".into()),
        (
            "/etc/nsswitch.conf",
            0o644,
            "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n".into(),
        ),
        (
            "/etc/ld.so.conf",
            0o644,
            "/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n".into(),
        ),
    ]
}

/// The files of the guest contract every image has: host name, hosts,
/// busybox init's inittab and the boot script (path, mode, content).
pub fn contract_files(hostname: &str) -> Vec<(&'static str, u32, String)> {
    vec![
        (
            "/etc/hosts",
            0o644,
            format!("127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost\n"),
        ),
        ("/etc/hostname", 0o644, format!("{hostname}\n")),
        ("/etc/inittab", 0o644, INITTAB.into()),
        (BOOT_SCRIPT_PATH, 0o755, boot_script()),
    ]
}

/// Where an image with apt (`kind: mmdebstrap`) gets Ferrotron's apt settings.
pub const APT_CONF_PATH: &str = "/etc/apt/apt.conf.d/90ferrotron";

/// Ferrotron's apt settings for the guest: everything through the job's
/// package proxy on [`PACKAGE_PROXY_PORT`], no Recommends, no retries (the
/// proxy already retries and a job must not wait), no pseudo-terminal for
/// dpkg (there is none over the agent's pipes); then the recipe's
/// `apt_options`, one per line.
pub fn apt_conf(apt_options: &[String]) -> String {
    let mut text = format!(
        "// Written by the Ferrotron image builder (docs/images.md): the guest's\n\
         // apt reaches its repositories only through the job's package proxy.\n\
         Acquire::http::Proxy \"http://127.0.0.1:{PACKAGE_PROXY_PORT}/\";\n\
         APT::Install-Recommends \"false\";\n\
         Acquire::Retries \"0\";\n\
         Dpkg::Use-Pty \"0\";\n"
    );
    if !apt_options.is_empty() {
        text.push_str("// From the recipe's apt_options:\n");
        for o in apt_options {
            text.push_str(o);
            text.push('\n');
        }
    }
    text
}

/// Directories of the root file system: (path, mode).
pub const ROOT_DIRS: &[(&str, u32)] = &[
    ("/bin", 0o755),
    ("/sbin", 0o755),
    ("/dev", 0o755),
    ("/proc", 0o555),
    ("/sys", 0o555),
    ("/run", 0o755),
    ("/tmp", 0o1777),
    ("/root", 0o700),
    ("/root/.ssh", 0o700),
    ("/etc", 0o755),
    ("/etc/dropbear", 0o700),
    ("/etc/ferrotron", 0o755),
    ("/usr/bin", 0o755),
    ("/usr/sbin", 0o755),
    ("/usr/libexec/ferrotron", 0o755),
    ("/var/log", 0o755),
    ("/var/lib/ferrotron", 0o755),
    (JOBS_DIR, 0o755),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn syntax_ok(script: &str) {
        let out = Command::new("busybox")
            .args(["sh", "-n", "-c", script])
            .output()
            .expect("busybox sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn scripts_parse() {
        syntax_ok(&initrd_init(&["virtio".into(), "virtio_blk".into()]));
        syntax_ok(&boot_script());
    }

    /// In a Debian image `/bin/sh` is dash: the boot script must be POSIX,
    /// and the parts that parse text (the host key line) must work there.
    #[test]
    fn boot_script_works_under_dash() {
        let out = Command::new("dash")
            .args(["-n", "-c", &boot_script()])
            .output()
            .expect("dash (Debian's /bin/sh) on the build host");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The host key extraction, as the boot script does it.
        let start = boot_script()
            .find("case \"$out\" in")
            .expect("host key case");
        let end = boot_script().find("dropbear -s").expect("dropbear");
        let part = &boot_script()[start..end];
        let script = format!(
            "say() {{ echo \"ferrotron: $*\"; }}\n\
             out='Public key portion is:\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK root@debian\nFingerprint: sha1!! 00'\n{part}"
        );
        let out = Command::new("dash")
            .args(["-c", &script])
            .output()
            .expect("dash");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "ferrotron: host key ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK\n"
        );
    }

    #[test]
    fn apt_conf_points_at_the_package_proxy() {
        let conf = apt_conf(&["Acquire::Check-Valid-Until \"false\";".into()]);
        let lines: Vec<&str> = conf.lines().filter(|l| !l.starts_with("//")).collect();
        assert_eq!(
            lines,
            [
                "Acquire::http::Proxy \"http://127.0.0.1:8472/\";",
                "APT::Install-Recommends \"false\";",
                "Acquire::Retries \"0\";",
                "Dpkg::Use-Pty \"0\";",
                "Acquire::Check-Valid-Until \"false\";",
            ]
        );
        assert!(!apt_conf(&[]).contains("recipe"));
    }

    /// The `fatal "..."` calls of a script: the reasons it can give.
    fn fatal_reasons(script: &str) -> Vec<(usize, String)> {
        script
            .match_indices("fatal \"")
            .map(|(at, m)| {
                let rest = &script[at + m.len()..];
                (at, rest[..rest.find('"').unwrap_or(0)].to_string())
            })
            .collect()
    }

    #[test]
    fn fatal_is_one_line_then_power_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("console");
        // The real `sleep` and `poweroff` replaced by functions that log.
        let script = format!(
            "{}\nsleep() {{ echo \"sleep $*\" >>\"$OUT\"; }}\n\
             poweroff() {{ echo \"poweroff $*\" >>\"$OUT\"; }}\n\
             fatal no network: eth0 not found\necho after >>\"$OUT\"\n",
            fatal_function().replace(">/dev/console", ">>\"$OUT\"")
        );
        let run = Command::new("busybox")
            .args(["sh", "-c", &script])
            .env("OUT", &out)
            .output()
            .expect("busybox sh");
        assert_eq!(run.status.code(), Some(1));
        let said = std::fs::read_to_string(&out).expect("console");
        assert_eq!(
            said,
            format!(
                "{FATAL_PREFIX}no network: eth0 not found\nsleep {FATAL_GRACE_SECS}\npoweroff -f\n"
            )
        );
    }

    #[test]
    fn fatal_reasons_are_the_documented_kinds() {
        let kinds = [
            "no network: ",
            "no root disk: ",
            "no agent: ",
            "initramfs: ",
        ];
        let init = initrd_init(&["virtio".into()]);
        let boot = boot_script();
        let mut all: Vec<String> = fatal_reasons(&init).into_iter().map(|r| r.1).collect();
        all.extend(fatal_reasons(&boot).into_iter().map(|r| r.1));
        for kind in &kinds[..3] {
            assert!(
                all.iter().any(|r| r.starts_with(kind)),
                "no {kind}: {all:?}"
            );
        }
        for r in &all {
            assert!(kinds.iter().any(|k| r.starts_with(k)), "{r}");
            assert!(!r.contains('\n'), "{r}");
        }
        // Decided before the guest says it waits (a warm-start template is
        // never saved from a guest that cannot work) or is ready.
        let waiting = boot.find("say \"waiting for the job").expect("waiting");
        for (at, r) in fatal_reasons(&boot) {
            assert!(at < waiting, "{r} comes after the template's wait");
        }
    }

    #[test]
    fn every_console_line_is_prefixed() {
        for line in boot_script().lines() {
            let echoes = line.split_whitespace().any(|w| w == "echo");
            if echoes && !line.contains("authorized_keys") {
                assert!(
                    line.contains("ferrotron: ")
                        || line.contains("/proc/sys/kernel/hostname")
                        || line.contains(">/dev/urandom"),
                    "{line}"
                );
            }
        }
    }
}
