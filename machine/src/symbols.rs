//! Naming a guest RIP from the kernel's System.map (for hang reports).

/// `symbol+0xoff` for `addr`, from the text of a System.map file; None if not in the kernel.
pub fn lookup(map: &str, addr: u64) -> Option<String> {
    let mut best: Option<(u64, &str)> = None;
    for line in map.lines() {
        let mut it = line.split_whitespace();
        let (Some(a), Some(kind), Some(name)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if !matches!(kind, "t" | "T" | "w" | "W") {
            continue;
        }
        let Ok(a) = u64::from_str_radix(a, 16) else {
            continue;
        };
        // At equal addresses a real function beats a section marker like __cpuidle_text_start.
        let better = |(b, n): (u64, &str)| a > b || (a == b && n.starts_with("__"));
        if a <= addr && best.is_none_or(better) {
            best = Some((a, name));
        }
    }
    let (a, name) = best?;
    // Further than 1 MiB from the nearest text symbol: not in the kernel image.
    (addr - a < 1 << 20).then(|| format!("{name}+{:#x}", addr - a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_enclosing_text_symbol() {
        let map = "ffffffff81000000 T _stext\nffffffff81000100 T __cpuidle_text_start\n\
                   ffffffff81000100 t default_idle\n\
                   ffffffff81000200 D some_data\nffffffff81000300 T next_fn\n";
        assert_eq!(
            lookup(map, 0xffffffff81000123).unwrap(),
            "default_idle+0x23"
        );
        assert_eq!(
            lookup(map, 0xffffffff81000250).unwrap(),
            "default_idle+0x150"
        );
        assert_eq!(lookup(map, 0x1000), None);
    }
}
