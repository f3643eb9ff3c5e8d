//! Time-boxed property fuzzing on stable Rust: [`fuzz`] runs a proptest strategy against a
//! target for `PINVM_FUZZ_SECS` seconds (default [`DEFAULT_SECS`]), counts the executions and
//! prints them; a failure is shrunk by proptest and reported with the seed that reproduces it
//! (`PINVM_FUZZ_SEED`). [`mutated`] turns a valid encoding into hostile variants of it, so a
//! target explores both the format's edges and random bytes.
//!
//! The targets live in this crate's `tests/` (one file per crate under test); `ci/fuzz.sh`
//! runs them all. cargo-fuzz targets (nightly, coverage-guided) stay in `devices/fuzz` for
//! long runs.

#![warn(missing_docs)]

use std::cell::Cell;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

/// Seconds per target when `PINVM_FUZZ_SECS` is not set: the CI smoke.
pub const DEFAULT_SECS: f64 = 3.0;
/// Cases per proptest run; the time box is checked between runs.
const BATCH: u32 = 32;

/// The time box of one target: `PINVM_FUZZ_SECS` (a decimal number of seconds) or
/// [`DEFAULT_SECS`].
pub fn budget() -> Duration {
    let secs = std::env::var("PINVM_FUZZ_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(DEFAULT_SECS);
    Duration::from_secs_f64(secs.min(7.0 * 86_400.0))
}

/// The run's seed: `PINVM_FUZZ_SEED`, or one from the clock and the process id.
fn seed() -> u64 {
    if let Some(s) = std::env::var("PINVM_FUZZ_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return s;
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32)
}

/// The 32-byte ChaCha seed of batch `batch` of run `seed`.
fn batch_seed(seed: u64, batch: u64) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&batch.to_le_bytes());
    s[16..24].copy_from_slice(b"pinvmfuz");
    s
}

/// What one target did.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    /// Inputs the target ran on.
    pub executions: u64,
    /// Wall time spent.
    pub elapsed: Duration,
    /// The seed that reproduces the run.
    pub seed: u64,
}

/// Run `target` on inputs from `strategy` until the time box is spent; at least one batch
/// runs. Prints `fuzz NAME: N executions in S s (seed X)`. Panics with the shrunk input and
/// the seed when the target fails or panics.
pub fn fuzz<S>(
    name: &str,
    strategy: S,
    target: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Report
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let started = Instant::now();
    let deadline = started + budget();
    let seed = seed();
    let executions = Cell::new(0u64);
    let mut batch = 0u64;
    loop {
        let config = Config {
            cases: BATCH,
            failure_persistence: None,
            max_shrink_time: 60_000,
            ..Config::default()
        };
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &batch_seed(seed, batch));
        let mut runner = TestRunner::new_with_rng(config, rng);
        let result = runner.run(&strategy, |input| {
            executions.set(executions.get() + 1);
            target(input)
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(why, input)) => panic!(
                "fuzz {name}: {why}\nshrunk input: {input:#?}\n\
                 reproduce: PINVM_FUZZ_SEED={seed} (failed in batch {batch})"
            ),
            Err(TestError::Abort(why)) => panic!("fuzz {name}: aborted: {why} (seed {seed})"),
        }
        batch += 1;
        if Instant::now() >= deadline {
            break;
        }
    }
    let report = Report {
        executions: executions.get(),
        elapsed: started.elapsed(),
        seed,
    };
    println!(
        "fuzz {name}: {} executions in {:.1} s (seed {seed})",
        report.executions,
        report.elapsed.as_secs_f64()
    );
    report
}

/// One edit of a byte string.
#[derive(Clone, Debug)]
pub enum Edit {
    /// Flip one bit.
    Flip(Index, u8),
    /// Overwrite one byte.
    Set(Index, u8),
    /// Overwrite four bytes with a little-endian boundary value (0, 1, 0x7fffffff, u32::MAX...).
    Word(Index, u32),
    /// Insert bytes.
    Insert(Index, Vec<u8>),
    /// Remove up to this many bytes.
    Remove(Index, u8),
    /// Copy a slice to another place (repeated structures, misaligned frames).
    Splice(Index, Index, u8),
    /// Cut the end off.
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    let word = prop_oneof![
        Just(0u32),
        Just(1),
        Just(0x7fff_ffff),
        Just(0x8000_0000),
        Just(u32::MAX),
        Just(u32::MAX - 1),
        Just(4096),
        any::<u32>(),
    ];
    prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::Flip(i, b)),
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Edit::Set(i, v)),
        3 => (any::<Index>(), word).prop_map(|(i, w)| Edit::Word(i, w)),
        1 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Edit::Insert(i, v)),
        1 => (any::<Index>(), 1u8..64).prop_map(|(i, n)| Edit::Remove(i, n)),
        1 => (any::<Index>(), any::<Index>(), 1u8..128).prop_map(|(a, b, n)| Edit::Splice(a, b, n)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

/// Apply `e` to `b` (every index is taken modulo the current length).
pub fn apply(b: &mut Vec<u8>, e: &Edit) {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
    match e {
        Edit::Flip(i, bit) if !b.is_empty() => {
            let i = at(i, b.len());
            b[i] ^= 1 << bit;
        }
        Edit::Set(i, v) if !b.is_empty() => {
            let i = at(i, b.len());
            b[i] = *v;
        }
        Edit::Word(i, w) if b.len() >= 4 => {
            let i = at(i, b.len() - 3);
            b[i..i + 4].copy_from_slice(&w.to_le_bytes());
        }
        Edit::Insert(i, v) => {
            let i = at(i, b.len() + 1);
            b.splice(i..i, v.iter().copied());
        }
        Edit::Remove(i, n) if !b.is_empty() => {
            let i = at(i, b.len());
            let end = (i + usize::from(*n)).min(b.len());
            b.drain(i..end);
        }
        Edit::Splice(from, to, n) if !b.is_empty() => {
            let f = at(from, b.len());
            let end = (f + usize::from(*n)).min(b.len());
            let piece = b[f..end].to_vec();
            let t = at(to, b.len() + 1);
            b.splice(t..t, piece);
        }
        Edit::Truncate(i) => {
            let i = at(i, b.len() + 1);
            b.truncate(i);
        }
        _ => {}
    }
}

/// `valid` (any strategy producing well-formed bytes) with 0 to 8 [`Edit`]s applied: mostly
/// near-valid inputs, the ones that reach deep into a parser.
pub fn mutated(valid: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (valid, proptest::collection::vec(edit(), 0..8)).prop_map(|(mut b, edits)| {
        for e in &edits {
            apply(&mut b, e);
        }
        b
    })
}

/// Arbitrary bytes, up to `max` long.
pub fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_stay_in_bounds() {
        let r = fuzz(
            "edits",
            (bytes(64), proptest::collection::vec(edit(), 0..16)),
            |(mut b, es)| {
                let before = b.len();
                for e in &es {
                    apply(&mut b, e);
                }
                prop_assert!(b.len() <= before + es.len() * 128);
                Ok(())
            },
        );
        assert!(r.executions >= u64::from(BATCH));
    }

    #[test]
    fn a_failing_target_is_reported() {
        let caught = std::panic::catch_unwind(|| {
            fuzz("fails", bytes(8), |b| {
                prop_assert!(b.len() < 4, "long input");
                Ok(())
            })
        });
        let msg = caught.expect_err("the target fails on inputs of 4 bytes and more");
        let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains("long input") && msg.contains("PINVM_FUZZ_SEED="),
            "{msg}"
        );
        // Shrunk to the smallest failing input.
        assert!(
            msg.contains("shrunk input: [\n    0,\n    0,\n    0,\n    0,\n]"),
            "{msg}"
        );
    }
}
