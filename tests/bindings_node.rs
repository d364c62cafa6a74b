//! Runs the Node binding's tests (`bindings/node/test/`, `node --test`)
//! against the library cargo just built
//! (`<target>/debug/deps/libnim_signaling.so`, beside this test binary).
//!
//! Needs `node` (18+) and `npm`: without them this test fails, saying so.
//! Installs the binding's dependencies (koffi, from the npm registry) with
//! `npm ci` from the committed lockfile when `bindings/node/node_modules`
//! is missing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Longest the node tests may run (they take a few seconds).
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// The library this test was built with: `<target>/debug/deps`, where the
/// test binary itself is (see tests/c_examples.rs).
fn lib_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let lib = exe
        .parent()
        .expect("test binary has a directory")
        .join("libnim_signaling.so");
    assert!(
        lib.exists(),
        "{} is missing (the cdylib cargo builds with the package)",
        lib.display()
    );
    lib
}

fn binding_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings/node")
}

/// Fails the test with a clear message when `tool --version` cannot run.
fn require_tool(tool: &str) -> String {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        Ok(out) => panic!(
            "`{tool} --version` failed ({}): the Node binding's tests need Node.js 18+ and npm \
             (apt-get install nodejs npm)\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "cannot run `{tool}` ({e}): the Node binding's tests need Node.js 18+ and npm \
             (apt-get install nodejs npm)"
        ),
    }
}

/// Runs `cmd` to completion within `limit`, returning (success, stdout, stderr).
fn run(mut cmd: Command, limit: Duration) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    match status {
        Some(s) => (s.success(), stdout, stderr),
        None => (
            false,
            stdout,
            format!("{stderr}\n(killed after {} s)", limit.as_secs()),
        ),
    }
}

/// `npm ci` (from package-lock.json) unless node_modules is there already.
fn install_deps(dir: &Path) {
    if dir.join("node_modules/koffi/package.json").exists() {
        return;
    }
    let mut cmd = Command::new("npm");
    cmd.args(["ci", "--no-audit", "--no-fund"]).current_dir(dir);
    let (ok, stdout, stderr) = run(cmd, Duration::from_secs(300));
    assert!(
        ok,
        "`npm ci` in {} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        dir.display()
    );
}

/// The value of node's `# pass N`-style summary line.
fn summary(stdout: &str, key: &str) -> Option<u64> {
    stdout.lines().find_map(|l| {
        l.strip_prefix("# ")
            .and_then(|rest| rest.strip_prefix(key))
            .and_then(|n| n.trim().parse().ok())
    })
}

#[test]
fn node_binding_tests_pass() {
    let node = require_tool("node");
    require_tool("npm");
    let major: u32 = node
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 18,
        "the Node binding needs Node.js 18+, found {node}"
    );

    let dir = binding_dir();
    install_deps(&dir);

    // the test files, named one by one: how node treats a directory
    // argument differs between versions
    let mut files: Vec<String> = std::fs::read_dir(dir.join("test"))
        .expect("bindings/node/test")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".test.js"))
        .map(|n| format!("test/{n}"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no bindings/node/test/*.test.js");

    let mut cmd = Command::new("node");
    cmd.args(["--test", "--test-reporter=tap"])
        .args(&files)
        .current_dir(&dir)
        .env("NIM_SIGNALING_LIB", lib_path());
    let (ok, stdout, stderr) = run(cmd, RUN_LIMIT);
    let pass = summary(&stdout, "pass");
    let fail = summary(&stdout, "fail");
    assert!(
        ok && fail == Some(0) && pass.unwrap_or(0) > 0,
        "node --test failed (pass {pass:?}, fail {fail:?})\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    println!("node binding: {} tests passed", pass.unwrap_or(0));
}
