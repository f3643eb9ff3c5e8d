//! The uapi header against `proto::dmapin`: a small C program including the header prints the
//! size of every struct, the offset and size of every field and the value of every constant;
//! the same lines are computed from the Rust definitions and must be equal.

use crate::cache::TestDir;
use proto::dmapin::{ioctl, wire};
use std::mem::offset_of;
use std::path::Path;
use std::process::Command;

/// What the check compares, in the order it prints.
enum Item {
    /// A struct and its size.
    Struct(&'static str, usize),
    /// A struct field: (struct, field, offset, size).
    Field(&'static str, &'static str, usize, usize),
    /// A macro and its value.
    Const(&'static str, u64),
}

impl Item {
    /// The C statement printing this item.
    fn c_printf(&self) -> String {
        match self {
            Item::Struct(s, _) => {
                format!("printf(\"struct {s} %zu\\n\", sizeof(struct {s}));")
            }
            Item::Field(s, f, _, _) => format!(
                "printf(\"field {s}.{f} %zu %zu\\n\", offsetof(struct {s}, {f}), \
                 sizeof(((struct {s} *)0)->{f}));"
            ),
            Item::Const(c, _) => {
                format!("printf(\"const {c} %llu\\n\", (unsigned long long)({c}));")
            }
        }
    }

    /// The line the C program prints when the Rust definition matches.
    fn expected(&self) -> String {
        match self {
            Item::Struct(s, size) => format!("struct {s} {size}"),
            Item::Field(s, f, off, size) => format!("field {s}.{f} {off} {size}"),
            Item::Const(c, v) => format!("const {c} {v}"),
        }
    }
}

/// Size of the field a projection closure points at.
fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// `Item::Struct` for a Rust struct and its C name, then an `Item::Field` per field.
macro_rules! layout {
    ($items:ident, $rust:ty, $c:literal: $($field:ident),+ $(,)?) => {
        $items.push(Item::Struct($c, size_of::<$rust>()));
        $(
            $items.push(Item::Field(
                $c,
                stringify!($field),
                offset_of!($rust, $field),
                field_size(|s: &$rust| &s.$field),
            ));
        )+
    };
}

fn items() -> Vec<Item> {
    let mut v = Vec::new();
    layout!(v, wire::VirtioDmapinBufHdr, "virtio_dmapin_buf_hdr":
        region_id, page_index, file_offset, gpa);
    layout!(v, wire::VirtioDmapinBufStatus, "virtio_dmapin_buf_status": dma_writes, flags);
    layout!(v, wire::VirtioDmapinCtl, "virtio_dmapin_ctl":
        cmd, region_id, schedule, reserved, params);
    layout!(v, ioctl::DmapinPin, "dmapin_pin":
        addr, len, method, flags, region_id, npinned, err, npages);
    layout!(v, ioctl::DmapinPost, "dmapin_post": region_id, posted, file_offset, err, reserved);
    layout!(v, ioctl::DmapinCtl, "dmapin_ctl": region_id, schedule, params, status, reserved);
    layout!(v, ioctl::DmapinQuery, "dmapin_query":
        region_id, method, flags, npages, npinned, inflight, addr, posted, completed,
        dma_writes, used_bytes, nr_dirty, nr_writeback, nr_private, nr_no_mapping,
        nr_maybe_pinned, reserved);
    layout!(v, ioctl::DmapinRelease, "dmapin_release": region_id, method);
    let consts: [(&str, u64); 27] = [
        ("VIRTIO_ID_DMAPIN", proto::dmapin::DEVICE_ID.into()),
        ("VIRTIO_DMAPIN_VQ_DMA", proto::dmapin::DMA_QUEUE as u64),
        ("VIRTIO_DMAPIN_VQ_CTL", proto::dmapin::CTL_QUEUE as u64),
        ("VIRTIO_DMAPIN_CTL_START", proto::dmapin::op::START.into()),
        ("VIRTIO_DMAPIN_CTL_STOP", proto::dmapin::op::STOP.into()),
        ("VIRTIO_DMAPIN_CTL_RETURN", proto::dmapin::op::RETURN.into()),
        ("DMAPIN_GUP", ioctl::DMAPIN_GUP.into()),
        ("DMAPIN_GUP_FAST", ioctl::DMAPIN_GUP_FAST.into()),
        ("DMAPIN_PIN", ioctl::DMAPIN_PIN.into()),
        ("DMAPIN_PIN_FAST", ioctl::DMAPIN_PIN_FAST.into()),
        ("DMAPIN_PIN_LONGTERM", ioctl::DMAPIN_PIN_LONGTERM.into()),
        (
            "DMAPIN_PIN_FAST_LONGTERM",
            ioctl::DMAPIN_PIN_FAST_LONGTERM.into(),
        ),
        ("DMAPIN_WRITE", ioctl::DMAPIN_WRITE.into()),
        ("DMAPIN_MAX_LEN", ioctl::DMAPIN_MAX_LEN),
        ("DMAPIN_MAX_REGIONS", ioctl::DMAPIN_MAX_REGIONS.into()),
        ("DMAPIN_REL_DIRTY_LOCK", ioctl::DMAPIN_REL_DIRTY_LOCK.into()),
        (
            "DMAPIN_REL_DIRTY_NOLOCK",
            ioctl::DMAPIN_REL_DIRTY_NOLOCK.into(),
        ),
        ("DMAPIN_REL_NO_DIRTY", ioctl::DMAPIN_REL_NO_DIRTY.into()),
        ("DMAPIN_IOC_MAGIC", ioctl::DMAPIN_IOC_MAGIC.into()),
        ("DMAPIN_IOC_PIN", ioctl::DMAPIN_IOC_PIN.into()),
        ("DMAPIN_IOC_POST", ioctl::DMAPIN_IOC_POST.into()),
        ("DMAPIN_IOC_START", ioctl::DMAPIN_IOC_START.into()),
        ("DMAPIN_IOC_STOP", ioctl::DMAPIN_IOC_STOP.into()),
        ("DMAPIN_IOC_QUERY", ioctl::DMAPIN_IOC_QUERY.into()),
        ("DMAPIN_IOC_RELEASE", ioctl::DMAPIN_IOC_RELEASE.into()),
        // The status values the device answers with are errno values the driver negates.
        ("EINVAL", proto::dmapin::ctl_status::INVALID.into()),
        ("ENOENT", proto::dmapin::ctl_status::NO_REGION.into()),
    ];
    v.extend(consts.into_iter().map(|(c, n)| Item::Const(c, n)));
    v
}

/// The C program printing `items` (the header's own includes bring <linux/types.h> and
/// <linux/ioctl.h> from the host's kernel headers).
fn c_program(items: &[Item]) -> String {
    let mut c = String::from(
        "#include <errno.h>\n#include <stddef.h>\n#include <stdio.h>\n\
         #include \"virtio_dmapin.h\"\n\nint main(void)\n{\n",
    );
    for item in items {
        c.push('\t');
        c.push_str(&item.c_printf());
        c.push('\n');
    }
    c.push_str("\treturn 0;\n}\n");
    c
}

/// The C compiler: `$CC` or `cc`.
fn c_compiler() -> String {
    std::env::var("CC")
        .ok()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "cc".into())
}

#[test]
fn c_header_matches_proto() {
    let cc = c_compiler();
    if let Err(e) = Command::new(&cc).arg("--version").output() {
        eprintln!(
            "\n!!!!!!!!\n!!! SKIPPED c_header_matches_proto: no C compiler ({cc}: {e}); \
             install gcc to check guest-images/driver/virtio_dmapin.h against proto::dmapin\n\
             !!!!!!!!\n"
        );
        return;
    }
    let t = TestDir::new("driver-header");
    let items = items();
    let src = t.path().join("check.c");
    std::fs::write(&src, c_program(&items)).unwrap();
    let exe = t.path().join("check");
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("driver");
    let out = Command::new(&cc)
        .args(["-std=gnu11", "-Wall", "-Werror", "-I"])
        .arg(&include)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cc} failed on the header check:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success());
    let got = String::from_utf8(out.stdout).unwrap();
    let got: Vec<&str> = got.lines().collect();
    let want: Vec<String> = items.iter().map(Item::expected).collect();
    let diff: Vec<String> = want
        .iter()
        .zip(&got)
        .filter(|(w, g)| w != g)
        .map(|(w, g)| format!("  Rust: {w}\n     C: {g}"))
        .collect();
    assert!(
        diff.is_empty() && got.len() == want.len(),
        "guest-images/driver/virtio_dmapin.h and proto::dmapin differ ({} lines from C, {} \
         expected):\n{}",
        got.len(),
        want.len(),
        diff.join("\n")
    );
}
