//! What this host offers QEMU: the binary, a usable /dev/kvm for `-accel kvm`, and which
//! vhost-user frontend can carry pinvm's DMA device.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::command::DmaFrontend;

/// The binary pinvm runs: `$PINVM_QEMU`, else `qemu-system-x86_64` on `PATH`.
pub fn qemu_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("PINVM_QEMU") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("PINVM_QEMU={}: no such file", p.display()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("qemu-system-x86_64"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "qemu-system-x86_64 is not installed (Debian/Ubuntu: apt install qemu-system-x86)"
                .to_string()
        })
}

/// `-accel kvm` needs a /dev/kvm this process can open.
pub fn kvm_usable() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(|_| ())
        .map_err(|e| format!("/dev/kvm: {e} (use --machine qemu for TCG)"))
}

/// Which frontend carries the DMA device, from `qemu-system-x86_64 -device help` (asked once
/// per process): the GPIO frontend (QEMU 7.2 and later; the one verified here), else the
/// generic `vhost-user-test-device` of newer QEMU; `PINVM_QEMU_DMA=generic` prefers the
/// generic one where both exist (not verified here: QEMU 7.2 has no generic device).
pub fn dma_frontend(binary: &PathBuf) -> Result<DmaFrontend, String> {
    static HELP: OnceLock<Result<String, String>> = OnceLock::new();
    let help = HELP.get_or_init(|| {
        let out = Command::new(binary)
            .args(["-M", "microvm", "-device", "help"])
            .output()
            .map_err(|e| format!("running {} -device help: {e}", binary.display()))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    });
    let help = help.as_ref().map_err(Clone::clone)?;
    let prefer_generic = std::env::var("PINVM_QEMU_DMA").is_ok_and(|v| v == "generic");
    frontend_from_help(help, prefer_generic).ok_or_else(|| {
        format!(
            "{} has neither vhost-user-test-device nor vhost-user-gpio-device: pinvm needs \
             QEMU 7.2 or later",
            binary.display()
        )
    })
}

/// The choice, from the text of `-device help`.
pub fn frontend_from_help(help: &str, prefer_generic: bool) -> Option<DmaFrontend> {
    let has = |name: &str| help.contains(&format!("name \"{name}\""));
    let generic = has("vhost-user-test-device").then_some(DmaFrontend::Generic {
        virtio_id: proto::dmapin::DEVICE_ID,
        queues: 2,
    });
    let gpio = has("vhost-user-gpio-device").then_some(DmaFrontend::Gpio);
    if prefer_generic {
        generic.or(gpio)
    } else {
        gpio.or(generic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontend_choice() {
        let q72 = "name \"vhost-user-blk\", bus virtio-bus\nname \"vhost-user-gpio-device\", bus virtio-bus\n";
        assert_eq!(frontend_from_help(q72, true), Some(DmaFrontend::Gpio));
        let newer = format!("{q72}name \"vhost-user-test-device\", bus virtio-bus\n");
        assert_eq!(frontend_from_help(&newer, false), Some(DmaFrontend::Gpio));
        assert!(matches!(
            frontend_from_help(&newer, true),
            Some(DmaFrontend::Generic { queues: 2, .. })
        ));
        let only_generic = "name \"vhost-user-test-device\", bus virtio-bus\n";
        assert!(matches!(
            frontend_from_help(only_generic, false),
            Some(DmaFrontend::Generic { .. })
        ));
        assert_eq!(
            frontend_from_help("name \"virtio-blk-device\"", false),
            None
        );
    }
}
