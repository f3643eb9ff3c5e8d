//! The QEMU command line for one pinvm run: a `microvm` machine (no firmware tables, no PCI,
//! virtio-mmio devices that QEMU announces on the kernel command line), guest RAM in a shared
//! memfd so pinvm's vhost-user backends map it, the console and the agent channel on two
//! 16550 UARTs whose character devices are Unix sockets pinvm listens on, and a QMP socket for
//! the watchdog. Pure: building the arguments touches nothing.
//!
//! Why each choice (measured with QEMU 7.2, Debian 12):
//! - `acpi=off`: with ACPI, microvm describes its virtio-mmio devices only in ACPI tables,
//!   which the guest (built without ACPI) cannot read; without it QEMU appends
//!   `virtio_mmio.device=...` to the command line itself (`auto-kernel-cmdline=on`).
//! - `-global virtio-mmio.force-legacy=false`: QEMU 7.2's virtio-mmio defaults to the legacy
//!   interface, which vhost-user backends refuse.
//! - `reboot=t` with `-no-reboot`: microvm has no i8042, so a guest reboot must be a triple
//!   fault for QEMU to exit; `panic=-1` reboots at once on a panic.
//! - `x-option-roms=off,rtc=off`: nothing to load, nothing the guest reads.
//! - the DMA device travels as `vhost-user-gpio-device` on QEMU 7.2, which has no generic
//!   vhost-user device: the only frontend with exactly two virtqueues and a configuration
//!   space read from the backend. The guest sees virtio device ID 41 (GPIO) and pinvm's
//!   driver claims that ID as well as its own (the guest has no GPIO driver).

use std::path::{Path, PathBuf};

/// What QEMU runs with; every path is a socket or file pinvm prepared.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// The `qemu-system-x86_64` binary.
    pub binary: PathBuf,
    /// `tcg`, or `kvm` when asked for and usable.
    pub accel: Accel,
    /// bzImage.
    pub kernel: PathBuf,
    /// The initramfs file.
    pub initrd: Option<PathBuf>,
    /// The kernel command line (QEMU appends the virtio-mmio devices).
    pub cmdline: String,
    /// vCPUs.
    pub cpus: u8,
    /// Guest RAM in MiB.
    pub mem_mib: u64,
    /// Console UART (ttyS0) socket.
    pub console: PathBuf,
    /// Agent channel UART (ttyS1) socket.
    pub agent: PathBuf,
    /// QMP socket (QEMU listens).
    pub qmp: PathBuf,
    /// vhost-user sockets of the disks, in order (/dev/vda, /dev/vdb, ...).
    pub disks: Vec<PathBuf>,
    /// vhost-user socket of the DMA device.
    pub dma: Option<PathBuf>,
    /// Which frontend carries the DMA device.
    pub dma_frontend: DmaFrontend,
}

/// QEMU's accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Binary translation: works everywhere, and on kvm_pvm hosts it is the fast choice.
    Tcg,
    /// Hardware KVM.
    Kvm,
}

/// The QEMU device that carries pinvm's DMA device to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaFrontend {
    /// `vhost-user-gpio-device` (QEMU 7.2+): virtio ID 41, two queues, config from us.
    Gpio,
    /// `vhost-user-test-device` (newer QEMU): any virtio ID, queue count and config size.
    Generic {
        /// The device's own virtio ID.
        virtio_id: u32,
        /// Its number of queues.
        queues: u16,
    },
}

/// Kernel command-line words every QEMU run uses (before pinvm's own agent words and the
/// user's `--append`).
pub const BASE_CMDLINE: &str = "console=ttyS0 reboot=t panic=-1 nomodule loglevel=5 \
8250.nr_uarts=2 mitigations=off";

fn chardev(id: &str, path: &Path) -> String {
    format!("socket,id={id},path={}", path.display())
}

/// The argument vector (without the binary).
pub fn args(c: &QemuConfig) -> Vec<String> {
    let mem = format!("{}M", c.mem_mib);
    let mut a: Vec<String> = vec![
        "-M".into(),
        "microvm,x-option-roms=off,rtc=off,isa-serial=on,acpi=off,auto-kernel-cmdline=on,\
         memory-backend=pinvm-ram"
            .into(),
        "-accel".into(),
        match c.accel {
            Accel::Tcg => "tcg".into(),
            Accel::Kvm => "kvm".into(),
        },
        "-cpu".into(),
        match c.accel {
            Accel::Tcg => "max".into(),
            Accel::Kvm => "host".into(),
        },
        "-smp".into(),
        c.cpus.to_string(),
        "-m".into(),
        mem.clone(),
        "-object".into(),
        format!("memory-backend-memfd,id=pinvm-ram,size={mem},share=on"),
        "-global".into(),
        "virtio-mmio.force-legacy=false".into(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
        "-no-reboot".into(),
        "-chardev".into(),
        chardev("pinvm-console", &c.console),
        "-serial".into(),
        "chardev:pinvm-console".into(),
        "-chardev".into(),
        chardev("pinvm-agent", &c.agent),
        "-device".into(),
        "isa-serial,chardev=pinvm-agent,index=1".into(),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", c.qmp.display()),
        "-kernel".into(),
        c.kernel.display().to_string(),
        "-append".into(),
        c.cmdline.clone(),
    ];
    if let Some(i) = &c.initrd {
        a.extend(["-initrd".into(), i.display().to_string()]);
    }
    for (i, d) in c.disks.iter().enumerate() {
        let id = format!("pinvm-disk{i}");
        a.extend(["-chardev".into(), chardev(&id, d)]);
        a.extend(["-device".into(), format!("vhost-user-blk,chardev={id}")]);
    }
    if let Some(d) = &c.dma {
        a.extend(["-chardev".into(), chardev("pinvm-dma", d)]);
        let dev = match c.dma_frontend {
            DmaFrontend::Gpio => "vhost-user-gpio-device,chardev=pinvm-dma".to_string(),
            DmaFrontend::Generic { virtio_id, queues } => format!(
                "vhost-user-test-device,chardev=pinvm-dma,virtio-id={virtio_id},num_vqs={queues}"
            ),
        };
        a.extend(["-device".into(), dev]);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> QemuConfig {
        QemuConfig {
            binary: "qemu-system-x86_64".into(),
            accel: Accel::Tcg,
            kernel: "/k/bzImage".into(),
            initrd: Some("/r/initrd".into()),
            cmdline: format!("{BASE_CMDLINE} pinvm.agent=ttyS1"),
            cpus: 2,
            mem_mib: 128,
            console: "/s/console".into(),
            agent: "/s/agent".into(),
            qmp: "/s/qmp".into(),
            disks: vec!["/s/vda".into(), "/s/vdb".into()],
            dma: Some("/s/dma".into()),
            dma_frontend: DmaFrontend::Gpio,
        }
    }

    fn pairs(a: &[String]) -> Vec<(String, String)> {
        a.windows(2).map(|w| (w[0].clone(), w[1].clone())).collect()
    }

    #[test]
    fn shared_memory_and_devices_in_order() {
        let a = args(&config());
        let p = pairs(&a);
        let has = |k: &str, v: &str| p.iter().any(|(x, y)| x == k && y == v);
        assert!(has(
            "-object",
            "memory-backend-memfd,id=pinvm-ram,size=128M,share=on"
        ));
        assert!(a[1].contains("memory-backend=pinvm-ram") && a[1].contains("acpi=off"));
        assert!(has("-global", "virtio-mmio.force-legacy=false"));
        assert!(has("-device", "vhost-user-blk,chardev=pinvm-disk0"));
        assert!(has("-device", "vhost-user-gpio-device,chardev=pinvm-dma"));
        assert!(has("-serial", "chardev:pinvm-console"));
        assert!(has("-accel", "tcg"));
        let d0 = a.iter().position(|x| x.contains("pinvm-disk0")).unwrap();
        let d1 = a.iter().position(|x| x.contains("pinvm-disk1")).unwrap();
        let dma = a.iter().position(|x| x.contains("pinvm-dma")).unwrap();
        assert!(
            d0 < d1 && d1 < dma,
            "disks first, in order, then the DMA device"
        );
        assert!(a.contains(&"-no-reboot".to_string()));
    }

    #[test]
    fn generic_frontend_and_kvm() {
        let mut c = config();
        c.accel = Accel::Kvm;
        c.initrd = None;
        c.dma_frontend = DmaFrontend::Generic {
            virtio_id: 0x5049,
            queues: 2,
        };
        let a = args(&c);
        assert!(pairs(&a).iter().any(|(k, v)| k == "-accel" && v == "kvm"));
        assert!(a.iter().any(|x| x.contains("virtio-id=20553,num_vqs=2")));
        assert!(!a.contains(&"-initrd".to_string()));
    }
}
