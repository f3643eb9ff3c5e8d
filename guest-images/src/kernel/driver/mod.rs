//! pinvm's guest driver (`/dev/dmapin`, patch group Driver) as code. The driver is real files
//! in `guest-images/driver/`: the C source, the uapi header, and the two small hunks that hook
//! it into `drivers/virtio/Kconfig` and `Makefile`. The kernel patch that adds them to a source
//! tree is generated from those files by [`patch`]; its bytes go into the kernel cache key like
//! any other patch's. One patch serves 6.1 and 6.12.
//!
//! The header is also the reference for the Rust side of both ABIs (`proto::dmapin`); a test
//! compiles it with the host's C compiler and compares every size, offset and number.

use std::fmt::Write as _;

/// Name of the generated patch (shown as `pinvm:virtio-dmapin.patch`).
pub const PATCH_NAME: &str = "virtio-dmapin.patch";
/// The driver, `drivers/virtio/virtio_dmapin.c` in the kernel tree.
pub const SOURCE: &str = include_str!("../../../driver/virtio_dmapin.c");
/// The uapi header, `include/uapi/linux/virtio_dmapin.h` in the kernel tree.
pub const HEADER: &str = include_str!("../../../driver/virtio_dmapin.h");
/// The patch's description (its commit message), up to the `---` line.
const DESCRIPTION: &str = include_str!("../../../driver/patch-description.txt");
/// The `drivers/virtio/Kconfig` hunk: CONFIG_VIRTIO_DMAPIN and CONFIG_VIRTIO_DMAPIN_NODEV.
const KCONFIG_DIFF: &str = include_str!("../../../driver/Kconfig.diff");
/// The `drivers/virtio/Makefile` hunk.
const MAKEFILE_DIFF: &str = include_str!("../../../driver/Makefile.diff");

/// The files the patch creates: (path in the kernel tree, content).
pub const NEW_FILES: [(&str, &str); 2] = [
    ("drivers/virtio/virtio_dmapin.c", SOURCE),
    ("include/uapi/linux/virtio_dmapin.h", HEADER),
];

/// The files in `guest-images/driver/` that [`patch`] is made of (the others there are the
/// README and a user-space smoke test).
pub const PATCH_INPUTS: [&str; 5] = [
    "patch-description.txt",
    "Kconfig.diff",
    "Makefile.diff",
    "virtio_dmapin.c",
    "virtio_dmapin.h",
];

/// The driver patch: the description, `---`, the Kconfig and Makefile hunks, then each new
/// file as one all-added hunk (`patch -p1` format).
pub fn patch() -> String {
    let mut p = String::with_capacity(
        DESCRIPTION.len() + KCONFIG_DIFF.len() + MAKEFILE_DIFF.len() + SOURCE.len() * 2,
    );
    p.push_str(DESCRIPTION);
    p.push_str("---\n");
    p.push_str(KCONFIG_DIFF);
    p.push_str(MAKEFILE_DIFF);
    for (path, text) in NEW_FILES {
        push_new_file(&mut p, path, text);
    }
    p
}

/// Appends the diff that creates `path` with `text` (which ends with a newline).
fn push_new_file(out: &mut String, path: &str, text: &str) {
    let lines = text.lines().count();
    let _ = writeln!(out, "--- a/{path}\n+++ b/{path}\n@@ -0,0 +1,{lines} @@");
    for line in text.lines() {
        out.push('+');
        out.push_str(line);
        out.push('\n');
    }
}

#[cfg(test)]
mod header_check;
#[cfg(test)]
mod tests;
