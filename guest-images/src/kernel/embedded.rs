//! Files from `guest-images/kernel/` compiled into the binary, so that a built `pinvm`
//! is self-contained. Their bytes (not their paths) go into the cache key.
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

/// The kvm_pvm platform fix, per VERSION.PATCHLEVEL: (version, file name, text).
pub const PLATFORM_PATCHES: &[(&str, &str, &str)] = &[
    (
        "6.12",
        "kvm_pvm-syscall-fault-6.12.patch",
        include_str!("../../kernel/patches/platform/kvm_pvm-syscall-fault-6.12.patch"),
    ),
    (
        "6.1",
        "kvm_pvm-syscall-fault-6.1.patch",
        include_str!("../../kernel/patches/platform/kvm_pvm-syscall-fault-6.1.patch"),
    ),
];

/// The version-specific fragment for `major_minor`, if there is one.
pub fn version_fragment(major_minor: &str) -> Option<(&'static str, &'static str)> {
    VERSION_FRAGMENTS
        .iter()
        .find(|(v, _, _)| *v == major_minor)
        .map(|(_, name, text)| (*name, *text))
}

/// The platform fix for `major_minor`, if there is one.
pub fn platform_patch(major_minor: &str) -> Option<(&'static str, &'static str)> {
    PLATFORM_PATCHES
        .iter()
        .find(|(v, _, _)| *v == major_minor)
        .map(|(_, name, text)| (*name, *text))
}

/// Versions that have a platform fix.
pub fn platform_patch_versions() -> Vec<&'static str> {
    PLATFORM_PATCHES.iter().map(|(v, _, _)| *v).collect()
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
        configs.sort();
        assert_eq!(files("kernel/config", ".config"), configs);
        for (v, name, _) in VERSION_FRAGMENTS {
            assert_eq!(*name, format!("pinvm-{v}.config"));
        }
        let mut patches: Vec<String> = PLATFORM_PATCHES
            .iter()
            .map(|(_, n, _)| n.to_string())
            .collect();
        patches.sort();
        assert_eq!(files("kernel/patches/platform", ".patch"), patches);
        for (v, name, text) in PLATFORM_PATCHES {
            assert_eq!(*name, format!("kvm_pvm-syscall-fault-{v}.patch"));
            let on_disk =
                std::fs::read_to_string(root.join("kernel/patches/platform").join(name)).unwrap();
            assert_eq!(&on_disk, text);
        }
    }
}
