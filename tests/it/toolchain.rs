//! A real C toolchain as test input: a directory assembled from this
//! machine's own Debian packages (gcc, binutils, libc headers, make, and
//! optionally cmake), plus a static busybox for `sh` and the basic tools.
//! Black-box tests import it as a base element, so that C builds of the
//! `make`, `autotools` and `cmake` kinds run in a sandbox whose sysroot holds
//! nothing but declared dependencies.
//!
//! The package list is computed from a seed list by following `Depends:` and
//! `Pre-Depends:` among installed packages (skipping packages a compiler does
//! not need at run time). The tree is assembled once per machine and package
//! versions, under `$TMPDIR/cas-toolchain-<flavor>-<hash>`, built in a
//! temporary directory and renamed into place (so concurrent test processes
//! never see a partial tree). Files are copied, never hardlinked: the tree
//! must not share inodes with the host's compiler.
//!
//! Only std is used: this file is also compiled into the `cas-sandbox`
//! crate's tests (`#[path]`), where it is checked before the CLI exists, and
//! into `cas-mkbase` (bench crate), which `scripts/mkbase.sh` runs to make the
//! example project's sysroots: one implementation for tests and demo.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// What the tree is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Flavor {
    /// gcc, binutils, libc6-dev, make, coreutils (`install`, which busybox
    /// lacks), sed, grep + busybox: enough for the
    /// `make` and `autotools` kinds (configure scripts need only a POSIX
    /// shell, sed, grep, awk, cmp, diff, which busybox has).
    C,
    /// Everything in `C` plus cmake and its libraries.
    CMake,
    /// No packages: the merged-/usr links and the static busybox only (a
    /// run-time base for root filesystems).
    Busybox,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Flavor::C => "c",
            Flavor::CMake => "cmake",
            Flavor::Busybox => "busybox",
        }
    }

    /// The packages the closure starts from.
    pub(crate) fn seed(self) -> Vec<&'static str> {
        if self == Flavor::Busybox {
            return Vec::new();
        }
        let mut seed = vec![
            "gcc-12",
            "gcc",
            "cpp-12",
            "cpp",
            "binutils",
            "libc6-dev",
            "make",
            "coreutils",
            "sed",
            "grep",
        ];
        if self == Flavor::CMake {
            seed.push("cmake");
        }
        seed
    }
}

/// Dependencies never followed: tools of the package manager, interpreters
/// and runtime-only libraries a C build does not use. (The sanitizer
/// runtimes are pulled by libgcc-12-dev and weigh 30 MB; `-fsanitize` is
/// not available in the tree.)
pub(crate) const SKIP: &[&str] = &[
    "perl-base",
    "perl",
    "debconf",
    "dpkg",
    "install-info",
    "init-system-helpers",
    "procps",
    "tzdata",
    "sensible-utils",
    "adduser",
    "libasan8",
    "libtsan2",
    "liblsan0",
    "libubsan1",
];

/// Parts of packages that only humans read.
const SKIP_DIRS: &[&str] = &[
    "/usr/share/doc",
    "/usr/share/man",
    "/usr/share/info",
    "/usr/share/locale",
    "/usr/share/lintian",
    "/usr/share/bug",
    "/usr/share/bash-completion",
    "/usr/share/emacs",
    "/usr/share/vim",
    "/usr/share/gdb",
];

/// Big files a C build never runs: the LTO dumper (a debugging tool, 32 MB)
/// and the sanitizer libraries (their runtimes are skipped above).
fn skip_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.contains("lto-dump")
        || (path.starts_with("/usr/lib/gcc")
            && ["libasan", "libtsan", "liblsan", "libubsan", "libhwasan"]
                .iter()
                .any(|s| name.starts_with(s)))
}

/// Bump when the assembled layout changes: old cached trees are ignored.
const LAYOUT_VERSION: u32 = 2;

/// One installed package: `name` as dpkg knows it (`libc6:amd64`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Package {
    pub name: String,
    pub version: String,
}

/// What [`toolchain_tree`] made.
#[derive(Clone, Debug)]
pub(crate) struct Summary {
    pub root: PathBuf,
    pub packages: Vec<Package>,
    /// Regular files and symbolic links.
    pub files: usize,
    pub bytes: u64,
}

/// The cached toolchain tree of this flavor, assembled on first use (once
/// per process, and once per machine while package versions do not change).
/// Panics with the reason when it cannot be made: tests cannot go on.
pub(crate) fn toolchain(flavor: Flavor) -> PathBuf {
    static CACHE: OnceLock<Mutex<BTreeMap<Flavor, PathBuf>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(p) = cache.get(&flavor) {
        return p.clone();
    }
    let path = cached_tree(flavor).unwrap_or_else(|e| {
        panic!(
            "cannot assemble the {} toolchain for the C tests: {e}\n\
             (tests need the Debian packages: {})",
            flavor.name(),
            REQUIRED_DEBIAN_PACKAGES.join(" ")
        )
    });
    cache.insert(flavor, path.clone());
    path
}

/// Debian packages the C tests need installed (for scripts/install-deps.sh).
pub(crate) const REQUIRED_DEBIAN_PACKAGES: &[&str] = &[
    "gcc",
    "libc6-dev",
    "binutils",
    "make",
    "cmake",
    "busybox-static",
    "bubblewrap",
];

fn cached_tree(flavor: Flavor) -> Result<PathBuf, String> {
    let packages = packages(flavor)?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (LAYOUT_VERSION, &packages, busybox_identity()).hash(&mut h);
    let dir = std::env::temp_dir().join(format!(
        "cas-toolchain-{}-{:016x}",
        flavor.name(),
        h.finish()
    ));
    // The tree appears by an atomic rename: if it exists, it is complete.
    if dir.is_dir() {
        return Ok(dir);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tmp = dir.with_extension(format!("tmp-{}-{nanos}", std::process::id()));
    if let Err(e) = toolchain_tree_with(&tmp, flavor) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another process finished first: use its tree.
        Err(_) if dir.is_dir() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(format!(
                "cannot rename {} to {}: {e}",
                tmp.display(),
                dir.display()
            ))
        }
    }
}

fn busybox_identity() -> (u64, i64) {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/bin/busybox").map_or((0, 0), |m| (m.size(), m.mtime()))
}

/// Assembles the full toolchain (with cmake) into `dest`, which must not
/// exist yet.
pub(crate) fn toolchain_tree(dest: &Path) -> Result<Summary, String> {
    toolchain_tree_with(dest, Flavor::CMake)
}

/// The installed packages of a flavor: the closure of its seed.
pub(crate) fn packages(flavor: Flavor) -> Result<Vec<Package>, String> {
    let db = installed()?;
    let mut todo: Vec<String> = flavor
        .seed()
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if seen.contains(&name) {
            continue;
        }
        let pkg = db
            .packages
            .get(&name)
            .ok_or_else(|| format!("the Debian package {name} is not installed"))?;
        seen.insert(name.clone());
        for clause in pkg
            .depends
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            for alt in clause.split('|') {
                let n = alt
                    .trim()
                    .split([' ', '('])
                    .next()
                    .unwrap_or("")
                    .split(':')
                    .next()
                    .unwrap_or("");
                if SKIP.contains(&n) {
                    break;
                }
                if db.packages.contains_key(n) {
                    todo.push(n.to_owned());
                    break;
                }
                if let Some(p) = db.provides.get(n) {
                    todo.push(p.clone());
                    break;
                }
            }
        }
    }
    Ok(seen
        .into_iter()
        .filter_map(|n| {
            db.packages.get(&n).map(|p| Package {
                name: p.binary.clone(),
                version: p.version.clone(),
            })
        })
        .collect())
}

struct Installed {
    binary: String,
    version: String,
    depends: String,
}

struct Db {
    packages: BTreeMap<String, Installed>,
    provides: BTreeMap<String, String>,
}

fn installed() -> Result<Db, String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package}\t${binary:Package}\t${Version}\t${db:Status-Abbrev}\t${Provides}\t${Depends}, ${Pre-Depends}\n"])
        .output()
        .map_err(|e| format!("cannot run dpkg-query (a Debian system is needed): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "dpkg-query failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut db = Db {
        packages: BTreeMap::new(),
        provides: BTreeMap::new(),
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 6 || !f[3].starts_with("ii") {
            continue;
        }
        for p in f[4].split(',') {
            let p = p
                .trim()
                .split(' ')
                .next()
                .unwrap_or("")
                .split(':')
                .next()
                .unwrap_or("");
            if !p.is_empty() {
                db.provides
                    .entry(p.to_owned())
                    .or_insert_with(|| f[0].to_owned());
            }
        }
        db.packages.insert(
            f[0].to_owned(),
            Installed {
                binary: f[1].to_owned(),
                version: f[2].to_owned(),
                depends: f[5].to_owned(),
            },
        );
    }
    Ok(db)
}

/// Assembles the toolchain of `flavor` into `dest` (must not exist).
pub(crate) fn toolchain_tree_with(dest: &Path, flavor: Flavor) -> Result<Summary, String> {
    let io = |what: &Path| {
        let what = what.to_owned();
        move |e: std::io::Error| format!("{}: {e}", what.display())
    };
    let packages = packages(flavor)?;
    std::fs::create_dir(dest).map_err(io(dest))?;
    // Merged /usr: /bin -> usr/bin and friends, always relative.
    for name in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let host = Path::new("/").join(name);
        if let Ok(target) = std::fs::read_link(&host) {
            let target = target
                .strip_prefix("/")
                .map(Path::to_owned)
                .unwrap_or(target);
            std::fs::create_dir_all(dest.join(&target)).map_err(io(&dest.join(&target)))?;
            std::os::unix::fs::symlink(&target, dest.join(name)).map_err(io(&dest.join(name)))?;
        }
    }
    let mut summary = Summary {
        root: dest.to_owned(),
        packages: packages.clone(),
        files: 0,
        bytes: 0,
    };
    for pkg in &packages {
        let out = Command::new("dpkg-query")
            .args(["-L", &pkg.name])
            .output()
            .map_err(|e| format!("dpkg-query -L: {e}"))?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            copy_listed(Path::new(line), dest, &mut summary)?;
        }
    }
    fix_alternatives(dest)?;
    let bin = dest.join("usr/bin");
    for (link, target) in [("cc", "gcc"), ("c99", "c99-gcc"), ("c89", "c89-gcc")] {
        if bin.join(target).exists() && std::fs::symlink_metadata(bin.join(link)).is_err() {
            std::os::unix::fs::symlink(target, bin.join(link)).map_err(io(&bin.join(link)))?;
        }
    }
    add_busybox(dest, &mut summary)?;
    Ok(summary)
}

/// Copies one path of a `dpkg -L` list (a directory, file or link) to the
/// same place under `dest`, resolving the host's directory links (so
/// `/bin/sed` lands in `usr/bin/sed`).
fn copy_listed(path: &Path, dest: &Path, summary: &mut Summary) -> Result<(), String> {
    if !path.is_absolute() || path == Path::new("/.") || path == Path::new("/") {
        return Ok(());
    }
    if SKIP_DIRS.iter().any(|d| path.starts_with(d)) || skip_file(path) {
        return Ok(());
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(());
    };
    let Ok(parent) = std::fs::canonicalize(parent) else {
        return Ok(());
    };
    if SKIP_DIRS.iter().any(|d| parent.starts_with(d)) {
        return Ok(());
    }
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    }; // listed but absent (diverted, removed conffile)
    let rel = parent.join(name);
    let rel = rel.strip_prefix("/").unwrap_or(&rel);
    let target = dest.join(rel);
    let io = |e: std::io::Error| format!("{} -> {}: {e}", path.display(), target.display());
    if meta.is_dir() {
        return std::fs::create_dir_all(&target).map_err(io);
    }
    if std::fs::symlink_metadata(&target).is_ok() {
        return Ok(());
    }
    if let Some(p) = target.parent() {
        std::fs::create_dir_all(p).map_err(io)?;
    }
    if meta.file_type().is_symlink() {
        let link = std::fs::read_link(path).map_err(io)?;
        std::os::unix::fs::symlink(link, &target).map_err(io)?;
    } else if meta.is_file() {
        summary.bytes += std::fs::copy(path, &target).map_err(io)?;
    } else {
        return Ok(());
    }
    summary.files += 1;
    Ok(())
}

/// Links into `/etc/alternatives` point to the host's choice: replace them
/// by the chosen file when the tree has it, else remove them.
fn fix_alternatives(dest: &Path) -> Result<(), String> {
    let mut stack = vec![dest.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for e in entries.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_symlink() {
                let Ok(link) = std::fs::read_link(&p) else {
                    continue;
                };
                if !link.starts_with("/etc/alternatives") {
                    continue;
                }
                let chosen = std::fs::canonicalize(&link).ok();
                let _ = std::fs::remove_file(&p);
                if let Some(chosen) = chosen {
                    if std::fs::symlink_metadata(
                        dest.join(chosen.strip_prefix("/").unwrap_or(&chosen)),
                    )
                    .is_ok()
                    {
                        std::os::unix::fs::symlink(&chosen, &p)
                            .map_err(|e| format!("{}: {e}", p.display()))?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// A static busybox at /usr/bin/busybox, linked as every applet the tree
/// does not already have (so `/bin/sh` is busybox's ash, and GNU sed, grep
/// and make win over busybox's).
fn add_busybox(dest: &Path, summary: &mut Summary) -> Result<(), String> {
    let bb = Path::new("/bin/busybox");
    let target = dest.join("usr/bin/busybox");
    summary.bytes += std::fs::copy(bb, &target)
        .map_err(|e| format!("{} (Debian package busybox-static): {e}", bb.display()))?;
    summary.files += 1;
    let out = Command::new(bb)
        .arg("--list-full")
        .output()
        .map_err(|e| format!("busybox --list-full: {e}"))?;
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet.ends_with("/busybox") {
            continue;
        }
        // `bin/x` and `sbin/x` go through the tree's relative links to usr/.
        let link = dest.join(applet);
        if std::fs::symlink_metadata(&link).is_ok() {
            continue;
        }
        if let Some(p) = link.parent() {
            std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        std::os::unix::fs::symlink("/usr/bin/busybox", &link)
            .map_err(|e| format!("{}: {e}", link.display()))?;
        summary.files += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `script` with `sh -e -c` in bwrap over `root`, with `build`
    /// writable at /build: plain bwrap, independent of the cas crates. The
    /// tree has no /build, /proc, /dev or /tmp, and must not be modified:
    /// `/` is a tmpfs holding the tree's top-level entries, read-only.
    fn in_sandbox(root: &Path, build: &Path, script: &str) -> (bool, String) {
        let mut cmd = Command::new("bwrap");
        for e in std::fs::read_dir(root).unwrap() {
            let e = e.unwrap();
            let dest = Path::new("/").join(e.file_name());
            if e.file_type().unwrap().is_symlink() {
                cmd.arg("--symlink")
                    .arg(std::fs::read_link(e.path()).unwrap())
                    .arg(dest);
            } else {
                cmd.arg("--ro-bind").arg(e.path()).arg(dest);
            }
        }
        let out = cmd
            .args([
                "--unshare-all",
                "--die-with-parent",
                "--new-session",
                "--cap-drop",
                "ALL",
                "--clearenv",
            ])
            .args([
                "--setenv",
                "PATH",
                "/usr/bin:/bin:/usr/sbin:/sbin",
                "--setenv",
                "LANG",
                "C",
            ])
            .arg("--bind")
            .arg(build)
            .arg("/build")
            .args([
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--tmpfs",
                "/tmp",
                "--remount-ro",
                "/",
                "--chdir",
                "/build",
                "--",
            ])
            .args(["/bin/sh", "-e", "-c", script])
            .output()
            .expect("run bwrap");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    #[test]
    fn toolchain_compiles_and_links_c_with_make() {
        let root = toolchain(Flavor::C);
        let build = tempfile::tempdir().unwrap();
        let b = build.path();
        std::fs::write(
            b.join("hello.c"),
            "#include <stdio.h>\nint main(void){puts(\"hello, world\");return 0;}\n",
        )
        .unwrap();
        let (ok, log) = in_sandbox(&root, b, "gcc -O2 -o hello hello.c && ./hello");
        assert!(ok && log.contains("hello, world"), "{log}");

        std::fs::write(b.join("greet.h"), "const char *greet(void);\n").unwrap();
        std::fs::write(
            b.join("greet.c"),
            "#include \"greet.h\"\nconst char *greet(void){return \"greetings\";}\n",
        )
        .unwrap();
        std::fs::write(
            b.join("main.c"),
            "#include <stdio.h>\n#include <zlib.h>\n#include \"greet.h\"\nint main(void){printf(\"%s %d\\n\", greet(), 6*7);return 0;}\n",
        )
        .unwrap();
        std::fs::write(
            b.join("Makefile"),
            "all: prog\nlibgreet.a: greet.o\n\t$(AR) rcs $@ $^\nprog: main.o libgreet.a\n\t$(CC) -o $@ main.o -L. -lgreet\n\
             install: prog\n\tinstall -D -m 755 prog $(DESTDIR)/usr/bin/prog\n",
        )
        .unwrap();
        // zlib.h is not in the tree: undeclared headers must not leak in.
        let (ok, log) = in_sandbox(&root, b, "make prog CFLAGS=-O2");
        assert!(
            !ok && log.contains("zlib.h"),
            "zlib.h must be missing from the tree:\n{log}"
        );
        std::fs::write(b.join("main.c"), "#include <stdio.h>\n#include \"greet.h\"\nint main(void){printf(\"%s %d\\n\", greet(), 6*7);return 0;}\n").unwrap();
        let (ok, log) = in_sandbox(
            &root,
            b,
            "make -j2 && ./prog && make install DESTDIR=/build/inst && ls /build/inst/usr/bin",
        );
        assert!(
            ok && log.contains("greetings 42") && log.contains("prog"),
            "{log}"
        );
        // configure-style probing works with busybox's tools.
        let (ok, log) = in_sandbox(&root, b, "echo 'int x;' > t.c && cc -c t.c && cmp t.o t.o && sed -n 1p t.c | grep -q x && awk 'BEGIN{print 1}' && diff t.c t.c && expr 1 + 1");
        assert!(ok, "{log}");
    }

    #[test]
    fn toolchain_runs_cmake() {
        let root = toolchain(Flavor::CMake);
        let build = tempfile::tempdir().unwrap();
        let b = build.path();
        std::fs::create_dir(b.join("src")).unwrap();
        std::fs::write(
            b.join("src/hello.c"),
            "#include <stdio.h>\nint main(void){puts(\"cmake hello\");return 0;}\n",
        )
        .unwrap();
        std::fs::write(
            b.join("src/CMakeLists.txt"),
            "cmake_minimum_required(VERSION 3.13)\nproject(hello C)\nadd_library(greet STATIC hello.c)\nadd_executable(hello hello.c)\ninstall(TARGETS hello DESTINATION bin)\n",
        )
        .unwrap();
        let (ok, log) = in_sandbox(
            &root,
            b,
            "cmake -S src -B out -DCMAKE_INSTALL_PREFIX=/usr && cmake --build out && ./out/hello && DESTDIR=/build/inst cmake --install out",
        );
        assert!(ok && log.contains("cmake hello"), "{log}");
        assert!(b.join("inst/usr/bin/hello").is_file(), "{log}");
    }
}
