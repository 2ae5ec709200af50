//! The libvirt domain XML of one job's VM, and the metadata that ties a
//! domain to its job and owning process.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::accel::Resolved;
use super::owner::Owner;

/// XML namespace of Ferrotron's `<metadata>` element.
pub const METADATA_NS: &str = "https://ferrotron.dev/xmlns/job/1";

/// Everything that varies between two job VMs.
#[derive(Debug, Clone)]
pub struct DomainSpec {
    pub name: String,
    pub job_id: String,
    pub owner: Owner,
    pub accel: Resolved,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    /// The job's qcow2 overlay (written by the guest).
    pub overlay: PathBuf,
    /// The overlay's backing chain, nearest first, never written: the
    /// image's disk, or a warm-start template's disk and then the image's.
    pub backing: Vec<PathBuf>,
    /// A second serial port (ttyS1) on a Unix socket QEMU listens on: how a
    /// guest restored from a warm-start template receives its job's key.
    pub control_socket: Option<PathBuf>,
    pub console_log: PathBuf,
    /// Host port on 127.0.0.1 forwarded to the guest's port 22.
    pub ssh_port: u16,
    /// Folder removed with the VM (holds the overlay).
    pub vm_dir: PathBuf,
    /// Boot the disk's own boot loader with this firmware and cloud-init
    /// seed, instead of `kernel`/`initrd`/`cmdline`.
    pub disk_boot: Option<DiskBoot>,
}

/// How a cloud image's VM boots: from its disk, set up by cloud-init.
#[derive(Debug, Clone)]
pub struct DiskBoot {
    pub firmware: Firmware,
    /// The NoCloud seed (`cidata` ISO), attached read-only as `vdb` and
    /// never relabelled (a restored VM shares its template's).
    pub seed: PathBuf,
}

/// Firmware of a VM that boots from its disk.
#[derive(Debug, Clone)]
pub enum Firmware {
    /// libvirt's default, SeaBIOS.
    Bios,
    /// OVMF: its code read-only, its variables copied from `vars_template`
    /// into `nvram` (in the VM folder, removed with it).
    Uefi {
        code: PathBuf,
        vars_template: PathBuf,
        nvram: PathBuf,
    },
}

/// Debian's OVMF (package `ovmf`).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// What the reaper reads back from a domain's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobMetadata {
    pub job_id: String,
    pub owner: Owner,
    pub vm_dir: PathBuf,
}

impl DomainSpec {
    /// The `<metadata>` element content.
    pub fn metadata_xml(&self) -> String {
        format!(
            "<ferrotron:job xmlns:ferrotron='{METADATA_NS}' id='{}' pid='{}' start='{}' vmdir='{}'/>",
            esc(&self.job_id),
            self.owner.pid,
            self.owner.start,
            esc(&self.vm_dir.to_string_lossy())
        )
    }

    /// The full transient-domain XML.
    /// Nested `<backingStore>` elements for the read-only chain, each
    /// marked `relabel='no'`: libvirt must never chown the shared images.
    fn backing_xml(&self) -> String {
        let mut open = String::new();
        let mut close = String::new();
        for (i, disk) in self.backing.iter().enumerate() {
            let pad = "  ".repeat(i + 3);
            let _ = write!(
                open,
                "{pad}<backingStore type='file'>\n{pad}  <format type='qcow2'/>\n\
                 {pad}  <source file='{}'><seclabel model='dac' relabel='no'/></source>\n",
                esc(&disk.to_string_lossy())
            );
            close = format!("{pad}</backingStore>\n{close}");
        }
        let inner = "  ".repeat(self.backing.len() + 3);
        format!("{open}{inner}<backingStore/>\n{close}")
    }

    /// The `<os>` element's boot lines.
    fn os_xml(&self) -> String {
        let p = |p: &PathBuf| esc(&p.to_string_lossy());
        match &self.disk_boot {
            None => format!(
                "    <kernel>{}</kernel>\n    <initrd>{}</initrd>\n    <cmdline>{}</cmdline>\n",
                p(&self.kernel),
                p(&self.initrd),
                esc(&self.cmdline)
            ),
            // The boot order is the root disk's (`<boot order='1'/>`),
            // so the firmware never tries the seed.
            Some(DiskBoot {
                firmware: Firmware::Bios,
                ..
            }) => String::new(),
            Some(DiskBoot {
                firmware:
                    Firmware::Uefi {
                        code,
                        vars_template,
                        nvram,
                    },
                ..
            }) => format!(
                "    <loader readonly='yes' type='pflash'>{}</loader>\n\
                 \x20   <nvram template='{}'>{}</nvram>\n",
                p(code),
                p(vars_template),
                p(nvram)
            ),
        }
    }

    /// The seed disk of a VM that boots from its disk.
    fn seed_xml(&self) -> String {
        match &self.disk_boot {
            None => String::new(),
            Some(d) => format!(
                "    <disk type='file' device='disk'>\n\
                 \x20     <driver name='qemu' type='raw'/>\n\
                 \x20     <source file='{}'><seclabel model='dac' relabel='no'/></source>\n\
                 \x20     <target dev='vdb' bus='virtio'/>\n\
                 \x20     <readonly/>\n\
                 \x20   </disk>\n",
                esc(&d.seed.to_string_lossy())
            ),
        }
    }

    pub fn to_xml(&self) -> String {
        let p = |p: &PathBuf| esc(&p.to_string_lossy());
        let mut x = String::with_capacity(2048);
        let _ = write!(
            x,
            "<domain type='{dtype}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n\
             \x20 <name>{name}</name>\n\
             \x20 <metadata>{meta}</metadata>\n\
             \x20 <memory unit='MiB'>{mem}</memory>\n\
             \x20 <vcpu>{vcpus}</vcpu>\n\
             \x20 <os>\n\
             \x20   <type arch='x86_64' machine='pc'>hvm</type>\n\
             {os}\
             \x20 </os>\n\
             \x20 <features><acpi/></features>\n\
             {cpu}\
             \x20 <clock offset='utc'/>\n\
             \x20 <on_poweroff>destroy</on_poweroff>\n\
             \x20 <on_reboot>destroy</on_reboot>\n\
             \x20 <on_crash>destroy</on_crash>\n\
             \x20 <devices>\n\
             \x20   <disk type='file' device='disk'>\n\
             \x20     <driver name='qemu' type='qcow2' cache='unsafe' discard='unmap'/>\n\
             \x20     <source file='{overlay}'/>\n\
             {backing}\
             \x20     <target dev='vda' bus='virtio'/>\n\
             {boot_order}\
             \x20   </disk>\n\
             {seed}\
             \x20   <serial type='file'><source path='{console}'/><target port='0'/></serial>\n\
             \x20   <console type='file'><source path='{console}'/><target type='serial' port='0'/></console>\n\
             {control}\
             \x20   <controller type='usb' model='none'/>\n\
             \x20   <memballoon model='none'/>\n\
             \x20 </devices>\n\
             \x20 <qemu:commandline>\n\
             \x20   <qemu:arg value='-netdev'/>\n\
             \x20   <qemu:arg value='user,id=fnet0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22'/>\n\
             \x20   <qemu:arg value='-device'/>\n\
             \x20   <qemu:arg value='virtio-net-pci,netdev=fnet0,addr=0x10'/>\n\
             \x20 </qemu:commandline>\n\
             </domain>\n",
            dtype = self.accel.domain_type(),
            name = esc(&self.name),
            meta = self.metadata_xml(),
            mem = self.memory_mib,
            vcpus = self.vcpus,
            os = self.os_xml(),
            seed = self.seed_xml(),
            boot_order = if self.disk_boot.is_some() {
                "      <boot order='1'/>\n"
            } else {
                ""
            },
            cpu = match self.accel {
                Resolved::Kvm => "  <cpu mode='host-passthrough'/>\n",
                Resolved::Tcg => "",
            },
            overlay = p(&self.overlay),
            backing = self.backing_xml(),
            control = match &self.control_socket {
                Some(sock) => format!(
                    "    <serial type='unix'><source mode='bind' path='{}'/><target port='1'/></serial>\n",
                    p(sock)
                ),
                None => String::new(),
            },
            console = p(&self.console_log),
            port = self.ssh_port,
        );
        x
    }
}

impl JobMetadata {
    /// Parses what [`DomainSpec::metadata_xml`] wrote; `None` when the
    /// element is not ours or is damaged.
    pub fn parse(xml: &str) -> Option<JobMetadata> {
        Some(JobMetadata {
            job_id: attr(xml, "id")?,
            owner: Owner {
                pid: attr(xml, "pid")?.parse().ok()?,
                start: attr(xml, "start")?.parse().ok()?,
            },
            vm_dir: PathBuf::from(attr(xml, "vmdir")?),
        })
    }
}

/// Escapes text for XML content and single- or double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

fn unesc(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// Value of attribute `name` in the first element of `xml`.
fn attr(xml: &str, name: &str) -> Option<String> {
    let mut rest = xml;
    loop {
        let i = rest.find(name)?;
        let before = rest[..i].chars().last();
        let after = &rest[i + name.len()..];
        rest = after;
        if !matches!(before, Some(c) if c.is_whitespace()) {
            continue;
        }
        let after = after.trim_start();
        let Some(after) = after.strip_prefix('=') else {
            continue;
        };
        let after = after.trim_start();
        let quote = after.chars().next()?;
        if quote != '\'' && quote != '"' {
            continue;
        }
        let body = &after[1..];
        let end = body.find(quote)?;
        return Some(unesc(&body[..end]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DomainSpec {
        DomainSpec {
            name: "ferrotron-abc".into(),
            job_id: "abc".into(),
            owner: Owner {
                pid: 42,
                start: 4242,
            },
            accel: Resolved::Tcg,
            memory_mib: 256,
            vcpus: 1,
            kernel: "/img/vmlinuz".into(),
            initrd: "/img/initrd.img".into(),
            cmdline: "console=ttyS0 ferrotron.key=AAAA+/=".into(),
            overlay: "/data/vms/it's & <odd>/overlay.qcow2".into(),
            backing: vec!["/img/disk.qcow2".into()],
            control_socket: None,
            console_log: "/data/jobs/abc/console.log".into(),
            ssh_port: 40022,
            vm_dir: "/data/vms/it's & <odd>".into(),
            disk_boot: None,
        }
    }

    #[test]
    fn disk_boot_xml_has_no_kernel_and_attaches_the_seed() {
        let bios = DomainSpec {
            disk_boot: Some(DiskBoot {
                firmware: Firmware::Bios,
                seed: "/data/vms/x/seed.iso".into(),
            }),
            ..spec()
        }
        .to_xml();
        assert!(
            !bios.contains("<kernel>") && !bios.contains("<cmdline>"),
            "{bios}"
        );
        assert!(
            bios.contains("<target dev='vda' bus='virtio'/>\n      <boot order='1'/>"),
            "{bios}"
        );
        assert!(
            bios.contains(
                "<source file='/data/vms/x/seed.iso'><seclabel model='dac' relabel='no'/></source>"
            ),
            "{bios}"
        );
        assert!(
            bios.contains("<target dev='vdb' bus='virtio'/>\n      <readonly/>"),
            "{bios}"
        );
        assert!(!bios.contains("<loader"), "{bios}");
        assert!(bios.contains("restrict=on,hostfwd=tcp:127.0.0.1:40022-:22"));
        let uefi = DomainSpec {
            disk_boot: Some(DiskBoot {
                firmware: Firmware::Uefi {
                    code: OVMF_CODE.into(),
                    vars_template: OVMF_VARS.into(),
                    nvram: "/data/vms/x/nvram.fd".into(),
                },
                seed: "/data/vms/x/seed.iso".into(),
            }),
            ..spec()
        }
        .to_xml();
        assert!(uefi.contains(&format!(
            "<loader readonly='yes' type='pflash'>{OVMF_CODE}</loader>"
        )));
        assert!(uefi.contains(&format!(
            "<nvram template='{OVMF_VARS}'>/data/vms/x/nvram.fd</nvram>"
        )));
        assert!(spec().to_xml().contains("<kernel>/img/vmlinuz</kernel>"));
    }

    #[test]
    fn xml_escapes_paths_and_carries_the_forward() {
        let xml = spec().to_xml();
        assert!(xml.contains("<domain type='qemu'"));
        assert!(xml.contains("it&apos;s &amp; &lt;odd&gt;/overlay.qcow2"));
        assert!(xml.contains("restrict=on,hostfwd=tcp:127.0.0.1:40022-:22"));
        assert!(xml.contains("addr=0x10"));
        assert!(!xml.contains("host-passthrough"));
        let kvm = DomainSpec {
            accel: Resolved::Kvm,
            ..spec()
        }
        .to_xml();
        assert!(kvm.contains("<domain type='kvm'") && kvm.contains("host-passthrough"));
    }

    #[test]
    fn warm_start_xml_chains_the_template_and_adds_the_control_port() {
        let xml = DomainSpec {
            backing: vec!["/t/disk.qcow2".into(), "/img/disk.qcow2".into()],
            control_socket: Some("/data/vms/x/control.sock".into()),
            ..spec()
        }
        .to_xml();
        let t = xml
            .find("<source file='/t/disk.qcow2'>")
            .expect("template in chain");
        let b = xml
            .find("<source file='/img/disk.qcow2'>")
            .expect("base in chain");
        assert!(t < b, "{xml}");
        assert_eq!(xml.matches("<backingStore type='file'>").count(), 2);
        assert_eq!(xml.matches("</backingStore>").count(), 2);
        assert_eq!(xml.matches("relabel='no'").count(), 2);
        assert!(xml.contains(
            "<serial type='unix'><source mode='bind' path='/data/vms/x/control.sock'/><target port='1'/></serial>"
        ));
        assert!(!spec().to_xml().contains("type='unix'"));
    }

    #[test]
    fn metadata_round_trips() {
        let s = spec();
        // libvirt hands the element back with its own quoting and prefix.
        let back = s.metadata_xml().replace('\'', "\"");
        let m = JobMetadata::parse(&back).expect("parse");
        assert_eq!(m.job_id, "abc");
        assert_eq!(
            m.owner,
            Owner {
                pid: 42,
                start: 4242
            }
        );
        assert_eq!(m.vm_dir, PathBuf::from("/data/vms/it's & <odd>"));
        assert_eq!(JobMetadata::parse("<other a='1'/>"), None);
    }
}
