//! Scenario files (`scenarios/*.toml`): a workload for the guest agent, the matrix it runs on
//! (kernel versions × filesystems) and the expected verdicts per kernel and filesystem.
//! The format is documented in docs/scenario-format.md.

pub mod expand;
pub mod expect;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use expect::Expectation;

/// The kernel versions pinvm builds by name.
pub const KERNELS: [&str; 2] = ["6.1", "6.12"];
/// Longest scenario timeout: a day (a longer one is a typo, and `Instant + Duration` must not
/// overflow); what every machine accepts.
pub const MAX_TIMEOUT_S: u64 = machine::spec::MAX_TIMEOUT.as_secs();
/// Least guest RAM a scenario may ask for, MiB (as `pinvm boot --mem`).
pub const MIN_MEMORY_MIB: u64 = machine::spec::MIN_MEM_MIB;
/// Most guest RAM a scenario may ask for, MiB (as `pinvm boot --mem`).
pub const MAX_MEMORY_MIB: u64 = machine::spec::MAX_MEM_MIB;
/// Most vCPUs a scenario may ask for (as `pinvm boot --cpus`).
pub const MAX_CPUS: u8 = machine::spec::MAX_CPUS;
/// The machines a scenario may tune its variables for (`machine::Machine::name`).
pub const MACHINES: [&str; 3] = ["kvm", "qemu-tcg", "qemu-kvm"];
/// The filesystems pinvm makes images of.
pub const FILESYSTEMS: [&str; 3] = ["ext4", "xfs", "btrfs"];
/// Pin methods of the agent's `pin` step ({pin}).
pub const PIN_METHODS: [&str; 6] = [
    "gup",
    "gup_fast",
    "pin",
    "pin_fast",
    "pin_longterm",
    "pin_fast_longterm",
];
/// Release methods of the agent's `release` step ({release}).
pub const RELEASE_METHODS: [&str; 3] = ["dirty_lock", "dirty_nolock", "no_dirty"];
/// Memory pressure applied where a step says `{pressure}`.
pub const PRESSURES: [&str; 3] = ["none", "pageout", "drop_caches"];

/// One scenario file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short id from the research notes, e.g. "S3".
    pub id: String,
    /// One line.
    pub title: String,
    /// What the scenario does and why (prose).
    pub description: String,
    /// Where the prediction comes from (section of the research notes).
    #[serde(default)]
    pub research: Option<String>,
    /// Kernel versions of its matrix.
    pub kernels: Vec<String>,
    /// Filesystems of its matrix.
    pub filesystems: Vec<String>,
    /// Seconds before the watchdog stops the guest (a hang).
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// Guest RAM in MiB.
    #[serde(default = "default_memory")]
    pub memory: u64,
    #[serde(default = "default_cpus")]
    /// Number of vCPUs.
    pub cpus: u8,
    /// Extra kernel command-line words.
    #[serde(default)]
    pub append: Vec<String>,
    /// Size of the target file /mnt/f ({size}).
    #[serde(default = "default_file_size")]
    pub file_size: String,
    /// Pin method ({pin}).
    #[serde(default)]
    pub pin: Option<String>,
    /// Release method ({release}).
    #[serde(default)]
    pub release: Option<String>,
    /// DMA schedule for `dma_start` ({dma}), e.g. "burst 3", "rate 200 300", "writeback 1".
    #[serde(default)]
    pub dma: Option<String>,
    /// Memory pressure ({pressure} line): none, pageout (madvise(MADV_PAGEOUT) of mapping m),
    /// drop_caches (echo 3 > drop_caches).
    #[serde(default)]
    pub pressure: Option<String>,
    /// Extra {variables} for the steps, e.g. `pin_result = "0"`.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Per-kernel values overriding `vars`, e.g. `[kernel_vars."6.12"] pin_result = "EFAULT"`
    /// (for behaviour that differs by design between versions).
    #[serde(default)]
    pub kernel_vars: BTreeMap<String, BTreeMap<String, String>>,
    /// Per-machine values overriding both, e.g. `machine_vars."qemu-tcg" = { rounds = "2000" }`:
    /// a race's schedule tuned to a machine's speed (say why in the scenario's description).
    #[serde(default)]
    pub machine_vars: BTreeMap<String, BTreeMap<String, String>>,
    /// Patches under test per kernel version, e.g. `[patches] "6.12" = ["patches/x.patch"]`:
    /// paths relative to the scenario file, applied in order after pinvm's own patches and
    /// any `--patch` of the command line, when pinvm builds that version for the scenario.
    #[serde(default)]
    pub patches: BTreeMap<String, Vec<PathBuf>>,
    /// Config fragments per kernel version, like `patches` (applied after pinvm's fragments
    /// and any `--config` of the command line).
    #[serde(default)]
    pub configs: BTreeMap<String, Vec<PathBuf>>,
    /// Workload steps for the guest agent (docs/control-protocol.md), with {variables}.
    pub steps: Vec<String>,
    /// Expected verdicts, by "default", "<fs>", "<kernel>" or "<kernel>.<fs>" (most specific
    /// wins).
    pub expect: BTreeMap<String, Expectation>,
    /// Set by `load`: the file's stem, e.g. "S03-gup-reclaim".
    #[serde(skip)]
    pub name: String,
    /// Set by `load`: the file it was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

fn default_timeout() -> u64 {
    180
}
fn default_memory() -> u64 {
    128
}
fn default_cpus() -> u8 {
    2
}
fn default_file_size() -> String {
    "64K".into()
}

impl Scenario {
    /// Read and check a scenario file.
    pub fn load(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading scenario {}", path.display()))?;
        let mut s: Scenario =
            toml::from_str(&text).with_context(|| format!("scenario {}", path.display()))?;
        s.name = path
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or("scenario")
            .to_string();
        s.path = path.to_path_buf();
        s.validate()
            .with_context(|| format!("scenario {}", path.display()))?;
        Ok(s)
    }

    fn validate(&self) -> Result<()> {
        if self.kernels.is_empty() || self.filesystems.is_empty() {
            bail!("`kernels` and `filesystems` must not be empty");
        }
        for k in &self.kernels {
            if !KERNELS.contains(&k.as_str()) {
                bail!("kernel {k:?}: pinvm knows {KERNELS:?}");
            }
        }
        for f in &self.filesystems {
            if !FILESYSTEMS.contains(&f.as_str()) {
                bail!("filesystem {f:?}: pinvm knows {FILESYSTEMS:?}");
            }
        }
        let check = |what: &str, v: &Option<String>, allowed: &[&str]| -> Result<()> {
            match v {
                Some(x) if !allowed.contains(&x.as_str()) => {
                    bail!("{what} {x:?}: expected one of {allowed:?}")
                }
                _ => Ok(()),
            }
        };
        check("pin", &self.pin, &PIN_METHODS)?;
        check("release", &self.release, &RELEASE_METHODS)?;
        check("pressure", &self.pressure, &PRESSURES)?;
        if let Some(d) = &self.dma {
            expand::check_schedule(d)?;
        }
        guest_images::disk::parse_size(&self.file_size)
            .with_context(|| format!("file_size {:?}", self.file_size))?;
        if !(1..=MAX_TIMEOUT_S).contains(&self.timeout)
            || !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&self.memory)
            || !(1..=MAX_CPUS).contains(&self.cpus)
        {
            bail!(
                "timeout must be 1..={MAX_TIMEOUT_S} s, memory {MIN_MEMORY_MIB}..={MAX_MEMORY_MIB} MiB, \
                 cpus 1..={MAX_CPUS} (got {} s, {} MiB, {})",
                self.timeout,
                self.memory,
                self.cpus
            );
        }
        if self.steps.is_empty() {
            bail!("no steps");
        }
        for (key, e) in &self.expect {
            expect::check_key(key)?;
            e.validate().with_context(|| format!("expect.{key}"))?;
        }
        // Every cell of the matrix has an expectation, and the steps expand.
        for k in &self.kernels {
            for f in &self.filesystems {
                self.expectation(k, f)?;
            }
        }
        for k in self.kernel_vars.keys() {
            if !KERNELS.contains(&k.as_str()) {
                bail!("kernel_vars.{k:?}: pinvm knows {KERNELS:?}");
            }
        }
        self.check_kernel_files("patches", &self.patches)?;
        self.check_kernel_files("configs", &self.configs)?;
        for m in self.machine_vars.keys() {
            if !MACHINES.contains(&m.as_str()) {
                bail!("machine_vars.{m:?}: pinvm's machines are {MACHINES:?}");
            }
        }
        for k in &self.kernels {
            for m in MACHINES {
                expand::expand(self, k, m, 0)?;
            }
        }
        Ok(())
    }

    /// Every file of a per-kernel `patches`/`configs` table exists, for a kernel pinvm knows.
    fn check_kernel_files(&self, what: &str, table: &BTreeMap<String, Vec<PathBuf>>) -> Result<()> {
        for (k, files) in table {
            if !KERNELS.contains(&k.as_str()) {
                bail!("{what}.{k:?}: pinvm knows {KERNELS:?}");
            }
            for f in files {
                let path = self.relative(f);
                if !path.is_file() {
                    bail!(
                        "{what}.{k:?}: {} (from {}) is not a file: the scenario {} names a \
                         {what} file that does not exist; fix the path (relative to the \
                         scenario file) or add the file",
                        path.display(),
                        f.display(),
                        self.name
                    );
                }
            }
        }
        Ok(())
    }

    /// `f` as named by the scenario: relative to the scenario file's directory.
    fn relative(&self, f: &Path) -> PathBuf {
        match self.path.parent() {
            Some(dir) => dir.join(f),
            None => f.to_path_buf(),
        }
    }

    /// The patches under test this scenario applies to kernel version `kernel`, in order.
    pub fn kernel_patches(&self, kernel: &str) -> Vec<PathBuf> {
        self.kernel_files(&self.patches, kernel)
    }

    /// The config fragments this scenario applies to kernel version `kernel`, in order.
    pub fn kernel_configs(&self, kernel: &str) -> Vec<PathBuf> {
        self.kernel_files(&self.configs, kernel)
    }

    fn kernel_files(&self, table: &BTreeMap<String, Vec<PathBuf>>, kernel: &str) -> Vec<PathBuf> {
        table
            .get(kernel)
            .map(|v| v.iter().map(|f| self.relative(f)).collect())
            .unwrap_or_default()
    }

    /// The expectation for one cell of the matrix.
    pub fn expectation(&self, kernel: &str, fs: &str) -> Result<&Expectation> {
        expect::lookup(&self.expect, kernel, fs)
            .with_context(|| format!("no expectation for kernel {kernel} on {fs}: add expect.\"{kernel}.{fs}\", expect.\"{kernel}\", expect.{fs} or expect.default"))
    }
}

/// The scenario files named on the command line: files, or directories (every *.toml in
/// them, sorted); nothing = the `scenarios/` directory of this checkout.
pub fn load_all(args: &[PathBuf]) -> Result<Vec<Scenario>> {
    let args: Vec<PathBuf> = if args.is_empty() {
        vec![default_dir()?]
    } else {
        args.to_vec()
    };
    let mut out = Vec::new();
    for a in &args {
        if a.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(a)
                .with_context(|| format!("reading {}", a.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            for f in files {
                out.push(Scenario::load(&f)?);
            }
        } else {
            out.push(resolve(a).and_then(|p| Scenario::load(&p))?);
        }
    }
    if out.is_empty() {
        bail!("no scenario files in {args:?}");
    }
    Ok(out)
}

/// A scenario argument: a path, or a name/id looked up in the scenarios directory
/// ("S03", "S03-gup-reclaim").
pub fn resolve(arg: &Path) -> Result<PathBuf> {
    if arg.is_file() {
        return Ok(arg.to_path_buf());
    }
    let dir = default_dir()?;
    let want = arg.to_string_lossy().to_string();
    let mut hits: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            p.extension().is_some_and(|x| x == "toml")
                && (stem == want || stem.starts_with(&format!("{want}-")))
        })
        .collect();
    hits.sort();
    match hits.len() {
        1 => Ok(hits.remove(0)),
        0 => bail!(
            "{}: no such file, and no scenario of that name in {}",
            arg.display(),
            dir.display()
        ),
        _ => bail!("{}: ambiguous, matches {hits:?}", arg.display()),
    }
}

/// `$PINVM_SCENARIOS`, else `scenarios/` in the current directory or next to the source tree
/// this binary was built from.
pub fn default_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("PINVM_SCENARIOS") {
        return Ok(PathBuf::from(d));
    }
    let here = PathBuf::from("scenarios");
    if here.is_dir() {
        return Ok(here);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    if built.is_dir() {
        return Ok(built);
    }
    bail!("no scenarios directory: run from the pinvm checkout or set PINVM_SCENARIOS")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every scenario in the repository loads, expands on each of its kernels and has an
    /// expectation for every cell of its matrix.
    #[test]
    fn every_scenario_file_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let all = load_all(&[dir]).unwrap();
        assert!(all.len() >= 11, "{} scenarios", all.len());
        let mut ids: Vec<&str> = all.iter().map(|s| s.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), all.len(), "duplicate ids");
    }

    /// `patches`/`configs` name files relative to the scenario; a missing one names the
    /// scenario and the path.
    #[test]
    fn kernel_files_resolve_and_are_checked() {
        let dir = std::env::temp_dir().join(format!("pinvm-scen-files-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("patches")).unwrap();
        std::fs::write(dir.join("patches/a.patch"), "").unwrap();
        std::fs::write(dir.join("extra.config"), "CONFIG_X=y\n").unwrap();
        let body =
            "id = \"X\"\ntitle = \"t\"\ndescription = \"d\"\nkernels = [\"6.1\", \"6.12\"]\n\
                    filesystems = [\"ext4\"]\nsteps = [\"sync\"]\n";
        let write = |name: &str, tables: &str| {
            let p = dir.join(name);
            std::fs::write(
                &p,
                format!("{body}{tables}[expect.default]\nverdicts = []\n"),
            )
            .unwrap();
            p
        };
        let good = write(
            "S99-good.toml",
            "[patches]\n\"6.12\" = [\"patches/a.patch\"]\n[configs]\n\"6.12\" = [\"extra.config\"]\n",
        );
        let s = Scenario::load(&good).unwrap();
        assert_eq!(s.kernel_patches("6.12"), vec![dir.join("patches/a.patch")]);
        assert_eq!(s.kernel_configs("6.12"), vec![dir.join("extra.config")]);
        assert!(s.kernel_patches("6.1").is_empty());
        let missing = write(
            "S98-missing.toml",
            "[patches]\n\"6.1\" = [\"patches/b.patch\"]\n",
        );
        let e = format!("{:#}", Scenario::load(&missing).unwrap_err());
        assert!(
            e.contains("S98-missing") && e.contains("patches/b.patch"),
            "{e}"
        );
        let kernel = write(
            "S97-kernel.toml",
            "[configs]\n\"5.10\" = [\"extra.config\"]\n",
        );
        let e = format!("{:#}", Scenario::load(&kernel).unwrap_err());
        assert!(e.contains("configs.\"5.10\""), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("pinvm-scen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = "id = \"X\"\ntitle = \"t\"\ndescription = \"d\"\nkernels = [\"6.12\"]\n\
                    filesystems = [\"ext4\"]\nsteps = [\"sync\"]\n";
        let cases = [
            ("[expect.default]\nverdicts = []\nbogus = 1\n", "bogus"),
            (
                "[expect.default]\nverdicts = [\"torn\"]\n",
                "unknown verdict",
            ),
            (
                "[expect.xfs]\nverdicts = []\n",
                "no expectation for kernel 6.12 on ext4",
            ),
            (
                "pin = \"grab\"\n[expect.default]\nverdicts = []\n",
                "pin \"grab\"",
            ),
            // Resource bounds, checked at load (a day would overflow nothing, a year of
            // timeout or 2^44 MiB would have panicked or wrapped at run time).
            (
                "timeout = 86401\n[expect.default]\nverdicts = []\n",
                "timeout must be 1..=86400 s, memory 32..=65536 MiB, cpus 1..=32 (got 86401 s",
            ),
            ("timeout = 0\n[expect.default]\nverdicts = []\n", "(got 0 s"),
            (
                "memory = 17592186044416\n[expect.default]\nverdicts = []\n",
                "17592186044416 MiB",
            ),
            ("memory = 16\n[expect.default]\nverdicts = []\n", "16 MiB"),
            ("cpus = 33\n[expect.default]\nverdicts = []\n", "MiB, 33)"),
            ("cpus = 0\n[expect.default]\nverdicts = []\n", "MiB, 0)"),
            ("cpus = 300\n[expect.default]\nverdicts = []\n", "cpus"),
        ];
        for (i, (extra, want)) in cases.iter().enumerate() {
            let p = dir.join(format!("bad{i}.toml"));
            // Top-level keys must come before the tables.
            let text = if extra.starts_with('[') {
                format!("{base}{extra}")
            } else {
                let (top, rest) = extra.split_once('\n').unwrap();
                format!("{top}\n{base}{rest}")
            };
            std::fs::write(&p, text).unwrap();
            let e = format!("{:#}", Scenario::load(&p).unwrap_err());
            assert!(e.contains(want), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
