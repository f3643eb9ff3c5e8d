//! Where the agent's events go: the control page under pinvm's VMM, or a serial port on
//! machines that have none (QEMU). One protocol, two transports (docs/control-protocol.md):
//! the kernel command line says which (`pinvm.serial=ttySN`, else `pinvm.ctl=`).

use std::fs::File;
use std::io::{self, Write};

use proto::control::{serial, ControlEventKind, DEFAULT_ADDR};

use crate::ctl::{self, Ctl};
use crate::{describe, sys};

/// An open event channel.
pub enum Channel {
    /// The MMIO control page.
    Page(Ctl),
    /// A 16550 port in raw mode; each event is one [`serial`] line.
    Serial(File),
}

impl Channel {
    /// Report one event.
    pub fn send(&mut self, event: ControlEventKind, status: u32, msg: &str) {
        match self {
            Channel::Page(c) => c.send(event, status, msg),
            Channel::Serial(f) => {
                let line = serial::encode(event.code(), status, msg);
                if let Err(e) = f.write_all(line.as_bytes()) {
                    say!("agent channel: {}", describe(&e));
                }
            }
        }
    }
}

/// `pinvm.serial=ttySN` from a kernel command line (the last one wins): the port number.
pub fn serial_port(cmdline: &str) -> Option<u32> {
    let mut found = None;
    for word in cmdline.split_ascii_whitespace() {
        if let Some(v) = word.strip_prefix("pinvm.serial=") {
            found = v.strip_prefix("ttyS").and_then(|n| n.parse().ok());
        }
    }
    found.filter(|&n| n < 64)
}

/// Open the channel the command line names; None (events dropped) if it cannot be opened.
pub fn open(cmdline: &str) -> Option<Channel> {
    if let Some(port) = serial_port(cmdline) {
        return match open_serial(port) {
            Ok(f) => Some(Channel::Serial(f)),
            Err(e) => {
                say!(
                    "agent channel ttyS{port} unavailable, the host will see no status: {}",
                    describe(&e)
                );
                None
            }
        };
    }
    let addr = ctl::parse_cmdline(cmdline).unwrap_or_else(|| {
        say!("no pinvm.ctl= on the command line, trying {DEFAULT_ADDR:#x}");
        DEFAULT_ADDR
    });
    match Ctl::map(addr) {
        Ok(c) => Some(Channel::Page(c)),
        Err(msg) => {
            say!("control page unavailable, the host will see no status: {msg}");
            None
        }
    }
}

/// ttyS<port> before devtmpfs is mounted: a private device node (major 4, minor 64 + port)
/// in the initramfs, opened write-only in raw mode (no newline translation, no echo).
fn open_serial(port: u32) -> io::Result<File> {
    let path = c"/.pinvm-agent-tty";
    sys::mknod_char(path, 4, 64 + port)?;
    let f = sys::open_tty_raw(path)?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_port_from_cmdline() {
        assert_eq!(serial_port("console=ttyS0 pinvm.serial=ttyS1"), Some(1));
        assert_eq!(
            serial_port("pinvm.serial=ttyS1 pinvm.serial=ttyS2"),
            Some(2)
        );
        assert_eq!(serial_port("pinvm.ctl=0xd0000000"), None);
        assert_eq!(serial_port("pinvm.serial=hvc0"), None);
        assert_eq!(serial_port("pinvm.serial=ttyS99"), None);
    }
}
