pub mod serial;
pub mod i8042;
pub mod control;
pub mod bus;
