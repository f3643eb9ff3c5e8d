//! pinvm's guest artefacts: kernel builds with their config, patches and content-addressed
//! cache ([`kernel`], [`cache`]), the initramfs writer ([`initramfs`]) with the guest agent
//! embedded at build time ([`agent`]), and the disk images ([`disk`] for filesystems under
//! test, [`tools`] for busybox), host files in the guest ([`hostfs`]: `--put`, `--share`) and the kernel's own selftests built for the guest ([`selftest`]). Installed pinvm binaries need no source tree.

#![warn(missing_docs)]

pub mod agent;
pub mod cache;
pub mod disk;
pub mod hostfs;
pub mod initramfs;
pub mod kernel;
pub mod selftest;
pub mod tools;
pub mod usage;
