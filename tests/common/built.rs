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
