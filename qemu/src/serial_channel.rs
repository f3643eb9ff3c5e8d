//! The guest side of a QEMU run's agent channel: the command line that tells the agent to
//! report on ttyS1 (docs/control-protocol.md, "serial transport").

pub use proto::control::serial::{Decoder, Frame};

/// Kernel command-line words that make the agent use its serial channel.
pub const AGENT_SERIAL: &str = "pinvm.serial=ttyS1";

/// The full command line: QEMU's base words, the agent channel, then the user's `--append`
/// words. QEMU appends the virtio-mmio device entries after these; the x86 limit is 2047
/// bytes in all, so leave room for them.
pub fn cmdline(append: &[String]) -> Result<String, String> {
    let mut s = format!("{} {AGENT_SERIAL}", crate::command::BASE_CMDLINE);
    for a in append {
        if a.bytes().any(|b| b == 0 || b == b'\n') {
            return Err(format!("--append {a:?}: NUL and newline are not allowed"));
        }
        if !a.trim().is_empty() {
            s.push(' ');
            s.push_str(a.trim());
        }
    }
    // Room for QEMU's `virtio_mmio.device=512@0x...:NN` entries (about 40 bytes each).
    const QEMU_WORDS: usize = 8 * 40;
    if s.len() + QEMU_WORDS >= 2048 {
        return Err(format!(
            "the kernel command line would be {} bytes plus QEMU's device entries; the x86 \
             limit is 2047",
            s.len()
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_channel_and_user_words() {
        let c = cmdline(&["loglevel=8".into(), " ".into()]).unwrap();
        assert!(c.contains("pinvm.serial=ttyS1") && c.contains("8250.nr_uarts=2"));
        assert!(c.ends_with(" loglevel=8"));
        assert!(!c.contains("pinvm.ctl="));
        assert!(cmdline(&["a\nb".into()]).is_err());
        assert!(cmdline(&["x".repeat(1800)]).unwrap_err().contains("2047"));
    }
}
