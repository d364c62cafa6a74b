//! The binary's own command line. This package having an integration test
//! is also what makes `cargo test` build the real `nim-signaling-server`,
//! which the workspace's suites in `tests/` start as a process.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_nim-signaling-server");

#[test]
fn version_names_the_server_and_its_version() {
    let out = Command::new(BIN).arg("--version").output().expect("run it");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("nim-signaling-server {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_unknown_flag_is_refused_by_name() {
    let out = Command::new(BIN).arg("--listne").output().expect("run it");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--listne"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
