pub mod bus;
pub mod control;
pub mod i8042;
pub mod serial;
