//! The client-only C library (`--no-default-features`: no embedded server),
//! as an app or a phone links it: it builds, it holds none of the server's
//! stack, `examples-c/client_only.c` makes a call through it against a
//! standalone `nim-signaling-server`, and `nim_signaling_server_start`
//! answers 501.
//!
//! The library is built into its own target directory (`<target>/client-only`):
//! a build with other features in the test run's own directory would
//! wait for the lock that `cargo test` holds.

#[path = "common/built.rs"]
mod built;
#[path = "common/child.rs"]
mod child;

use built::{profile_dir, server_bin};
use child::Running;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
/// A cold build of the client-only library on a slow machine.
const BUILD_LIMIT: Duration = Duration::from_secs(1200);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cmd` to its end (at most BUILD_LIMIT); its stdout, or a panic
/// that shows both outputs.
fn check(what: &str, cmd: &mut Command) -> String {
    child::run(cmd, what, BUILD_LIMIT).succeeded()
}

/// `<target>/client-only/debug`, holding libnim_signaling built without the
/// embedded server, built once for this binary.
fn client_only_lib() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = profile_dir().parent().unwrap().join("client-only");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        check(
            "cargo build --no-default-features",
            Command::new(cargo)
                .current_dir(root())
                .args([
                    "build",
                    "-p",
                    "nim-signaling",
                    "--no-default-features",
                    "--lib",
                ])
                .env("CARGO_TARGET_DIR", &target),
        );
        let dir = target.join("debug");
        for lib in ["libnim_signaling.so", "libnim_signaling.a"] {
            assert!(dir.join(lib).exists(), "{lib} in {}", dir.display());
        }
        dir
    })
}

/// The examples built against the client-only library.
fn examples() -> &'static Path {
    static BUILD: OnceLock<PathBuf> = OnceLock::new();
    BUILD.get_or_init(|| {
        let build = profile_dir().join("c-examples-client-only");
        check(
            "make client_only (are make and cc installed?)",
            Command::new("make")
                .arg("-C")
                .arg(root().join("examples-c"))
                .arg(format!("LIBDIR={}", client_only_lib().display()))
                .arg(format!("BUILD={}", build.display()))
                .arg(build.join("client_only")),
        );
        build
    })
}

#[test]
fn client_only_c_makes_a_call_through_the_standalone_server() {
    let server = Running::start(
        Command::new(server_bin()).args(["--listen", "127.0.0.1:0"]),
        "nim-signaling-server",
    );
    let url = server.wait_line(false, WAIT, |l| l.contains("listening on ws://"));
    let url = url.rsplit(' ').next().unwrap().to_string();
    let exe = examples().join("client_only");
    let bob = Running::start(Command::new(&exe).args([&url, "bob", "", "-", "60"]), "bob");
    bob.wait_line(false, WAIT, |l| l.contains("listening for"));
    let alice = Running::start(
        Command::new(&exe).args([&url, "alice", "", "bob", "2"]),
        "alice",
    );
    bob.wait_line(false, WAIT, |l| l.contains("INVITE"));
    alice.wait_line(false, WAIT, |l| l.contains("invite") && l.contains("200"));
    alice.wait_line(false, WAIT, |l| l.contains("logout"));
}

/// One header for both builds: the server's functions are there, and say
/// that this build has no server.
#[test]
fn the_embedded_server_is_not_in_the_client_only_build() {
    let dir = profile_dir().join("client-only-server-start");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("start.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include \"nim_signaling.h\"\n\
         int main(void) {\n\
           nim_signaling_server *s = NULL;\n\
           int32_t code = nim_signaling_server_start(\"{}\", &s);\n\
           printf(\"%d %s %s\\n\", (int)code, s == NULL ? \"null\" : \"set\",\n\
                  nim_signaling_server_url(s) == NULL ? \"null\" : \"set\");\n\
           nim_signaling_server_stop(s);\n\
           return code == NIM_SIGNALING_UNSUPPORTED ? 0 : 1;\n\
         }\n",
    )
    .unwrap();
    let exe = dir.join("start");
    let lib = client_only_lib();
    check(
        "cc start.c",
        Command::new("cc")
            .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
            .arg(root().join("include"))
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            // The static library: the client-only build makes both kinds.
            .arg(lib.join("libnim_signaling.a"))
            .args(["-lpthread", "-ldl", "-lm"]),
    );
    let out = check("start", &mut Command::new(&exe));
    assert_eq!(out.trim(), "501 null null");
}
