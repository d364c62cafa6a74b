//! The library as a C or C++ developer gets it: `scripts/install.sh` into a
//! prefix, then the examples built against that installed copy with the
//! Makefile's pkg-config mode and with CMake (`find_package(NimSignaling)`),
//! and the C++17 wrapper `include/nim_signaling.hpp` under ASan + UBSan and
//! without exceptions.
//!
//! Installs the library cargo just built (`<target>/debug/deps`, where this
//! test binary is) into `<target>/debug/packaging/prefix`; everything else
//! goes under `<target>/debug/packaging/` too. Needs make, cc, c++,
//! pkg-config and cmake; a missing cmake fails the CMake test, saying so.
//! `NIM_SIGNALING_ASAN=0` skips the sanitizer build (as in c_examples.rs).

#[path = "common/built.rs"]
mod built;
#[path = "common/call_demo.rs"]
mod call_demo;
#[path = "common/child.rs"]
mod child;

use built::{lib_dir, server_bin};
use call_demo::CALL_DEMO_LINES;

use child::Run;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Longest an example may run: each of its steps gives up after 10 s.
const RUN_LIMIT: Duration = Duration::from_secs(120);

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `<target>/debug/packaging`, emptied once per run of this binary.
fn work_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = lib_dir()
            .parent()
            .expect("<target>/<profile>/deps")
            .join("packaging");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the packaging work dir");
        dir
    })
}

/// Runs a build or setup command to completion; panics with its output on
/// failure, returns its stdout otherwise.
fn check(what: &str, cmd: &mut Command) -> String {
    child::run(cmd, what, RUN_LIMIT).succeeded()
}

/// Runs install.sh with `args`, which it must refuse: a non-zero `status`
/// (any, when None), `message` on stderr, and nothing made at `prefix`.
fn install_refused(args: &[&std::ffi::OsStr], status: Option<i32>, message: &str, prefix: &Path) {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts/install.sh")).args(args);
    let r = child::run(&mut cmd, "install.sh", RUN_LIMIT);
    assert!(!r.status.success(), "{}", r.describe());
    if status.is_some() {
        assert_eq!(r.status.code(), status, "{}", r.describe());
    }
    assert!(r.stderr.contains(message), "{}", r.describe());
    assert!(
        !prefix.exists(),
        "install.sh created {} anyway",
        prefix.display()
    );
}

/// `scripts/install.sh --prefix <work>/prefix --libdir-from <deps>`, once.
fn installed() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let prefix = work_dir().join("prefix");
        let out = check(
            "scripts/install.sh",
            Command::new("bash")
                .arg(repo().join("scripts/install.sh"))
                .arg("--prefix")
                .arg(&prefix)
                .arg("--libdir-from")
                .arg(lib_dir()),
        );
        assert!(
            out.contains(&format!(
                "nim-signaling {VERSION} installed in {}",
                prefix.display()
            )),
            "install.sh did not say where it installed:\n{out}"
        );
        prefix
    })
}

fn pkg_config(args: &[&str]) -> String {
    let pc = installed().join("lib/pkgconfig");
    check(
        "pkg-config",
        Command::new("pkg-config")
            .env("PKG_CONFIG_PATH", &pc)
            .args(args)
            .arg("nim-signaling"),
    )
    .trim()
    .to_string()
}

/// `make -C examples-c USE_PKG_CONFIG=1 ...` against the installed copy;
/// returns make's stdout (the command lines it ran).
fn make_pkg_config(build: &Path, extra: &[&str], goal: &str) -> String {
    check(
        "make (pkg-config mode)",
        Command::new("make")
            .arg("-C")
            .arg(repo().join("examples-c"))
            .arg("USE_PKG_CONFIG=1")
            .arg(format!(
                "PKG_CONFIG_PATH={}",
                installed().join("lib/pkgconfig").display()
            ))
            .arg(format!("BUILD={}", build.display()))
            .args(extra)
            .arg(goal),
    )
}

/// Runs a built example as a user would: without the LD_LIBRARY_PATH cargo
/// sets for tests (it names `<target>/debug`, and would win over the
/// binary's rpath to the prefix). A hang past RUN_LIMIT is killed and fails.
fn run(exe: &Path, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(exe);
    cmd.env_remove("LD_LIBRARY_PATH").envs(env.iter().copied());
    child::run(&mut cmd, "example", RUN_LIMIT)
}

/// What only the C++ demo prints: the wrapper's answer to a request that
/// cannot start (not logged in), both ways, without throwing.
const CPP_LINES: &[&str] = &[
    "[alice] call before login -> 415 {\"code\":415,\"message\":",
    "[alice] call before login (callback) -> 415",
];

fn assert_call_demo_c(r: &Run) {
    r.assert_passed(CALL_DEMO_LINES, "call demo: OK");
}

fn assert_call_demo_cpp(r: &Run) {
    r.assert_passed(CALL_DEMO_LINES, "call demo (C++): OK");
    r.assert_passed(CPP_LINES, "call demo (C++): OK");
}

/// The library's SONAME: `.so.<major>`, or `.so.0.<minor>` while the
/// major version is 0 (semantic versioning: 0.1 and 0.2 may break).
fn soname() -> String {
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    match major {
        "0" => format!("libnim_signaling.so.0.{}", env!("CARGO_PKG_VERSION_MINOR")),
        _ => format!("libnim_signaling.so.{major}"),
    }
}

/// The binary loads the library by its SONAME from the prefix, not from
/// the tree.
fn assert_uses_installed_lib(exe: &Path) {
    let ldd = check(
        "ldd",
        Command::new("ldd").env_remove("LD_LIBRARY_PATH").arg(exe),
    );
    let want = installed().join("lib").join(soname());
    assert!(
        ldd.lines()
            .any(|l| l.contains(&format!("{} => ", soname()))
                && l.contains(&*want.to_string_lossy())),
        "{} does not load {}:\n{ldd}",
        exe.display(),
        want.display()
    );
}

/// The built library names its SONAME, and the prefix holds the file under
/// its full version with the SONAME link and the linker's plain name.
#[test]
fn the_library_has_a_soname_and_its_links_are_installed() {
    let dump = check(
        "objdump -p",
        Command::new("objdump")
            .arg("-p")
            .arg(lib_dir().join("libnim_signaling.so")),
    );
    assert!(
        dump.lines()
            .any(|l| l.split_whitespace().eq(["SONAME", soname().as_str()])),
        "no SONAME {} in:\n{dump}",
        soname()
    );
    let lib = installed().join("lib");
    let file = format!("libnim_signaling.so.{VERSION}");
    assert!(std::fs::symlink_metadata(lib.join(&file))
        .unwrap()
        .is_file());
    assert_eq!(
        std::fs::read_link(lib.join(soname())).unwrap(),
        Path::new(&file)
    );
    assert_eq!(
        std::fs::read_link(lib.join("libnim_signaling.so")).unwrap(),
        Path::new(&soname())
    );
}

#[test]
fn install_lays_out_the_prefix() {
    let prefix = installed();
    for (installed_file, source) in [
        (
            "include/nim_signaling.h",
            repo().join("include/nim_signaling.h"),
        ),
        (
            "include/nim_signaling.hpp",
            repo().join("include/nim_signaling.hpp"),
        ),
        (
            "lib/libnim_signaling.so",
            lib_dir().join("libnim_signaling.so"),
        ),
        (
            "lib/libnim_signaling.a",
            lib_dir().join("libnim_signaling.a"),
        ),
    ] {
        let got = std::fs::read(prefix.join(installed_file))
            .unwrap_or_else(|e| panic!("{installed_file} not installed: {e}"));
        let want = std::fs::read(&source).expect("read the source file");
        assert!(
            got == want,
            "{installed_file} differs from {}",
            source.display()
        );
    }

    assert_eq!(pkg_config(&["--modversion"]), VERSION);
    assert_eq!(
        pkg_config(&["--cflags"]),
        format!("-I{}/include", prefix.display())
    );
    assert_eq!(
        pkg_config(&["--libs"]),
        format!("-L{}/lib -lnim_signaling", prefix.display())
    );
    let static_libs = pkg_config(&["--static", "--libs"]);
    for flag in ["-lnim_signaling", "-lpthread", "-ldl", "-lm"] {
        assert!(
            static_libs.split_whitespace().any(|f| f == flag),
            "no {flag} in `pkg-config --static --libs`: {static_libs}"
        );
    }

    let cmake_dir = prefix.join("lib/cmake/NimSignaling");
    let config = std::fs::read_to_string(cmake_dir.join("NimSignalingConfig.cmake"))
        .expect("NimSignalingConfig.cmake installed");
    for target in [
        "NimSignaling::nim_signaling",
        "NimSignaling::nim_signaling_static",
    ] {
        assert!(
            config.contains(target),
            "no {target} in NimSignalingConfig.cmake"
        );
    }
    let version = std::fs::read_to_string(cmake_dir.join("NimSignalingConfigVersion.cmake"))
        .expect("NimSignalingConfigVersion.cmake installed");
    assert!(
        version.contains(&format!("set(PACKAGE_VERSION \"{VERSION}\")")),
        "NimSignalingConfigVersion.cmake does not say {VERSION}:\n{version}"
    );
    for f in [&config, &version] {
        assert!(!f.contains('@'), "a template placeholder left:\n{f}");
    }
    for server_part in ["bin", "etc", "share/nim-signaling"] {
        assert!(
            !prefix.join(server_part).exists(),
            "{server_part} installed without --with-server"
        );
    }
}

/// `--bindir-from`: the server, its configuration and its systemd unit
/// with this prefix's paths; a reinstall keeps the configuration.
#[test]
fn install_with_the_server() {
    use std::os::unix::fs::PermissionsExt;
    let prefix = work_dir().join("prefix-server");
    let bin_dir = Path::new(server_bin()).parent().unwrap().to_path_buf();
    let install = || {
        check(
            "scripts/install.sh --bindir-from",
            Command::new("bash")
                .arg(repo().join("scripts/install.sh"))
                .arg("--prefix")
                .arg(&prefix)
                .arg("--libdir-from")
                .arg(lib_dir())
                .arg("--bindir-from")
                .arg(&bin_dir),
        )
    };
    let out = install();
    let bin = prefix.join("bin/nim-signaling-server");
    assert!(
        std::fs::read(&bin).expect("bin/nim-signaling-server installed")
            == std::fs::read(server_bin()).unwrap(),
        "bin/nim-signaling-server differs from {}",
        server_bin()
    );
    assert!(
        out.contains(&format!("server:     {}", bin.display())),
        "{out}"
    );
    let version = check(
        "nim-signaling-server --version",
        &mut Command::new(&bin).arg("--version"),
    );
    assert_eq!(version.trim(), format!("nim-signaling-server {VERSION}"));

    let conf = prefix.join("etc/nim-signaling");
    assert_eq!(
        std::fs::read_to_string(conf.join("server.toml")).unwrap(),
        std::fs::read_to_string(repo().join("deploy/server.toml")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(conf.join("env")).unwrap(),
        std::fs::read_to_string(repo().join("deploy/nim-signaling.env")).unwrap()
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(&conf.join("env")),
        0o600,
        "the secrets file is private"
    );
    assert_eq!(mode(&bin), 0o755);
    // The installed server starts from the installed configuration.
    let shown = check(
        "nim-signaling-server --print-config",
        Command::new(&bin)
            .arg("--config")
            .arg(conf.join("server.toml"))
            .arg("--print-config"),
    );
    assert!(shown.contains("\"listen\": \"127.0.0.1:7800\""), "{shown}");

    let unit = std::fs::read_to_string(
        prefix.join("share/nim-signaling/systemd/nim-signaling-server.service"),
    )
    .expect("the systemd unit installed");
    let exec = format!(
        "ExecStart={} --config {}",
        bin.display(),
        conf.join("server.toml").display()
    );
    let env_file = format!("EnvironmentFile=-{}", conf.join("env").display());
    for want in [&exec, &env_file] {
        assert!(unit.lines().any(|l| l == want), "no {want:?} in\n{unit}");
    }
    let docs = prefix.join("share/doc/nim-signaling/OPERATORS.md");
    assert!(
        unit.contains(&format!("file://{}", docs.display())),
        "{unit}"
    );
    assert!(docs.is_file());
    assert!(!unit.contains("/usr/local/bin"), "{unit}");

    // A reinstall keeps an edited configuration.
    std::fs::write(conf.join("server.toml"), "listen = \"127.0.0.1:7999\"\n").unwrap();
    let out = install();
    assert!(out.contains("kept the existing"), "{out}");
    assert_eq!(
        std::fs::read_to_string(conf.join("server.toml")).unwrap(),
        "listen = \"127.0.0.1:7999\"\n"
    );

    // No binary in --bindir-from: refused before anything is installed.
    let empty = work_dir().join("no-server");
    std::fs::create_dir_all(&empty).unwrap();
    let never = work_dir().join("prefix-server-never");
    install_refused(
        &[
            "--prefix".as_ref(),
            never.as_os_str(),
            "--libdir-from".as_ref(),
            lib_dir().as_os_str(),
            "--bindir-from".as_ref(),
            empty.as_os_str(),
        ],
        None,
        "nim-signaling-server not found",
        &never,
    );
}

#[test]
fn install_without_a_built_library_fails_and_says_so() {
    let empty = work_dir().join("no-library");
    std::fs::create_dir_all(&empty).unwrap();
    let prefix = work_dir().join("prefix-never");
    install_refused(
        &[
            "--prefix".as_ref(),
            prefix.as_os_str(),
            "--libdir-from".as_ref(),
            empty.as_os_str(),
        ],
        None,
        "libnim_signaling.so not found",
        &prefix,
    );
    install_refused(&["--no-such-option".as_ref()], Some(2), "usage: ", &prefix);
}

/// `make USE_PKG_CONFIG=1`: header and library from the prefix only.
#[test]
fn make_with_pkg_config_builds_and_runs_the_demos() {
    let build = work_dir().join("make-pkg-config");
    let log = make_pkg_config(&build, &[], "all");
    let include = format!("-I{}/include", installed().display());
    assert!(log.contains(&include), "make did not use {include}:\n{log}");
    assert!(
        !log.contains("-I../include") && !log.contains(&*lib_dir().to_string_lossy()),
        "make used the source tree:\n{log}"
    );

    for exe in ["call_demo", "call_demo_cpp"] {
        assert_uses_installed_lib(&build.join(exe));
    }
    assert_call_demo_c(&run(&build.join("call_demo"), &[]));
    let r = run(&build.join("call_demo_cpp"), &[]);
    assert_call_demo_cpp(&r);
    assert!(r.stderr.is_empty(), "stderr not empty\n{}", r.describe());
}

/// `find_package(NimSignaling)` in examples-c/CMakeLists.txt.
#[test]
fn cmake_find_package_builds_and_runs_the_demos() {
    if Command::new("cmake").arg("--version").output().is_err() {
        panic!("cmake not found (apt-get install cmake)");
    }
    let build = work_dir().join("cmake-build");
    check(
        "cmake configure",
        Command::new("cmake")
            .arg("-S")
            .arg(repo().join("examples-c"))
            .arg("-B")
            .arg(&build)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", installed().display()))
            .arg("-DCMAKE_BUILD_TYPE=Debug"),
    );
    check(
        "cmake --build",
        Command::new("cmake").arg("--build").arg(&build).arg("-j2"),
    );

    assert_uses_installed_lib(&build.join("call_demo_cpp"));
    assert_call_demo_cpp(&run(&build.join("call_demo_cpp"), &[]));
    assert_uses_installed_lib(&build.join("call_demo"));
    assert_call_demo_c(&run(&build.join("call_demo"), &[]));
    // NimSignaling::nim_signaling_static: no libnim_signaling.so at run time.
    let ldd = check(
        "ldd",
        Command::new("ldd").arg(build.join("call_demo_static")),
    );
    assert!(
        !ldd.contains("libnim_signaling"),
        "call_demo_static loads it:\n{ldd}"
    );
    assert_call_demo_c(&run(&build.join("call_demo_static"), &[]));
}

/// call_demo_cpp with -fsanitize=address,undefined (UBSan fatal) and leak
/// detection, against the installed copy.
#[test]
fn call_demo_cpp_asan() {
    if std::env::var("NIM_SIGNALING_ASAN").as_deref() == Ok("0") {
        eprintln!("skipped: NIM_SIGNALING_ASAN=0");
        return;
    }
    let build = work_dir().join("make-pkg-config-san");
    let exe = build.join("call_demo_cpp");
    let log = make_pkg_config(
        &build,
        &["SANITIZE=address,undefined"],
        &exe.to_string_lossy(),
    );
    assert!(
        log.contains("-fsanitize=address,undefined"),
        "not a sanitizer build:\n{log}"
    );
    let r = run(
        &exe,
        &[
            ("ASAN_OPTIONS", "detect_leaks=1"),
            ("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"),
        ],
    );
    for bad in ["ERROR: AddressSanitizer", "LeakSanitizer", "runtime error:"] {
        assert!(!r.stderr.contains(bad), "{bad} reported\n{}", r.describe());
    }
    assert_call_demo_cpp(&r);
}

/// The wrapper with -fno-exceptions -fno-rtti: the whole demo (futures
/// included) builds and runs, and the callback-only form
/// (NIM_SIGNALING_HPP_NO_FUTURES) compiles.
#[test]
fn wrapper_works_without_exceptions() {
    let prefix = installed();
    let dir = work_dir().join("no-exceptions");
    std::fs::create_dir_all(&dir).unwrap();
    let cxx = |args: &[&str]| {
        check(
            "c++ -fno-exceptions",
            Command::new("c++")
                .args([
                    "-std=c++17",
                    "-Wall",
                    "-Wextra",
                    "-Werror",
                    "-pedantic",
                    "-fno-exceptions",
                    "-fno-rtti",
                ])
                .arg(format!("-I{}/include", prefix.display()))
                .args(args),
        )
    };

    let exe = dir.join("call_demo_cpp");
    let lib = format!("{}/lib", prefix.display());
    cxx(&[
        "-o",
        &exe.to_string_lossy(),
        &repo().join("examples-c/call_demo.cpp").to_string_lossy(),
        &format!("-L{lib}"),
        &format!("-Wl,-rpath,{lib}"),
        "-lnim_signaling",
        "-lpthread",
    ]);
    assert_call_demo_cpp(&run(&exe, &[]));

    let src = dir.join("callbacks_only.cpp");
    std::fs::write(
        &src,
        r#"#define NIM_SIGNALING_HPP_NO_FUTURES
#include "nim_signaling.hpp"
#ifdef _GLIBCXX_FUTURE
#error "<future> included despite NIM_SIGNALING_HPP_NO_FUTURES"
#endif
int main()
{
    nim_signaling::Client c; // empty: every request answers 414
    int32_t rc = c.login([](int, std::string) {});
    rc += c.sync("{}", nullptr);
    rc += c.on_online([](std::string) {});
    return rc == 3 * NIM_SIGNALING_INVALID_PARAM ? 0 : 1;
}
"#,
    )
    .unwrap();
    let small = dir.join("callbacks_only");
    cxx(&[
        "-o",
        &small.to_string_lossy(),
        &src.to_string_lossy(),
        &format!("-L{lib}"),
        &format!("-Wl,-rpath,{lib}"),
        "-lnim_signaling",
    ]);
    let r = run(&small, &[]);
    assert!(r.status.success(), "{}", r.describe());
}
