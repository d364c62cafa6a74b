//! The Python binding against the library cargo just built
//! (`<target>/debug/deps/libnim_signaling.so`, where this test binary is):
//!
//! - `python_binding_pytest` runs its pytest suite (`bindings/python/tests`)
//!   in a venv made in `<target>/python-venv` (reused later), pytest
//!   installed into it, the package installed from a copy of
//!   `bindings/python` (so that setuptools' build/ and egg-info never land
//!   in the source tree);
//! - `python_wheel_as_a_user_gets_it` does what the README tells a user:
//!   builds the wheel (bundling that library, named by
//!   `NIM_SIGNALING_PREBUILD`), installs it in a fresh venv
//!   (`<target>/python-wheel/venv`, made anew each run) and there, with
//!   `NIM_SIGNALING_LIB` unset, runs the README's examples and
//!   `examples/typed_call.py`, and `mypy --strict` on that script (mypy
//!   from PyPI).
//!
//! Both need `python3` (or `$NIM_SIGNALING_PYTHON`) with the `venv` module
//! (Debian/Ubuntu: `apt-get install python3-venv`) and PyPI reachable
//! (pytest, mypy, and setuptools for the build; pip caches them). Without
//! Python, venv or pip they fail, saying which; they never pass without
//! running.

#[path = "common/built.rs"]
mod built;
#[path = "common/child.rs"]
mod child;

use built::lib_dir;
use child::run;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// Longest pip may take for one install (downloads included).
const PIP_LIMIT: Duration = Duration::from_secs(600);
/// Longest the pytest suite may run (each wait inside it is at most 10 s).
const PYTEST_LIMIT: Duration = Duration::from_secs(300);

/// `<target>`: the parent of `<target>/<profile>/deps`.
fn target_dir() -> PathBuf {
    lib_dir()
        .parent()
        .and_then(Path::parent)
        .expect("<target>/<profile>/deps")
        .to_path_buf()
}

fn binding_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings/python")
}

/// A lock on `<target>/python-venv.lock` (a directory: made atomically)
/// so that concurrent `cargo test` runs do not install into the venv at
/// once. A lock older than the longest install is taken as stale.
struct VenvLock(PathBuf);

impl VenvLock {
    fn take(path: PathBuf) -> VenvLock {
        let stale = PIP_LIMIT * 2 + PYTEST_LIMIT;
        let give_up = Instant::now() + stale + Duration::from_secs(60);
        loop {
            match fs::create_dir(&path) {
                Ok(()) => return VenvLock(path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    if age.is_some_and(|a| a > stale) {
                        let _ = fs::remove_dir(&path);
                        continue;
                    }
                    assert!(
                        Instant::now() < give_up,
                        "{} held for too long",
                        path.display()
                    );
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("cannot make {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for VenvLock {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

/// The venv's python, making the venv first if it is missing or broken.
fn venv_python(venv: &Path) -> PathBuf {
    let py = venv.join("bin/python");
    if py.exists()
        && run(
            Command::new(&py).args(["-c", "import sys, pip"]),
            "check the venv",
            Duration::from_secs(60),
        )
        .status
        .success()
    {
        return py;
    }
    let _ = fs::remove_dir_all(venv);
    let base = std::env::var("NIM_SIGNALING_PYTHON").unwrap_or_else(|_| "python3".into());
    let made = run(
        Command::new(&base).arg("-m").arg("venv").arg(venv),
        "create the Python venv (is python3 installed? python3-venv on Debian/Ubuntu)",
        Duration::from_secs(120),
    );
    assert!(
        made.status.success() && py.exists(),
        "`{base} -m venv {}` failed: Python with the venv module (and ensurepip) is needed \
         (Debian/Ubuntu: apt-get install python3-venv)\n{}",
        venv.display(),
        made.describe()
    );
    py
}

/// `pip <command> args...` in the venv of `py`, building with the library
/// cargo just built (`NIM_SIGNALING_PREBUILD`: the copy of the package is
/// no checkout to build one in).
fn pip(py: &Path, command: &str, args: &[&str], what: &str) {
    let out = run(
        Command::new(py)
            .args([
                "-m",
                "pip",
                command,
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(args)
            .env(
                "NIM_SIGNALING_PREBUILD",
                lib_dir().join("libnim_signaling.so"),
            ),
        what,
        PIP_LIMIT,
    );
    assert!(
        out.status.success(),
        "{what} failed (pip needs PyPI, or a local index, for pytest, mypy and setuptools)\n{}",
        out.describe()
    );
}

/// Copies what pip needs to build the package (pyproject.toml, setup.py,
/// README.md, src/) into `to`, fresh.
fn copy_package(to: &Path) {
    fn copy_tree(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
        for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
            let entry = entry.expect("dir entry");
            let name = entry.file_name();
            if name == "__pycache__" || name.to_string_lossy().ends_with(".egg-info") {
                continue;
            }
            let (src, dst) = (entry.path(), to.join(&name));
            if entry.file_type().expect("file type").is_dir() {
                copy_tree(&src, &dst);
            } else {
                fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
            }
        }
    }
    let _ = fs::remove_dir_all(to);
    fs::create_dir_all(to).expect("mkdir package copy");
    let from = binding_dir();
    for f in ["pyproject.toml", "setup.py", "README.md"] {
        fs::copy(from.join(f), to.join(f)).unwrap_or_else(|e| panic!("copy {f}: {e}"));
    }
    copy_tree(&from.join("src"), &to.join("src"));
}

/// How many `def test_` functions the suite has: all of them must pass.
fn test_count() -> usize {
    let dir = binding_dir().join("tests");
    fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("test_"))
                && p.extension().is_some_and(|x| x == "py")
        })
        .map(|p| {
            fs::read_to_string(&p)
                .expect("read test file")
                .lines()
                .filter(|l| l.starts_with("def test_") || l.starts_with("async def test_"))
                .count()
        })
        .sum()
}

/// The N of pytest's "N passed" summary, and whether the summary names
/// anything else (failed, error, skipped, xfailed...).
fn summary(stdout: &str) -> Option<(usize, bool)> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.contains(" passed") || l.contains(" failed") || l.contains(" error"))?;
    let words: Vec<&str> = line
        .split(|c: char| c == ',' || c.is_whitespace() || c == '=')
        .filter(|w| !w.is_empty())
        .collect();
    let mut passed = None;
    let mut other = false;
    for pair in words.windows(2) {
        if let Ok(n) = pair[0].parse::<usize>() {
            if pair[1] == "passed" {
                passed = Some(n);
            } else if n > 0 && !pair[1].starts_with("warning") {
                other = true;
            }
        }
    }
    passed.map(|n| (n, other))
}

#[test]
fn python_binding_pytest() {
    let lib = lib_dir().join("libnim_signaling.so");
    let target = target_dir();
    let _lock = VenvLock::take(target.join("python-venv.lock"));

    let venv = target.join("python-venv");
    let py = venv_python(&venv);
    let has_pytest = run(
        Command::new(&py).args(["-c", "import pytest"]),
        "look for pytest",
        Duration::from_secs(60),
    )
    .status
    .success();
    if !has_pytest {
        pip(&py, "install", &["pytest"], "pip install pytest");
    }
    let copy = target.join("python-binding-src");
    copy_package(&copy);
    pip(
        &py,
        "install",
        &[
            "--force-reinstall",
            "--no-deps",
            copy.to_str().expect("UTF-8 path"),
        ],
        "pip install bindings/python",
    );

    let tests = binding_dir().join("tests");
    let out = run(
        Command::new(&py)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(&tests)
            .current_dir(&target)
            .env("NIM_SIGNALING_LIB", &lib)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("PYTHONPATH"),
        "pytest",
        PYTEST_LIMIT,
    );
    assert!(out.status.success(), "pytest failed\n{}", out.describe());
    let (passed, other) = summary(&out.stdout)
        .unwrap_or_else(|| panic!("no \"N passed\" in pytest's output\n{}", out.describe()));
    let wanted = test_count();
    assert!(
        passed > 0 && passed == wanted && !other,
        "{passed} passed, {wanted} test functions in {}\n{}",
        tests.display(),
        out.describe()
    );
    eprintln!("python binding: {passed} passed");
}

/// Runs `py` with `args` in `dir` as a user's shell would after installing
/// the wheel: no `NIM_SIGNALING_LIB`, no `PYTHONPATH`; fails naming `what`.
fn user_run(py: &Path, args: &[&OsStr], dir: &Path, what: &str) -> String {
    let out = run(
        Command::new(py)
            .args(args)
            .current_dir(dir)
            .env_remove("NIM_SIGNALING_LIB")
            .env_remove("PYTHONPATH")
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        what,
        PYTEST_LIMIT,
    );
    assert!(out.status.success(), "{what} failed\n{}", out.describe());
    out.stdout
}

#[test]
fn python_wheel_as_a_user_gets_it() {
    let started = Instant::now();
    let mut steps: Vec<(&str, Duration)> = Vec::new();
    let mut step = |name: &'static str, since: &mut Instant| {
        steps.push((name, since.elapsed()));
        *since = Instant::now();
    };
    let mut t = Instant::now();
    let work = target_dir().join("python-wheel");
    // Another `cargo test` run would empty the same directory meanwhile.
    let _lock = VenvLock::take(target_dir().join("python-wheel.lock"));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).unwrap_or_else(|e| panic!("mkdir {}: {e}", work.display()));
    let py = venv_python(&work.join("venv"));
    step("fresh venv", &mut t);

    // The README's two commands: build the wheel, install it.
    let src = work.join("src");
    copy_package(&src);
    let dist = work.join("dist");
    let (src_s, dist_s) = (src.to_str().expect("UTF-8"), dist.to_str().expect("UTF-8"));
    pip(
        &py,
        "wheel",
        &["--no-deps", "-w", dist_s, src_s],
        "pip wheel bindings/python",
    );
    step("pip wheel", &mut t);
    let wheels: Vec<PathBuf> = fs::read_dir(&dist)
        .unwrap_or_else(|e| panic!("read {}: {e}", dist.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    assert_eq!(
        wheels.len(),
        1,
        "one wheel in {}: {wheels:?}",
        dist.display()
    );
    let wheel = &wheels[0];
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    let platform = format!("linux_{}", std::env::consts::ARCH);
    assert_eq!(
        name,
        format!(
            "nim_signaling-{}-py3-none-{platform}.whl",
            env!("CARGO_PKG_VERSION")
        ),
        "the wheel's name: for any Python 3, this platform"
    );
    let listing = user_run(
        &py,
        &[
            OsStr::new("-c"),
            OsStr::new(
                "import sys, zipfile\n\
                 z = zipfile.ZipFile(sys.argv[1])\n\
                 print('\\n'.join(z.namelist()))\n\
                 print(z.read('nim_signaling-%s.dist-info/WHEEL' % sys.argv[2]).decode())",
            ),
            wheel.as_os_str(),
            OsStr::new(env!("CARGO_PKG_VERSION")),
        ],
        &work,
        "list the wheel",
    );
    for wanted in [
        "nim_signaling/libnim_signaling.so",
        "nim_signaling/py.typed",
        "nim_signaling/_aio.py",
        "Root-Is-Purelib: false",
    ] {
        assert!(
            listing.lines().any(|l| l.trim() == wanted),
            "{name} lacks {wanted}:\n{listing}"
        );
    }
    assert!(
        listing.contains(&format!("Tag: py3-none-{platform}")),
        "{listing}"
    );
    let size = fs::metadata(wheel).map(|m| m.len()).unwrap_or(0);
    pip(
        &py,
        "install",
        &[wheel.to_str().expect("UTF-8")],
        "pip install the wheel",
    );
    step("pip install the wheel", &mut t);

    // The bundled library is the one loaded, with nothing set.
    let loaded = user_run(
        &py,
        &[
            OsStr::new("-c"),
            OsStr::new("import nim_signaling as ns; print(ns.library_path()); print(ns.version())"),
        ],
        &work,
        "import nim_signaling from the wheel",
    );
    let site = loaded.lines().next().unwrap_or_default();
    assert!(
        Path::new(site).starts_with(work.join("venv"))
            && site.ends_with("nim_signaling/libnim_signaling.so"),
        "not the bundled library: {loaded}"
    );
    // The README's examples (each print checked against its comment) and the
    // docstring's, then the typed script, as they are in the repo.
    let binding = binding_dir();
    user_run(
        &py,
        &[binding.join("tests/test_docs.py").as_os_str()],
        &work,
        "the README's and the docstring's examples (bindings/python/tests/test_docs.py)",
    );
    let typed = binding.join("examples/typed_call.py");
    let out = user_run(&py, &[typed.as_os_str()], &work, "examples/typed_call.py");
    assert!(out.contains("asyncio: "), "{out}");
    step("run the examples", &mut t);

    pip(&py, "install", &["mypy"], "pip install mypy");
    step("pip install mypy", &mut t);
    let cache = work.join("mypy-cache");
    let out = user_run(
        &py,
        &[
            OsStr::new("-m"),
            OsStr::new("mypy"),
            OsStr::new("--strict"),
            OsStr::new("--cache-dir"),
            cache.as_os_str(),
            typed.as_os_str(),
        ],
        &work,
        "mypy --strict examples/typed_call.py",
    );
    assert!(out.contains("Success: no issues found"), "{out}");
    step("mypy --strict", &mut t);

    let shown: Vec<String> = steps
        .iter()
        .map(|(n, d)| format!("{n} {:.1} s", d.as_secs_f64()))
        .collect();
    eprintln!(
        "python wheel: {name} ({} KiB) in {:.1} s: {}",
        size / 1024,
        started.elapsed().as_secs_f64(),
        shown.join(", ")
    );
}
