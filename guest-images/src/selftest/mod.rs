//! The kernel's own selftests, built for the guest: `mm:gup_longterm` names
//! `tools/testing/selftests/mm/gup_longterm.c` of the tree the booted kernel was built from
//! (`vm/` before 6.3). [`build`] compiles each test statically (`gcc -static`) against that
//! tree's UAPI headers (`make headers_install` into a private directory), so the test and the
//! kernel agree, and caches the binaries by content under `<cache>/selftests/`.

mod build;
mod name;

pub use build::{build, BuiltSelftest, SelftestBuild, TreeRef};
pub use name::SelftestName;
