//! Files from `guest-images/kernel/` compiled into the binary, so that a built `pinvm`
//! is self-contained. Their bytes (not their paths) go into the cache key. (The driver's
//! files, in `guest-images/driver/`, are compiled in by [`super::driver`].)
//!
//! When a file is added under `kernel/config/` or `kernel/patches/platform/`, list it
//! here too: a unit test fails while a file on disk is not embedded.

/// pinvm's base fragment, applied to every version first.
pub const BASE_FRAGMENT: (&str, &str) = (
    "pinvm.config",
    include_str!("../../kernel/config/pinvm.config"),
);

/// Version-specific fragments `pinvm-<major.minor>.config`, applied after the base one.
pub const VERSION_FRAGMENTS: &[(&str, &str, &str)] = &[(
    "6.1",
    "pinvm-6.1.config",
    include_str!("../../kernel/config/pinvm-6.1.config"),
)];

/// One patch of the kvm_pvm platform fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformPatch {
    /// The VERSION.PATCHLEVEL it is for (file name `…-<version>.patch`), or `None`
    /// when it applies to every version.
    pub version: Option<&'static str>,
    /// File name under `guest-images/kernel/patches/platform/` (shown in errors and the
    /// manifest).
    pub name: &'static str,
    /// The patch itself (unified diff), embedded at build time.
    pub text: &'static str,
}

/// The kvm_pvm platform fix, in application order. A version has a platform fix when
/// it has a version-specific patch (the SYSCALL fault fix); the version-independent
/// patches (`version: None`, file name without a version suffix) are applied after it.
pub const PLATFORM_PATCHES: &[PlatformPatch] = &[
    PlatformPatch {
        version: Some("6.12"),
        name: "kvm_pvm-syscall-fault-6.12.patch",
        text: include_str!("../../kernel/patches/platform/kvm_pvm-syscall-fault-6.12.patch"),
    },
    PlatformPatch {
        version: Some("6.1"),
        name: "kvm_pvm-syscall-fault-6.1.patch",
        text: include_str!("../../kernel/patches/platform/kvm_pvm-syscall-fault-6.1.patch"),
    },
];

/// The config fragment that goes with the driver patch ([`super::driver`]).
pub const DRIVER_FRAGMENT: (&str, &str) = (
    "dmapin.config",
    include_str!("../../kernel/config/dmapin.config"),
);

/// The version-specific fragment for `major_minor`, if there is one.
pub fn version_fragment(major_minor: &str) -> Option<(&'static str, &'static str)> {
    VERSION_FRAGMENTS
        .iter()
        .find(|(v, _, _)| *v == major_minor)
        .map(|(_, name, text)| (*name, *text))
}

/// The platform fix for `major_minor` (in order), or `None` if that version has none.
pub fn platform_patches(major_minor: &str) -> Option<Vec<PlatformPatch>> {
    if !PLATFORM_PATCHES
        .iter()
        .any(|p| p.version == Some(major_minor))
    {
        return None;
    }
    Some(
        PLATFORM_PATCHES
            .iter()
            .filter(|p| p.version.is_none_or(|v| v == major_minor))
            .copied()
            .collect(),
    )
}

/// Versions that have a platform fix.
pub fn platform_patch_versions() -> Vec<&'static str> {
    PLATFORM_PATCHES.iter().filter_map(|p| p.version).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn files(dir: &str, suffix: &str) -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(suffix))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn everything_on_disk_is_embedded_and_current() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut configs: Vec<String> = VERSION_FRAGMENTS
            .iter()
            .map(|(_, n, _)| n.to_string())
            .collect();
        configs.push(BASE_FRAGMENT.0.to_string());
        configs.push(DRIVER_FRAGMENT.0.to_string());
        configs.sort();
        assert_eq!(files("kernel/config", ".config"), configs);
        for (v, name, _) in VERSION_FRAGMENTS {
            assert_eq!(*name, format!("pinvm-{v}.config"));
        }
        let mut patches: Vec<String> = PLATFORM_PATCHES
            .iter()
            .map(|p| p.name.to_string())
            .collect();
        patches.sort();
        assert_eq!(files("kernel/patches/platform", ".patch"), patches);
        for p in PLATFORM_PATCHES {
            let versioned = ["6.1", "6.12"]
                .into_iter()
                .find(|v| p.name.ends_with(&format!("-{v}.patch")));
            assert_eq!(p.version, versioned, "{}", p.name);
            let on_disk =
                std::fs::read_to_string(root.join("kernel/patches/platform").join(p.name)).unwrap();
            assert_eq!(on_disk, p.text, "{} changed on disk: rebuild", p.name);
        }
        let names = |v| -> Vec<&str> {
            platform_patches(v)
                .unwrap()
                .iter()
                .map(|p| p.name)
                .collect()
        };
        assert_eq!(names("6.12")[0], "kvm_pvm-syscall-fault-6.12.patch");
        assert_eq!(names("6.1")[0], "kvm_pvm-syscall-fault-6.1.patch");
        assert!(names("6.12").iter().all(|n| !n.ends_with("-6.1.patch")));
        assert!(platform_patches("5.10").is_none());
    }
}
