//! The Node binding (`bindings/node`), two ways:
//!
//! - `node_binding_tests_pass` runs its tests (`bindings/node/test/`,
//!   `node --test`) against the library cargo just built
//!   (`<target>/debug/deps/libnim_signaling.so`, beside this test binary);
//! - `packed_package_installs_and_runs` takes a user's steps: `npm pack`
//!   (with that library as the bundled prebuild), `npm install` of the
//!   tarball into an empty folder, then, with no `NIM_SIGNALING_LIB` and no
//!   build directory to fall back on, the README's examples (CommonJS
//!   `require`, ES module `import { … }`) and `examples/call.ts`,
//!   type-checked with `tsc --strict` (typescript installed from npm into
//!   that folder) as CommonJS and as an ES module, and run.
//!
//! Both need `node` (18+) and `npm`, and the npm registry (koffi; for the
//! second also typescript): without them they fail, saying so. The first
//! installs the binding's dependencies with `npm ci` from the committed
//! lockfile when `bindings/node/node_modules` is missing.

#[path = "common/built.rs"]
mod built;
#[path = "common/child.rs"]
mod child;

use child::run;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Longest the node tests may run (they take a few seconds).
const RUN_LIMIT: Duration = Duration::from_secs(300);
/// Longest one npm command may take (downloads included).
const NPM_LIMIT: Duration = Duration::from_secs(300);
/// The typescript the package test type-checks with.
const TYPESCRIPT: &str = "typescript@5.9.3";

/// The library this test was built with: `<target>/debug/deps`, where the
/// test binary itself is (see tests/common/built.rs).
fn lib_path() -> PathBuf {
    built::lib_dir().join("libnim_signaling.so")
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

/// Node 18+ and npm, or a failure saying what is missing.
fn require_node_and_npm() {
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
}

/// Runs `npm args` in `dir`, failing the test (with npm's output) if it fails.
fn npm(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> String {
    let mut cmd = Command::new("npm");
    cmd.args(args)
        .args(["--no-audit", "--no-fund"])
        .current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let r = run(&mut cmd, "npm", NPM_LIMIT);
    assert!(
        r.status.success(),
        "`npm {}` in {} failed (it needs the npm registry)\n{}",
        args.join(" "),
        dir.display(),
        r.describe()
    );
    r.stdout
}

/// `npm ci` (from package-lock.json) unless node_modules is there already.
fn install_deps(dir: &Path) {
    if !dir.join("node_modules/koffi/package.json").exists() {
        npm(dir, &["ci"], &[]);
    }
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
    require_node_and_npm();
    let dir = binding_dir();
    install_deps(&dir);

    // the test files, named one by one: how node treats a directory
    // argument differs between versions
    let mut files: Vec<String> = fs::read_dir(dir.join("test"))
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
    let r = run(&mut cmd, "node --test", RUN_LIMIT);
    let pass = summary(&r.stdout, "pass");
    let fail = summary(&r.stdout, "fail");
    assert!(
        r.status.success() && fail == Some(0) && pass.unwrap_or(0) > 0,
        "node --test failed (pass {pass:?}, fail {fail:?})\n{}",
        r.describe()
    );
    println!("node binding: {} tests passed", pass.unwrap_or(0));
}

/// A fresh, empty folder of the system's temp directory, removed when
/// dropped after a pass (kept after a failure, to look into).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs node in `app` as a user would: no NIM_SIGNALING_LIB, no
/// LD_LIBRARY_PATH (cargo's, which names the build directory).
fn node_in(app: &Path, args: &[&str], what: &str) -> String {
    let mut cmd = Command::new("node");
    cmd.args(args)
        .current_dir(app)
        .env_remove("NIM_SIGNALING_LIB")
        .env_remove("LD_LIBRARY_PATH");
    run(&mut cmd, what, RUN_LIMIT).succeeded()
}

#[test]
fn packed_package_installs_and_runs() {
    require_node_and_npm();
    let started = Instant::now();
    let mut steps: Vec<(&str, Duration)> = Vec::new();
    let mut step = |name: &'static str, since: &mut Instant| {
        steps.push((name, since.elapsed()));
        *since = Instant::now();
    };
    let mut t = Instant::now();

    // npm pack, as in the repository, but with the library cargo built as
    // the prebuild (prepack copies it into the package, postpack removes it)
    let work = Scratch::new("nim-signaling-npm");
    let pkg = binding_dir();
    let dest = work.0.to_str().expect("utf-8 temp path");
    let out = npm(
        &pkg,
        &["pack", "--json", "--pack-destination", dest],
        &[("NIM_SIGNALING_PREBUILD", &lib_path())],
    );
    let packed: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("npm pack --json: {e}\n{out}"));
    let packed = &packed[0];
    let tarball = work.0.join(packed["filename"].as_str().expect("filename"));
    let platform = node_in(
        &work.0,
        &["-p", "`${process.platform}-${process.arch}`"],
        "node -p",
    );
    let mut files: Vec<&str> = packed["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path"))
        .collect();
    files.sort();
    let prebuild = format!("prebuilds/{}/libnim_signaling.so", platform.trim());
    let mut wanted = vec![
        "LICENSE-APACHE",
        "LICENSE-MIT",
        "README.md",
        "index.d.mts",
        "index.d.ts",
        "index.js",
        "index.mjs",
        "libpath.js",
        "package.json",
        &prebuild,
    ];
    wanted.sort();
    assert_eq!(files, wanted, "the tarball holds what users need, only");
    assert!(
        !pkg.join("prebuilds").join(platform.trim()).exists() && !pkg.join("LICENSE-MIT").exists(),
        "postpack leaves bindings/node as it was"
    );
    step("npm pack", &mut t);

    // an empty app folder; the tarball and typescript from npm
    let app = work.0.join("app");
    fs::create_dir_all(&app).expect("mkdir app");
    fs::write(
        app.join("package.json"),
        r#"{"name":"app","version":"1.0.0","private":true}"#,
    )
    .expect("app/package.json");
    let tgz = tarball.to_str().expect("utf-8 path");
    npm(&app, &["install", tgz, TYPESCRIPT], &[]);
    step("npm install", &mut t);

    // the library comes from the package, nowhere else
    let loaded = node_in(
        &app,
        &["-p", "require('nim-signaling').libraryPath()"],
        "libraryPath",
    );
    assert_eq!(
        Path::new(loaded.trim()),
        app.join("node_modules/nim-signaling").join(&prebuild),
        "the bundled library is the one loaded"
    );

    // the README's examples, taken from README.md by the binding's own
    // runner: example.js (require) and example.mjs (import { … })
    let runner = binding_dir().join("testlib/readme.js");
    let out = node_in(&app, &[runner.to_str().unwrap()], "README examples");
    assert!(
        out.contains("example.js: ok") && out.contains("example.mjs: ok"),
        "{out}"
    );
    step("README examples", &mut t);

    // examples/call.ts with tsc --strict: as CommonJS (call.ts, the
    // package's `require` types) and as an ES module (call.mts, `import`
    // types), then the JavaScript tsc made, run
    let sample = binding_dir().join("examples/call.ts");
    for name in ["call.ts", "call.mts"] {
        fs::copy(&sample, app.join(name)).expect("copy call.ts");
    }
    let tsc = app.join("node_modules/typescript/bin/tsc");
    let mut cmd = Command::new("node");
    cmd.arg(&tsc)
        .args(["--strict", "--module", "nodenext", "--outDir", "out"])
        .args(["call.ts", "call.mts"])
        .current_dir(&app);
    let r = run(&mut cmd, "tsc", RUN_LIMIT);
    assert!(
        r.status.success(),
        "tsc --strict on examples/call.ts failed\n{}",
        r.describe()
    );
    step("tsc --strict", &mut t);
    for js in ["out/call.js", "out/call.mjs"] {
        let out = node_in(&app, &[js], js);
        assert!(
            out.contains("join failed as expected: 10404"),
            "{js}:\n{out}"
        );
    }
    step("call.ts run", &mut t);

    let size = packed["size"].as_u64().unwrap_or(0);
    let shown: Vec<String> = steps
        .iter()
        .map(|(n, d)| format!("{n} {:.1} s", d.as_secs_f64()))
        .collect();
    println!(
        "packed package: {} ({:.1} MB), {}; total {:.1} s",
        packed["filename"].as_str().unwrap_or("?"),
        size as f64 / 1e6,
        shown.join(", "),
        started.elapsed().as_secs_f64()
    );
}
