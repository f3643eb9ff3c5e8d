pub mod kernel;
pub mod initramfs;
pub mod cache;
