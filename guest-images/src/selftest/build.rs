//! Building selftests: the tree's UAPI headers into a private directory, then one
//! `gcc -static` per test, cached by content.

use super::SelftestName;
use crate::cache::{atomic_publish, lock_path, temp_sibling, FileLock, KeyBuilder};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bumped when the way tests are built changes.
const FORMAT_VERSION: u32 = 2;
/// The compiler flags (the mm Makefile's, plus -static; `-U_FORTIFY_SOURCE` as there).
const CFLAGS: [&str; 5] = [
    "-static",
    "-O2",
    "-Wall",
    "-U_FORTIFY_SOURCE",
    "-D_GNU_SOURCE",
];
/// Libraries the mm tests link (`LDLIBS` of tools/testing/selftests/mm/Makefile).
const LDLIBS: [&str; 3] = ["-lrt", "-lpthread", "-lm"];
/// Support sources the mm tests are linked with, where the tree has them.
const MM_SUPPORT: [&str; 2] = ["vm_util.c", "thp_settings.c"];

/// A built test program.
#[derive(Debug, Clone)]
pub struct BuiltSelftest {
    /// Its name.
    pub name: SelftestName,
    /// The static binary in the cache.
    pub binary: PathBuf,
    /// True when it came from the cache.
    pub cached: bool,
}

/// The tests of one [`build`] call.
#[derive(Debug, Clone)]
pub struct SelftestBuild {
    /// Each test, in the order asked.
    pub tests: Vec<BuiltSelftest>,
    /// Set when the build slot's tree was last built for another kernel than the one booted
    /// (a later build with other patches moved it on): the tests come from that tree.
    pub tree_note: Option<String>,
}

/// Which kernel tree the tests come from.
#[derive(Debug, Clone, Copy)]
pub enum TreeRef<'a> {
    /// A tree nothing writes to once it exists: a Debian source's pristine extraction (right
    /// when the kernel has no patch under test: pinvm's own patches touch neither the
    /// selftests nor the UAPI headers they use).
    Pristine(&'a Path),
    /// `<dir>/src` of a build slot (or an older per-key build directory), read under the
    /// slot's lock so a kernel build cannot change it underneath; `kernel_key` is the booted
    /// kernel's cache key, checked against what the slot last built.
    Slot {
        /// The slot directory.
        dir: &'a Path,
        /// The booted kernel's cache key.
        kernel_key: &'a str,
    },
}

/// Builds (or finds) every test of `names` from the kernel tree `tree`. Binaries go to
/// `<cache>/selftests/<key>/<test>`.
pub fn build(tree: TreeRef, names: &[SelftestName], cache: &Path) -> Result<SelftestBuild> {
    let (tree, _lock, tree_note) = match tree {
        TreeRef::Pristine(t) => (t.to_path_buf(), None, None),
        TreeRef::Slot { dir, kernel_key } => {
            let lock = FileLock::acquire(&lock_path(dir), || {
                eprintln!(
                    "pinvm: waiting for a kernel build that uses {}",
                    dir.display()
                )
            })?;
            (dir.join("src"), Some(lock), slot_note(dir, kernel_key))
        }
    };
    let tree = tree.as_path();
    if !tree.join("Makefile").is_file() {
        bail!(
            "the kernel's tree {} is gone (pruned?): build the kernel again \
             (`pinvm kernel build`)",
            tree.display()
        );
    }
    let compiler = compiler_version()?;
    let headers_key = headers_key(tree)?;
    let mut headers: Option<Headers> = None;
    let mut out = Vec::new();
    for name in names {
        let sources = sources(tree, name)?;
        let mut key = KeyBuilder::new("selftest", FORMAT_VERSION);
        key.str_field("compiler", &compiler)
            .str_field("cflags", &CFLAGS.join(" "))
            .str_field("name", &name.to_string())
            .str_field("headers", &headers_key);
        for f in &sources.hashed {
            let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            key.str_field("file", &f.strip_prefix(tree).unwrap_or(f).to_string_lossy())
                .field("bytes", &bytes);
        }
        let key = key.finish();
        let dir = cache.join("selftests").join(&key[..24]);
        let binary = dir.join(&name.test);
        if binary.is_file() {
            out.push(BuiltSelftest {
                name: name.clone(),
                binary,
                cached: true,
            });
            continue;
        }
        if headers.is_none() {
            headers = Some(Headers::install(tree, cache)?);
        }
        let h = headers.as_ref().map(|h| h.include()).unwrap_or_default();
        compile(tree, name, &sources, &h, &dir)?;
        out.push(BuiltSelftest {
            name: name.clone(),
            binary,
            cached: false,
        });
    }
    Ok(SelftestBuild {
        tests: out,
        tree_note,
    })
}

/// A note when the slot's tree was last built for another kernel than `kernel_key`.
fn slot_note(dir: &Path, kernel_key: &str) -> Option<String> {
    let last = crate::kernel::slot::peek_record(dir)?.last_key?;
    (last != kernel_key).then(|| {
        format!(
            "the build slot {} was last built for kernel {} (not the booted {}): the tests \
             come from that tree",
            dir.display(),
            &last[..last.len().min(12)],
            &kernel_key[..kernel_key.len().min(12)]
        )
    })
}

/// `gcc --version`'s first line.
fn compiler_version() -> Result<String> {
    let out = Command::new("gcc")
        .arg("--version")
        .output()
        .context("running gcc (Debian package build-essential)")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string())
}

/// What a test is compiled from: the files passed to gcc, and every file whose bytes go into
/// the key (the suite's sources and headers, kselftest's headers, `mm/gup_test.h`).
struct Sources {
    compile: Vec<PathBuf>,
    hashed: Vec<PathBuf>,
}

fn sources(tree: &Path, name: &SelftestName) -> Result<Sources> {
    let main = name.source(tree)?;
    let dir = name.suite_dir(tree)?;
    let mut compile = vec![main];
    for s in MM_SUPPORT {
        let p = dir.join(s);
        if p.is_file() && !compile.contains(&p) {
            compile.push(p);
        }
    }
    let mut hashed = Vec::new();
    for d in [dir.as_path(), &tree.join("tools/testing/selftests")] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(d)
            .with_context(|| format!("listing {}", d.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "c" || x == "h"))
            .collect();
        files.sort();
        hashed.extend(files);
    }
    let gup = tree.join("mm/gup_test.h");
    if gup.is_file() {
        hashed.push(gup);
    }
    Ok(Sources { compile, hashed })
}

/// A key over the tree's UAPI header sources (what `headers_install` reads): every file under
/// `include/uapi`, `arch/x86/include/uapi` and `tools/include`, by path and bytes.
fn headers_key(tree: &Path) -> Result<String> {
    let mut key = KeyBuilder::new("selftest-headers", FORMAT_VERSION);
    for root in ["include/uapi", "arch/x86/include/uapi", "tools/include"] {
        let mut files = Vec::new();
        walk(&tree.join(root), &mut files)?;
        files.sort();
        for f in files {
            let bytes = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
            key.str_field(
                "file",
                &f.strip_prefix(tree).unwrap_or(&f).to_string_lossy(),
            )
            .field("bytes", &bytes);
        }
    }
    Ok(key.finish())
}

/// Every regular file below `dir` (a missing `dir` has none).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    for e in rd {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            walk(&e.path(), out)?;
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

/// The tree's UAPI headers installed in a private temporary directory (removed on drop).
struct Headers {
    dir: PathBuf,
}

impl Headers {
    /// `make -C TREE O=<tmp>/obj headers_install INSTALL_HDR_PATH=<tmp>/usr`: a fresh `O=`,
    /// so the slot's own `out/` is not touched.
    fn install(tree: &Path, cache: &Path) -> Result<Headers> {
        let dir = temp_sibling(&cache.join("selftests").join("headers"));
        std::fs::create_dir_all(&dir)?;
        let h = Headers { dir };
        let out = Command::new("make")
            .arg("-C")
            .arg(tree)
            .arg(format!("O={}", h.dir.join("obj").display()))
            .arg(format!("INSTALL_HDR_PATH={}", h.dir.join("usr").display()))
            .args(["ARCH=x86_64", "-s", "headers_install"])
            .env_remove("MAKEFLAGS")
            .output()
            .context("running make headers_install")?;
        if !out.status.success() {
            bail!(
                "make headers_install in {} failed ({}): {}",
                tree.display(),
                out.status,
                tail(&out.stderr)
            );
        }
        // The tests include "local_config.h" (made by check_config.sh: whether liburing is
        // there); an empty one builds them without io_uring.
        std::fs::create_dir_all(h.dir.join("cfg"))?;
        std::fs::write(h.dir.join("cfg/local_config.h"), "")?;
        Ok(h)
    }

    /// The `-isystem`/`-I` arguments.
    fn include(&self) -> Vec<String> {
        vec![
            format!("-isystem{}", self.dir.join("usr/include").display()),
            format!("-I{}", self.dir.join("cfg").display()),
        ]
    }
}

impl Drop for Headers {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The last lines of a tool's output.
fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Compiles one test into `dir/<test>` (published with a rename).
fn compile(
    tree: &Path,
    name: &SelftestName,
    sources: &Sources,
    include: &[String],
    dir: &Path,
) -> Result<()> {
    let tmp = temp_sibling(dir);
    std::fs::create_dir_all(&tmp)?;
    let suite_dir = name.suite_dir(tree)?;
    // Sources by their names from the suite's directory, as its Makefile compiles them:
    // tests use __FILE__ for names of files they create in the working directory.
    let files: Vec<&std::ffi::OsStr> = sources
        .compile
        .iter()
        .filter_map(|p| p.file_name())
        .collect();
    let made = (|| -> Result<()> {
        let out = Command::new("gcc")
            .current_dir(&suite_dir)
            .args(CFLAGS)
            .args(include)
            .arg(format!(
                "-I{}",
                tree.join("tools/testing/selftests").display()
            ))
            .arg(format!(
                "-isystem{}",
                tree.join("tools/include/uapi").display()
            ))
            .arg(format!("-I{}", tree.display()))
            .arg("-o")
            .arg(tmp.join(&name.test))
            .args(&files)
            .args(LDLIBS)
            .output()
            .context("running gcc (Debian package build-essential)")?;
        std::fs::write(
            tmp.join("build.log"),
            [&out.stdout[..], &out.stderr[..]].concat(),
        )?;
        if !out.status.success() {
            bail!(
                "{name}: gcc -static failed ({}): {}",
                out.status,
                tail(&out.stderr)
            );
        }
        Ok(())
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    atomic_publish(&tmp, dir)?;
    Ok(())
}
