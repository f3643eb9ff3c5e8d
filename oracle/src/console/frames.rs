//! Stack frames as the console prints them: the function a trace line, a `RIP:` line or a
//! lockdep `at:` line names.

/// A function name's characters (C identifiers).
fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// A leading `[<ffffffff81234567>]` (old kernels' address before each frame): its length
/// with the spaces after it.
fn pc_prefix(s: &str) -> Option<usize> {
    let rest = s.strip_prefix('[')?;
    let rest = rest.strip_prefix('<').unwrap_or(rest);
    let rest = rest.strip_prefix("0x").unwrap_or(rest);
    let hex = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
    if hex == 0 {
        return None;
    }
    let rest = &rest[hex..];
    let rest = rest.strip_prefix('>').unwrap_or(rest);
    let rest = rest.strip_prefix(']')?;
    let after = rest.trim_start_matches(' ');
    Some(s.len() - after.len())
}

/// The function at the very start of `s`: an identifier directly followed by `+` (the offset)
/// or `.` (a compiler suffix such as `.isra.0` or `.cold`).
pub(super) fn function_at(s: &str) -> Option<&str> {
    let n = s.bytes().take_while(|&c| ident_char(c)).count();
    let next = s.as_bytes().get(n)?;
    (n > 0 && matches!(next, b'+' | b'.')).then(|| &s[..n])
}

/// The function of a call-trace line: ` foo+0x12/0x34`, ` [<ffffffff81234567>] foo+0x12/0x34`,
/// ` foo.isra.0+0x1/0x2 [module]`, ` foo+0x12/0x34 fs/x.c:12`. Frames the unwinder is not sure
/// of (`? foo+...`) and inlined frames the symbolizer adds (` foo fs/x.h:3 [inline]`) are not
/// frames here.
pub(super) fn trace_frame(line: &str) -> Option<&str> {
    let mut s = line.trim_start_matches(' ');
    for _ in 0..2 {
        match pc_prefix(s) {
            Some(n) => s = &s[n..],
            None => break,
        }
    }
    function_at(s)
}

/// What a register line says the faulting instruction was: `Some(Some(f))` for
/// `RIP: 0010:foo+0x1/0x2` (or the old `IP: [<ffffffff81234567>] foo+0x1/0x2`), `Some(None)`
/// for an instruction pointer without a function (user mode, a raw address), `None` for any
/// other line.
pub(super) fn rip_frame(line: &str) -> Option<Option<&str>> {
    let at = line.find("IP: ")?;
    let before = &line[..at];
    if !(before.is_empty() || before.ends_with('R') || before.ends_with(' ')) {
        return None;
    }
    let mut s = &line[at + 4..];
    // "0010:" (the code segment).
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && s.as_bytes().get(digits) == Some(&b':') {
        s = &s[digits + 1..];
    }
    for _ in 0..2 {
        match pc_prefix(s) {
            Some(n) => s = &s[n..],
            None => break,
        }
    }
    match function_at(s) {
        Some(f) => Some(Some(f)),
        None if s.starts_with("0x") || s.contains("(null)") => Some(None),
        None => None,
    }
}

/// The function after `at: ` in lockdep's lines (`(&mm->mmap_lock){++++}-{3:3}, at:
/// __might_fault+0x8f/0x110`, old kernels `at: [<ffffffff8123>] foo+0x1/0x2`).
pub(super) fn at_frame(line: &str) -> Option<&str> {
    let (_, rest) = line.split_once("at: ")?;
    let rest = match pc_prefix(rest) {
        Some(n) => &rest[n..],
        None => rest,
    };
    function_at(rest)
}

/// The function after a bracketed address anywhere in the line (`[<ffffffff8123>] foo+0x1`),
/// as lockdep prints the place a lock was taken or released on old kernels.
pub(super) fn pc_frame(line: &str) -> Option<&str> {
    line.match_indices('[').find_map(|(i, _)| {
        let s = &line[i..];
        pc_prefix(s).and_then(|n| function_at(&s[n..]))
    })
}

/// Syscall wrappers' prefixes: a frame is named by the syscall (`__do_sys_mount`,
/// `__se_sys_mount`, `ksys_mount` → `mount`), so that a title does not depend on the
/// architecture's or the kernel version's wrapper naming.
const SYSCALL_PREFIXES: &[&str] = &[
    "SYSC_",
    "SyS_",
    "sys_",
    "__x64_",
    "__ia32_",
    "__arm64_",
    "____sys_",
    "___sys_",
    "__sys_",
    "__se_",
    "__se_sys_",
    "__do_sys_",
    "compat_SYSC_",
    "compat_SyS_",
    "ksys_",
];

/// A C++ function's plain name: `_Z8fakeNameiii` → `fakeName` (a top-level function's mangled
/// name: `_Z`, the name's length, the name, its parameter types); anything else as it is.
pub(super) fn demangle(frame: &str) -> &str {
    let Some(rest) = frame.strip_prefix("_Z") else {
        return frame;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    match rest[..digits].parse::<usize>() {
        Ok(n) if n > 0 && digits + n <= rest.len() => &rest[digits..digits + n],
        _ => frame,
    }
}

/// A frame's name in a title: the shortest name one syscall-wrapper prefix leaves.
pub(super) fn canonical(frame: &str) -> &str {
    SYSCALL_PREFIXES
        .iter()
        .filter_map(|p| frame.strip_prefix(p))
        .min_by_key(|s| s.len())
        .unwrap_or(frame)
}

/// A line that starts a stack trace (and so ends the one before it): `Call Trace:`, KASAN's
/// `Allocated by task N:` / `Freed by task N:`, kmemleak's `backtrace:`, KMSAN's `Uninit was
/// stored to memory at:`.
pub(super) fn is_stack_start(line: &str) -> bool {
    if line.contains("Call Trace") || line.contains("Call trace") || line.contains("Backtrace:") {
        return true;
    }
    if line.contains("Allocated:")
        || line.contains("Freed:")
        || line.contains("Uninit was stored to memory at")
    {
        return true;
    }
    for what in ["Allocated by task ", "Freed by task "] {
        if let Some((_, rest)) = line.split_once(what) {
            let n = rest.bytes().take_while(u8::is_ascii_digit).count();
            if n > 0 && rest[n..].starts_with(':') {
                return true;
            }
        }
    }
    // kmemleak's " backtrace:" / " backtrace (crc 1a2b):", not dump_stack's "stack backtrace:".
    line.match_indices(" backtrace").any(|(i, _)| {
        let before_ok = i > 0 && line.as_bytes()[i - 1] != b'k';
        let rest = &line[i + " backtrace".len()..];
        let rest = match rest.strip_prefix(" (crc ") {
            Some(r) => {
                let n = r.bytes().take_while(u8::is_ascii_hexdigit).count();
                r[n..].strip_prefix(')').unwrap_or("x")
            }
            None => rest,
        };
        before_ok && rest.starts_with(':')
    })
}

/// The function of a symbolised address, `ext4_dirty_folio+0x3d/0x60` or `foo.isra.0+0x1/0x2`
/// → `ext4_dirty_folio` / `foo`; `None` for anything else (raw addresses, `0x0`).
pub(super) fn symbol(s: &str) -> Option<String> {
    let s = s.trim().trim_start_matches("? ");
    // Old kernels print "[<ffffffff81234567>] foo+0x..": take what follows.
    let s = match s.rfind("] ") {
        Some(i) if s.starts_with("[<") => &s[i + 2..],
        _ => s,
    };
    let plus = s.find("+0x")?;
    let name = &s[..plus];
    let name = name.split('.').next().unwrap_or("");
    let ok = !name.is_empty()
        && name.bytes().all(ident_char)
        && !name.bytes().next().is_some_and(|c| c.is_ascii_digit())
        && !name.starts_with("0x");
    ok.then(|| name.to_string())
}
