//! The Debian package of the server (scripts/build-deb.sh, cargo-deb): it
//! is built from the `nim-signaling-server` this test run has, unpacked
//! with `dpkg-deb -x`, and run from there; its unit names the binary it
//! installs, and its configuration files are conffiles.
//!
//! Needs cargo-deb and dpkg-dev. Without cargo-deb the packaging test says
//! so loudly and passes, unless NIM_TEST_REQUIRE_DEB=1 (CI sets it).

#[path = "common/built.rs"]
mod built;
#[path = "common/child.rs"]
mod child;

use built::{profile_dir, server_bin};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Longest a step may take: `cargo deb` packing a release-sized binary.
const RUN_LIMIT: Duration = Duration::from_secs(600);

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn check(what: &str, cmd: &mut Command) -> String {
    child::run(cmd, what, RUN_LIMIT).succeeded()
}

/// The settings of a unit file: its lines that are neither comments nor
/// blank.
fn directives(unit: &str) -> Vec<String> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// deploy/debian's unit (the package's) is deploy's, with the package's
/// paths: the two cannot drift apart.
#[test]
fn the_package_unit_is_the_deploy_unit_with_package_paths() {
    let read = |p: &str| std::fs::read_to_string(repo().join(p)).unwrap();
    let deploy = read("deploy/nim-signaling-server.service")
        .replace(
            "/usr/local/bin/nim-signaling-server",
            "/usr/bin/nim-signaling-server",
        )
        .replace(
            "/usr/local/share/doc/nim-signaling/",
            "/usr/share/doc/nim-signaling-server/",
        );
    let debian = read("deploy/debian/nim-signaling-server.service");
    assert_eq!(directives(&debian), directives(&deploy));
    assert!(!debian.contains("/usr/local"), "{debian}");
}

#[test]
fn the_deb_installs_a_server_that_runs() {
    if Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        let required = std::env::var("NIM_TEST_REQUIRE_DEB").as_deref() == Ok("1");
        // Straight to stderr: libtest would swallow an eprintln! of a
        // passing test.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\n\n*** NOT RUN: the Debian package test: cargo-deb is not installed \
             (cargo install cargo-deb) ***\n\n"
        );
        assert!(
            !required,
            "NIM_TEST_REQUIRE_DEB=1 but cargo-deb is not installed"
        );
        return;
    }
    let bin = PathBuf::from(server_bin());
    let profile_dir = profile_dir();
    let target = profile_dir.parent().expect("<target>/<profile>");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(p) => p.to_string(),
        None => panic!("no profile in {}", profile_dir.display()),
    };
    let work = profile_dir.join("deb-test");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();

    // The binary this run built, packaged (no second build).
    let out = check(
        "scripts/build-deb.sh",
        Command::new("bash")
            .arg(repo().join("scripts/build-deb.sh"))
            .args(["--no-build", "--profile", &profile, "--output"])
            .arg(&work)
            .env("CARGO_TARGET_DIR", target),
    );
    let deb = out
        .lines()
        .rev()
        .map(|l| PathBuf::from(l.trim()))
        .find(|p| p.extension().is_some_and(|e| e == "deb") && p.is_file())
        .unwrap_or_else(|| panic!("build-deb.sh named no .deb it made:\n{out}"));

    let field = |f: &str| {
        check(
            "dpkg-deb -f",
            Command::new("dpkg-deb").arg("-f").arg(&deb).arg(f),
        )
        .trim()
        .to_string()
    };
    assert_eq!(field("Package"), "nim-signaling-server");
    assert!(
        field("Version").starts_with(VERSION),
        "{}",
        field("Version")
    );

    let root = work.join("root");
    check(
        "dpkg-deb -x",
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
    );
    let installed = root.join("usr/bin/nim-signaling-server");
    assert!(
        installed.is_file(),
        "no usr/bin/nim-signaling-server in {}",
        deb.display()
    );
    let version = check(
        "the packaged nim-signaling-server --version",
        &mut Command::new(&installed).arg("--version"),
    );
    assert_eq!(version.trim(), format!("nim-signaling-server {VERSION}"));
    assert!(
        std::fs::metadata(&installed).unwrap().len() <= std::fs::metadata(&bin).unwrap().len(),
        "the packaged binary is larger than the built one (not stripped?)"
    );

    // The unit starts the binary the package installs, with its config.
    let unit = ["lib/systemd/system", "usr/lib/systemd/system"]
        .iter()
        .map(|d| root.join(d).join("nim-signaling-server.service"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no nim-signaling-server.service in {}", deb.display()));
    let unit = std::fs::read_to_string(unit).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart in\n{unit}"));
    let mut words = exec.split_whitespace();
    assert_eq!(
        words.next(),
        Some("/usr/bin/nim-signaling-server"),
        "{exec}"
    );
    assert_eq!(
        words.collect::<Vec<_>>(),
        ["--config", "/etc/nim-signaling/server.toml"],
        "{exec}"
    );
    assert!(
        unit.lines()
            .any(|l| l == "EnvironmentFile=-/etc/nim-signaling/env"),
        "{unit}"
    );

    // The configuration, as conffiles; the secrets file private.
    let conf = root.join("etc/nim-signaling");
    assert_eq!(
        std::fs::read_to_string(conf.join("server.toml")).unwrap(),
        std::fs::read_to_string(repo().join("deploy/server.toml")).unwrap()
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(conf.join("env"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "etc/nim-signaling/env");
    let control = work.join("control");
    check(
        "dpkg-deb -e",
        Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control),
    );
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap_or_default();
    for f in ["/etc/nim-signaling/server.toml", "/etc/nim-signaling/env"] {
        assert!(
            conffiles.lines().any(|l| l == f),
            "{f} not a conffile:\n{conffiles}"
        );
    }
    // The packaged server starts from the packaged configuration.
    let shown = check(
        "nim-signaling-server --print-config",
        Command::new(&installed)
            .arg("--config")
            .arg(conf.join("server.toml"))
            .arg("--print-config"),
    );
    assert!(shown.contains("\"listen\": \"127.0.0.1:7800\""), "{shown}");
    assert!(
        root.join("usr/share/doc/nim-signaling-server/OPERATORS.md")
            .is_file(),
        "no OPERATORS.md in the package"
    );
}
