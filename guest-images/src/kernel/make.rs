//! Running kbuild: `make -C <src> O=<out> …` with its output appended to a log file and
//! parsed for progress (kbuild's quiet lines: `  CC      fs/ext4/inode.o`).

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How many lines of the log an error shows.
pub const ERROR_TAIL_LINES: usize = 30;

/// kbuild quiet-mode verbs that mean "one more file was produced".
const BUILD_VERBS: &[&str] = &[
    "CC",
    "AS",
    "LD",
    "AR",
    "HOSTCC",
    "HOSTLD",
    "HOSTCXX",
    "CPP",
    "LDS",
    "OBJCOPY",
    "GEN",
    "WRAP",
    "SYSHDR",
    "SYSTBL",
    "UPD",
    "VDSO",
    "VDSO2C",
    "MKPIGGY",
    "ZOFFSET",
    "VOFFSET",
    "RELOCS",
    "LZ4",
    "XZKERN",
    "GZIP",
    "ZSTD22",
    "BUILD",
    "KSYMS",
    "SORTTAB",
    "NM",
    "MODPOST",
    "POLICY",
    "CHKSHA1",
    "CERT",
    "EXTRACT_CERTS",
    "COPY",
    "TEST",
    "CHK",
    "DESCEND",
    "INSTALL",
    "PASYMS",
    "IPCFG",
    "AWK",
    "PERLASM",
    "SHIPPED",
    "CC [M]",
    "RUSTC",
    "BINDGEN",
    "EXPORTS",
    "MKCAP",
    "MKELF",
    "ASN.1",
    "CHKREL",
];

/// Parses a kbuild quiet line (`  CC      kernel/fork.o`) into (verb, target).
pub fn parse_kbuild_line(line: &str) -> Option<(&str, &str)> {
    let body = line.strip_prefix("  ")?;
    if body.starts_with(' ') {
        return None;
    }
    let (verb, rest) = if let Some(rest) = body.strip_prefix("CC [M]") {
        ("CC [M]", rest)
    } else {
        body.split_once(' ')?
    };
    let target = rest.split_whitespace().next()?;
    BUILD_VERBS.contains(&verb).then_some((verb, target))
}

/// Variables the kernel's build reads from the environment that change what it builds (the
/// compiler and its flags, the version string, the config file, the output directory, make's
/// own flags) without changing pinvm's cache key: never passed to `make`.
const KBUILD_ENV: [&str; 19] = [
    "MAKEFLAGS",
    "MFLAGS",
    "ARCH",
    "SUBARCH",
    "CROSS_COMPILE",
    "LLVM",
    "LLVM_IAS",
    "KCFLAGS",
    "KCPPFLAGS",
    "KAFLAGS",
    "KRUSTFLAGS",
    "LOCALVERSION",
    "HOSTCFLAGS",
    "HOSTCXXFLAGS",
    "HOSTLDFLAGS",
    "HOSTLDLIBS",
    "HOSTRUSTFLAGS",
    "INSTALL_MOD_PATH",
    "O",
];

/// [`KBUILD_ENV`], and every `KBUILD_*` / `KCONFIG_*` variable of this process's environment
/// (KBUILD_BUILD_TIMESTAMP, KBUILD_OUTPUT, KCONFIG_CONFIG, ...).
pub fn kbuild_environment() -> Vec<String> {
    let mut vars: Vec<String> = KBUILD_ENV.iter().map(|v| v.to_string()).collect();
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str() {
            if k.starts_with("KBUILD_") || k.starts_with("KCONFIG_") {
                vars.push(k.to_string());
            }
        }
    }
    vars
}

/// The values pinvm gives kbuild's build-identity variables, so that the same source,
/// config and compiler give the same vmlinux (no date, user, host or build counter in it).
pub const REPRODUCIBLE_ENV: [(&str, &str); 4] = [
    ("KBUILD_BUILD_TIMESTAMP", "Thu Jan  1 00:00:00 UTC 1970"),
    ("KBUILD_BUILD_USER", "pinvm"),
    ("KBUILD_BUILD_HOST", "pinvm"),
    ("KBUILD_BUILD_VERSION", "1"),
];

/// ccache settings for a build ([`Ccache::detect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ccache {
    /// The `ccache` binary.
    pub binary: PathBuf,
    /// `CCACHE_DIR`: pinvm's own, inside its cache, so `pinvm cache` can show and prune it.
    pub dir: PathBuf,
    /// `CCACHE_BASEDIR`: build slots under it share hits (paths are hashed relative to it).
    pub base_dir: PathBuf,
}

/// ccache's size limit in pinvm's cache.
pub const CCACHE_MAX_SIZE: &str = "5G";

impl Ccache {
    /// ccache from `PATH`, unless `PINVM_CCACHE=0`; `None` when it is not installed.
    pub fn detect(cache_root: &Path) -> Option<Ccache> {
        if std::env::var_os("PINVM_CCACHE").is_some_and(|v| v == "0") {
            return None;
        }
        let binary = std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|d| Path::new(d).join("ccache"))
            .find(|p| p.is_file())?;
        Some(Ccache {
            binary,
            dir: cache_root.join("ccache"),
            base_dir: super::slot::slots_dir(cache_root),
        })
    }
}

/// One `make` invocation.
pub struct Make<'a> {
    /// Kernel source directory (`-C`).
    pub src: &'a Path,
    /// Build directory (`O=`).
    pub out: &'a Path,
    /// Log file (appended to).
    pub log: &'a Path,
    /// Compile through ccache.
    pub ccache: Option<&'a Ccache>,
}

impl Make<'_> {
    fn command(&self, args: &[String]) -> Command {
        let mut cmd = Command::new("make");
        cmd.arg("-C")
            .arg(self.src)
            .arg(format!("O={}", self.out.display()))
            .args(args)
            .stdin(Stdio::null())
            // Reproducible and independent of the caller's environment.
            .env("LC_ALL", "C");
        for var in kbuild_environment() {
            cmd.env_remove(var);
        }
        cmd.envs(REPRODUCIBLE_ENV);
        if let Some(c) = self.ccache {
            cmd.arg(format!("CC={} gcc", c.binary.display()))
                .env("CCACHE_DIR", &c.dir)
                .env("CCACHE_BASEDIR", &c.base_dir)
                .env("CCACHE_MAXSIZE", CCACHE_MAX_SIZE)
                .env("CCACHE_NOHASHDIR", "1");
        }
        cmd
    }

    /// Runs `make <args>` with stdout and stderr (merged, in order) appended to the log;
    /// every line is passed to `on_line`. On failure: an error with the log's tail and path.
    pub fn run(&self, args: &[String], on_line: &mut dyn FnMut(&str)) -> Result<()> {
        let mut log = open_log(self.log)?;
        writeln!(
            log,
            "\n$ make -C {} O={} {}",
            self.src.display(),
            self.out.display(),
            args.join(" ")
        )?;
        let (reader, writer) = std::io::pipe().context("creating a pipe")?;
        let writer2 = writer.try_clone().context("cloning a pipe")?;
        let mut cmd = self.command(args);
        cmd.stdout(writer).stderr(writer2);
        let mut child = cmd.spawn().context("running make (is `make` installed?)")?;
        // Our copies of the write end must be closed, or the read loop never sees EOF.
        drop(cmd);
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .context("reading make's output")?;
            if n == 0 {
                break;
            }
            log.write_all(&buf)?;
            let line = String::from_utf8_lossy(&buf);
            on_line(line.trim_end_matches(['\n', '\r']));
        }
        let status = child.wait().context("waiting for make")?;
        log.flush()?;
        if !status.success() {
            bail!(
                "`make {}` failed ({status}); last lines of {}:\n{}",
                args.join(" "),
                self.log.display(),
                tail(self.log, ERROR_TAIL_LINES)
            );
        }
        Ok(())
    }

    /// Runs `make -s <args>` and returns its stdout (stderr goes to the log).
    pub fn capture(&self, args: &[String]) -> Result<String> {
        let log = open_log(self.log)?;
        let mut cmd = self.command(args);
        cmd.arg("-s").stdout(Stdio::piped()).stderr(log);
        let out = cmd.output().context("running make")?;
        if !out.status.success() {
            bail!(
                "`make -s {}` failed ({}); last lines of {}:\n{}",
                args.join(" "),
                out.status,
                self.log.display(),
                tail(self.log, ERROR_TAIL_LINES)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// The last `n` lines of a file (lossy UTF-8), or a note if it cannot be read.
pub fn tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// First line of `<tool> --version`, e.g. `gcc (Debian 12.2.0-14) 12.2.0`.
pub fn tool_version(tool: &str) -> Result<String> {
    let out = Command::new(tool)
        .arg("--version")
        .env("LC_ALL", "C")
        .output()
        .with_context(|| format!("running {tool} --version (is {tool} installed?)"))?;
    if !out.status.success() {
        bail!("{tool} --version failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string())
}

/// Paths of the build products inside an `O=` directory.
pub fn products(out: &Path) -> [(&'static str, PathBuf); 4] {
    [
        ("vmlinux", out.join("vmlinux")),
        ("bzImage", out.join("arch/x86/boot/bzImage")),
        ("System.map", out.join("System.map")),
        ("config", out.join(".config")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::TestDir;

    #[test]
    fn the_callers_kbuild_environment_never_reaches_make() {
        // Names of this test's own, so no other test reads them.
        std::env::set_var("KBUILD_PINVM_TEST_VAR", "1");
        std::env::set_var("KCONFIG_PINVM_TEST_VAR", "1");
        let m = Make {
            src: Path::new("/src"),
            out: Path::new("/out"),
            log: Path::new("/log"),
            ccache: None,
        };
        let cmd = m.command(&[]);
        let removed: Vec<String> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        for v in [
            "LLVM",
            "KCFLAGS",
            "KCPPFLAGS",
            "LOCALVERSION",
            "CROSS_COMPILE",
            "MAKEFLAGS",
            "KBUILD_PINVM_TEST_VAR",
            "KCONFIG_PINVM_TEST_VAR",
        ] {
            assert!(
                removed.iter().any(|r| r == v),
                "{v} reaches make: {removed:?}"
            );
        }
    }

    #[test]
    fn kbuild_lines() {
        assert_eq!(
            parse_kbuild_line("  CC      fs/ext4/inode.o"),
            Some(("CC", "fs/ext4/inode.o"))
        );
        assert_eq!(
            parse_kbuild_line("  AR      lib/lib.a"),
            Some(("AR", "lib/lib.a"))
        );
        assert_eq!(
            parse_kbuild_line("  HOSTCC  scripts/kconfig/conf.o"),
            Some(("HOSTCC", "scripts/kconfig/conf.o"))
        );
        assert_eq!(
            parse_kbuild_line("  CC [M]  drivers/x.o"),
            Some(("CC [M]", "drivers/x.o"))
        );
        assert_eq!(
            parse_kbuild_line("  LD      arch/x86/boot/setup.elf"),
            Some(("LD", "arch/x86/boot/setup.elf"))
        );
        assert_eq!(parse_kbuild_line("make[1]: Entering directory '/x'"), None);
        assert_eq!(parse_kbuild_line("fs/ext4/inode.c:12:1: error: x"), None);
        assert_eq!(parse_kbuild_line("    CC  indented"), None);
        assert_eq!(
            parse_kbuild_line("  Kernel: arch/x86/boot/bzImage is ready  (#1)"),
            None
        );
        assert_eq!(parse_kbuild_line("  CC"), None);
    }

    #[test]
    fn run_logs_merged_output_and_reports_tail() {
        let t = TestDir::new("make");
        let dir = t.path();
        std::fs::write(
            dir.join("Makefile"),
            "ok:\n\t@echo '  CC      a.o'\n\t@echo warn >&2\n\t@echo '  LD      b'\n\
             bad:\n\t@for i in $$(seq 1 40); do echo line$$i; done\n\t@false\n\
             kernelrelease:\n\t@echo 6.12.0-test\n",
        )
        .unwrap();
        let log = dir.join("build.log");
        let out = dir.join("out");
        std::fs::create_dir_all(&out).unwrap();
        let m = Make {
            src: dir,
            out: &out,
            log: &log,
            ccache: None,
        };
        let mut lines = vec![];
        m.run(&["ok".into()], &mut |l| lines.push(l.to_string()))
            .unwrap();
        assert!(lines.iter().any(|l| l == "  CC      a.o"), "{lines:?}");
        assert!(lines.iter().any(|l| l == "warn"), "{lines:?}");
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(
            logged.contains("warn") && logged.contains("  LD      b"),
            "{logged}"
        );

        let err = m.run(&["bad".into()], &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains(&log.display().to_string()), "{err}");
        assert!(err.contains("line40") && err.contains("line20"), "{err}");
        assert!(!err.contains("line5\n"), "only the tail: {err}");

        assert_eq!(m.capture(&["kernelrelease".into()]).unwrap(), "6.12.0-test");
    }

    #[test]
    fn tail_of_short_and_missing_files() {
        let t = TestDir::new("tail");
        let p = t.path().join("f");
        std::fs::write(&p, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&p, 2), "b\nc");
        assert_eq!(tail(&p, 10), "a\nb\nc");
        assert!(tail(&t.path().join("none"), 3).contains("cannot read"));
    }
}
