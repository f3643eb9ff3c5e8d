//! From a scenario's steps to the agent's step lines: variables, memory pressure, seeded
//! random numbers, and the closing `fiemap` the oracle needs.
//!
//! Variables: `{file}` (/mnt/f), `{size}` (file_size), `{pages}`, `{pin}`, `{release}`,
//! `{dma}`, `{pressure}` (a whole line: `madvise m pageout`, `drop_caches 3`, or nothing for
//! `none`), `{rand:A-B}` (a number in A..=B drawn from the run's seed).

use super::Scenario;
use anyhow::{bail, Result};

/// The target file every scenario works on.
pub const FILE: &str = "/mnt/f";

/// Check a DMA schedule as `dma_start` takes it: `burst N`, `rate HZ MS` or `writeback N`.
pub fn check_schedule(s: &str) -> Result<()> {
    let w: Vec<&str> = s.split_whitespace().collect();
    let nums = |n: usize| w.len() == n + 1 && w[1..].iter().all(|x| x.parse::<u32>().is_ok());
    match w.first() {
        Some(&"burst") | Some(&"writeback") if nums(1) => Ok(()),
        Some(&"rate") if nums(2) => Ok(()),
        _ => bail!("dma {s:?}: expected `burst N`, `rate HZ MS` or `writeback N`"),
    }
}

/// splitmix64: a small, well-mixed generator; the same seed gives the same steps.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The step lines for one run on `kernel` with `seed`.
pub fn expand(s: &Scenario, kernel: &str, machine: &str, seed: u64) -> Result<Vec<String>> {
    let size = guest_images::disk::parse_size(&s.file_size)?;
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for (i, line) in s.steps.iter().enumerate() {
        let n = i + 1;
        let pressure = s.pressure.as_deref().unwrap_or("none");
        if line.trim() == "{pressure}" {
            match pressure {
                "pageout" => out.push("madvise m pageout".to_string()),
                "drop_caches" => out.push("drop_caches 3".to_string()),
                _ => {}
            }
            continue;
        }
        let mut text = String::new();
        let mut rest = line.as_str();
        while let Some(open) = rest.find('{') {
            text.push_str(&rest[..open]);
            let Some(close) = rest[open..].find('}') else {
                bail!("step {n} {line:?}: unclosed {{");
            };
            let name = &rest[open + 1..open + close];
            let need = |v: &Option<String>, what: &str| -> Result<String> {
                v.clone().ok_or_else(|| {
                    anyhow::anyhow!(
                        "step {n} {line:?} uses {{{what}}} but the scenario sets no `{what}`"
                    )
                })
            };
            let value = match name {
                "file" => FILE.to_string(),
                "size" => s.file_size.clone(),
                "pages" => (size / 4096).to_string(),
                "pin" => need(&s.pin, "pin")?,
                "release" => need(&s.release, "release")?,
                "dma" => need(&s.dma, "dma")?,
                r if r.starts_with("rand:") => {
                    let range = &r[5..];
                    let (a, b) = range
                        .split_once('-')
                        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
                        .filter(|(a, b)| a <= b)
                        .ok_or_else(|| {
                            anyhow::anyhow!("step {n} {line:?}: {{rand:A-B}} needs A <= B")
                        })?;
                    // The full u64 range has no `b - a + 1`: any draw is in it.
                    match (b - a).checked_add(1) {
                        Some(span) => (a + rng.next() % span).to_string(),
                        None => rng.next().to_string(),
                    }
                }
                other => match s
                    .machine_vars
                    .get(machine)
                    .and_then(|m| m.get(other))
                    .or_else(|| s.kernel_vars.get(kernel).and_then(|m| m.get(other)))
                    .or_else(|| s.vars.get(other))
                {
                    Some(v) => v.clone(),
                    None => bail!("step {n} {line:?}: unknown variable {{{other}}}"),
                },
            };
            text.push_str(&value);
            rest = &rest[open + close + 1..];
        }
        text.push_str(rest);
        let text = text.trim().to_string();
        if !text.is_empty() {
            out.push(text);
        }
    }
    // The oracle reads the final disk image, which holds what the agent's sync at shutdown
    // wrote; the extents must describe that same state. A filesystem may still move the file
    // after the workload's last fsync (6.1 btrfs: its COW fix-up worker rewrites pages dirtied
    // behind its back to a new extent at a later writeback, sometimes after more than one
    // sync), so `settled` syncs and maps until two maps in a row agree. No FIEMAP_FLAG_SYNC:
    // a file whose writeback fails (btrfs -EUCLEAN) must still show where its data is on
    // disk (sync(2) itself never fails).
    out.push(format!("fiemap {FILE} settled"));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(steps: &[&str]) -> Scenario {
        let text = format!(
            "id = \"T\"\ntitle = \"t\"\ndescription = \"d\"\nkernels = [\"6.12\"]\n\
             filesystems = [\"ext4\"]\npin = \"gup\"\nrelease = \"dirty_lock\"\n\
             dma = \"burst 3\"\npressure = \"pageout\"\nfile_size = \"16K\"\nsteps = {steps:?}\n\
             [expect.default]\nverdicts = []\n"
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn variables_pressure_and_fiemap() {
        let s = scenario(&[
            "write {file} {size} stamp:file",
            "pin r m {pin} rw",
            "{pressure}",
            "dma_start r {dma}",
            "release r {release}",
        ]);
        assert_eq!(
            expand(&s, "6.12", "kvm", 1).unwrap(),
            [
                "write /mnt/f 16K stamp:file",
                "pin r m gup rw",
                "madvise m pageout",
                "dma_start r burst 3",
                "release r dirty_lock",
                "fiemap /mnt/f settled"
            ]
        );
    }

    #[test]
    fn per_kernel_variables() {
        let mut s = scenario(&["pin r m pin_longterm rw expect={pin_result}"]);
        s.vars.insert("pin_result".into(), "0".into());
        s.kernel_vars
            .entry("6.12".into())
            .or_default()
            .insert("pin_result".into(), "EFAULT".into());
        assert_eq!(
            expand(&s, "6.12", "kvm", 0).unwrap()[0],
            "pin r m pin_longterm rw expect=EFAULT"
        );
        assert_eq!(
            expand(&s, "6.1", "kvm", 0).unwrap()[0],
            "pin r m pin_longterm rw expect=0"
        );
        s.machine_vars
            .entry("qemu-tcg".into())
            .or_default()
            .insert("pin_result".into(), "ENOMEM".into());
        assert_eq!(
            expand(&s, "6.12", "qemu-tcg", 0).unwrap()[0],
            "pin r m pin_longterm rw expect=ENOMEM",
            "a machine's value wins over the kernel's"
        );
        assert_eq!(
            expand(&s, "6.12", "kvm", 0).unwrap()[0],
            "pin r m pin_longterm rw expect=EFAULT"
        );
    }

    #[test]
    fn seeded_random_numbers_repeat() {
        let s = scenario(&["sleep {rand:10-20}", "sleep {rand:10-20}"]);
        let a = expand(&s, "6.12", "kvm", 7).unwrap();
        assert_eq!(a, expand(&s, "6.12", "kvm", 7).unwrap());
        for l in &a[..2] {
            let v: u64 = l[6..].parse().unwrap();
            assert!((10..=20).contains(&v), "{l}");
        }
        assert!((0..50).any(|seed| expand(&s, "6.12", "kvm", seed).unwrap() != a));
    }

    #[test]
    fn errors_name_the_step() {
        let mut s = scenario(&["sleep {nope}"]);
        let e = expand(&s, "6.12", "kvm", 0).unwrap_err().to_string();
        assert!(
            e.contains("step 1") && e.contains("unknown variable {nope}"),
            "{e}"
        );
        s.steps = vec!["sleep {rand:0-18446744073709551615}".into()];
        assert!(expand(&s, "6.12", "kvm", 3).is_ok(), "the whole u64 range");
        s.steps = vec!["sleep {rand:9-1}".into()];
        assert!(expand(&s, "6.12", "kvm", 0).is_err());
        s.steps = vec!["sleep {size".into()];
        assert!(expand(&s, "6.12", "kvm", 0)
            .unwrap_err()
            .to_string()
            .contains("unclosed"));
        s.dma = None;
        s.steps = vec!["dma_start r {dma}".into()];
        assert!(expand(&s, "6.12", "kvm", 0)
            .unwrap_err()
            .to_string()
            .contains("sets no `dma`"));
        assert!(check_schedule("burst x").is_err());
        assert!(check_schedule("rate 100 200").is_ok());
    }
}
