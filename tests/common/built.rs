#![allow(dead_code)] // each test binary uses part of it
//! Where cargo put the library it built for this test run.

use std::path::PathBuf;

/// `<target>/<profile>/deps`, the directory of the test binary itself:
/// `cargo test` compiles the cdylib and the staticlib there with the rlib,
/// but only `cargo build` copies them up to `<target>/<profile>`, where
/// they may therefore be missing or stale. Panics if either is missing.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .expect("test binary has a directory")
        .to_path_buf();
    for lib in ["libnim_signaling.so", "libnim_signaling.a"] {
        assert!(
            dir.join(lib).exists(),
            "{} has no {lib} (cargo builds it with the package)",
            dir.display()
        );
    }
    dir
}

/// `<target>/<profile>`, for the tests' build and work directories.
pub fn profile_dir() -> PathBuf {
    lib_dir()
        .parent()
        .expect("<target>/<profile>/deps")
        .to_path_buf()
}

/// The `nim-signaling-server` binary (crates/server-bin) beside this test
/// binary's profile directory. `cargo test` at the top builds it with every
/// crate; `cargo test -p nim-signaling` alone does not, hence the message.
pub fn server_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let path = profile_dir().join(format!(
            "nim-signaling-server{}",
            std::env::consts::EXE_SUFFIX
        ));
        assert!(
            path.exists(),
            "{} is missing: run `cargo test` at the top of the workspace, or \
             `cargo build -p nim-signaling-server-bin` first",
            path.display()
        );
        path.to_string_lossy().into_owned()
    })
}
