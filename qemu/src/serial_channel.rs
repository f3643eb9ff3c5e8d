//! The guest side of a QEMU run's agent channel: the command line that tells the agent to
//! report on ttyS1 (docs/control-protocol.md, "serial transport").

use machine::cmdline::{with_appended, CmdlineError};
pub use proto::control::serial::Decoder;

/// Kernel command-line words that make the agent use its serial channel.
pub const AGENT_SERIAL: &str = "pinvm.serial=ttyS1";

/// Room left for QEMU's `virtio_mmio.device=512@0x...:NN` entries (about 40 bytes each),
/// which it appends after pinvm's line.
const QEMU_WORDS: usize = 8 * 40;

/// The full command line: QEMU's base words, the agent channel, then the user's `--append`
/// words ([`machine::cmdline::with_appended`]).
pub fn cmdline(append: &[String]) -> Result<String, CmdlineError> {
    let base = format!("{} {AGENT_SERIAL}", crate::command::BASE_CMDLINE);
    with_appended(base, append, QEMU_WORDS)
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
        assert!(cmdline(&["x".repeat(1800)])
            .unwrap_err()
            .to_string()
            .contains("2047"));
    }
}
