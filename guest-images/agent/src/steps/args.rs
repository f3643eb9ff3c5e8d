//! Argument words shared by several ops.

use proto::stamp::file as stamp;

/// Checks the number of arguments.
pub fn count<'a, const N: usize>(args: &[&'a str]) -> Result<[&'a str; N], String> {
    <[&str; N]>::try_from(args).map_err(|_| {
        format!(
            "expected {N} argument{}, found {}",
            if N == 1 { "" } else { "s" },
            args.len()
        )
    })
}

/// A plain decimal number.
pub fn number(word: &str, what: &str) -> Result<u64, String> {
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad {what} {word:?}: expected a decimal number"));
    }
    word.parse()
        .map_err(|_| format!("bad {what} {word:?}: too large"))
}

/// A byte count: decimal, optionally followed by K (KiB), M (MiB) or G (GiB).
pub fn size(word: &str) -> Result<u64, String> {
    let (digits, unit) = match word.as_bytes().last() {
        Some(b'K') => (&word[..word.len() - 1], 1 << 10),
        Some(b'M') => (&word[..word.len() - 1], 1 << 20),
        Some(b'G') => (&word[..word.len() - 1], 1 << 30),
        _ => (word, 1),
    };
    let bad = || format!("bad size {word:?}: expected a decimal number with an optional K, M or G");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("bad size {word:?}: too large"))
}

/// The content of a data file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// `byte:0xNN`: every byte is NN.
    Byte(u8),
    /// `stamp:TAG`: the stamp pattern (stamp.rs).
    Stamp(String),
}

impl Pattern {
    pub fn parse(word: &str) -> Result<Pattern, String> {
        if let Some(hex) = word.strip_prefix("byte:0x") {
            if (1..=2).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                if let Ok(b) = u8::from_str_radix(hex, 16) {
                    return Ok(Pattern::Byte(b));
                }
            }
            return Err(format!(
                "bad pattern {word:?}: expected byte:0x followed by 1 or 2 hex digits"
            ));
        }
        if let Some(tag) = word.strip_prefix("stamp:") {
            if stamp::valid_tag(tag) {
                return Ok(Pattern::Stamp(tag.to_string()));
            }
            return Err(format!(
                "bad pattern {word:?}: the stamp tag must be 1 to {} printable ASCII characters",
                stamp::MAX_TAG_LEN
            ));
        }
        Err(format!(
            "bad pattern {word:?}: expected byte:0xNN or stamp:TAG"
        ))
    }

    /// Fills `buf` with the file bytes at offsets `pos..`.
    pub fn fill(&self, pos: u64, buf: &mut [u8]) {
        match self {
            Pattern::Byte(b) => buf.fill(*b),
            Pattern::Stamp(tag) => stamp::fill(tag, pos, buf),
        }
    }

    /// Whether every chunk of the file has the same content (then a buffer is filled once).
    pub fn is_uniform(&self) -> bool {
        matches!(self, Pattern::Byte(_))
    }

    /// The first byte of `data` (file offsets `pos..`) that differs: (index, expected byte).
    pub fn first_mismatch(&self, pos: u64, data: &[u8]) -> Option<(usize, u8)> {
        match self {
            Pattern::Byte(b) => data.iter().position(|x| x != b).map(|i| (i, *b)),
            Pattern::Stamp(tag) => stamp::first_mismatch(tag, pos, data),
        }
    }
}

/// A name given to a mapping or a region: 1 to 32 ASCII letters, digits, `_`, `-` or `.`.
pub fn name(word: &str) -> Result<String, String> {
    if (1..=32).contains(&word.len())
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    {
        Ok(word.to_string())
    } else {
        Err(format!(
            "bad name {word:?}: expected 1 to 32 letters, digits, '_', '-' or '.'"
        ))
    }
}

/// Errno names the steps accept and print (`expect=`, `got=`).
const ERRNOS: &[(&str, i32)] = &[
    ("EPERM", libc::EPERM),
    ("ENOENT", libc::ENOENT),
    ("EINTR", libc::EINTR),
    ("EIO", libc::EIO),
    ("ENXIO", libc::ENXIO),
    ("E2BIG", libc::E2BIG),
    ("EBADF", libc::EBADF),
    ("EAGAIN", libc::EAGAIN),
    ("ENOMEM", libc::ENOMEM),
    ("EACCES", libc::EACCES),
    ("EFAULT", libc::EFAULT),
    ("EBUSY", libc::EBUSY),
    ("EEXIST", libc::EEXIST),
    ("ENODEV", libc::ENODEV),
    ("EINVAL", libc::EINVAL),
    ("ENOSPC", libc::ENOSPC),
    ("EROFS", libc::EROFS),
    ("ERANGE", libc::ERANGE),
    ("ENOTTY", libc::ENOTTY),
    ("ENOSYS", libc::ENOSYS),
    ("EOPNOTSUPP", libc::EOPNOTSUPP),
    ("ETIMEDOUT", libc::ETIMEDOUT),
    ("EHWPOISON", libc::EHWPOISON),
];

/// An errno: `0`, a decimal number, or a name such as `EFAULT`.
pub fn errno(word: &str) -> Result<i32, String> {
    if let Some(&(_, n)) = ERRNOS.iter().find(|(s, _)| *s == word) {
        return Ok(n);
    }
    match number(word, "errno") {
        Ok(n) if n < 4096 => Ok(n as i32),
        _ => Err(format!(
            "bad errno {word:?}: expected 0, a decimal number or a name such as EFAULT"
        )),
    }
}

/// The name of an errno (`0` for none, the decimal number when it has no name here).
pub fn errno_name(n: i32) -> String {
    match ERRNOS.iter().find(|(_, v)| *v == n) {
        Some((s, _)) => s.to_string(),
        None => n.to_string(),
    }
}
