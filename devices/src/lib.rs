pub mod block;
pub mod bus;
pub mod clock;
pub mod control;
pub mod dmapin;
pub mod i8042;
pub mod serial;
pub mod virtio;
