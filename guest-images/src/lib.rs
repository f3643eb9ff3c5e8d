pub mod agent;
pub mod cache;
pub mod disk;
pub mod initramfs;
pub mod kernel;
pub mod tools;
