pub mod agent;
pub mod cache;
pub mod initramfs;
pub mod kernel;
