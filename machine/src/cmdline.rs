//! The guest kernel command line every machine builds the same way: its own words, then the
//! run's `--append` words (later words win for most kernel parameters), checked against what
//! the x86 boot protocol can carry.

/// x86 COMMAND_LINE_SIZE: 2048 bytes including the terminating NUL.
pub const CMDLINE_LIMIT: usize = 2047;

/// Why a command line was refused.
#[derive(Debug, thiserror::Error)]
pub enum CmdlineError {
    /// An `--append` word holds a NUL or a newline.
    #[error("--append {0:?}: NUL and newline are not allowed")]
    BadWord(String),
    /// The whole line (with what the machine adds later) is longer than the kernel reads.
    #[error(
        "the kernel command line would be {len} bytes (plus {reserved} the machine adds); the \
         x86 limit is {CMDLINE_LIMIT}"
    )]
    TooLong {
        /// Length of the line built here.
        len: usize,
        /// Bytes the machine appends afterwards (QEMU's virtio-mmio entries).
        reserved: usize,
    },
}

/// `base` followed by the `append` words (blank ones skipped), leaving `reserved` bytes for
/// what the machine appends afterwards.
pub fn with_appended(
    mut base: String,
    append: &[String],
    reserved: usize,
) -> Result<String, CmdlineError> {
    for a in append {
        if a.bytes().any(|b| b == 0 || b == b'\n') {
            return Err(CmdlineError::BadWord(a.clone()));
        }
        if !a.trim().is_empty() {
            base.push(' ');
            base.push_str(a.trim());
        }
    }
    if base.len() + reserved > CMDLINE_LIMIT {
        return Err(CmdlineError::TooLong {
            len: base.len(),
            reserved,
        });
    }
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_checks_and_reserves() {
        let c = with_appended("a=1".into(), &["b=2".into(), "  ".into()], 0).unwrap();
        assert_eq!(c, "a=1 b=2");
        assert!(with_appended(String::new(), &["x\0".into()], 0).is_err());
        assert!(with_appended(String::new(), &["x\ny".into()], 0).is_err());
        assert!(with_appended("x".repeat(2000), &[], 0).is_ok());
        let e = with_appended("x".repeat(2000), &[], 100).unwrap_err();
        assert!(e.to_string().contains("2047"), "{e}");
    }
}
