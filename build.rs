//! Gives the shared library a SONAME on Linux: programs record
//! `libnim_signaling.so.<abi>` and a compatible release can replace the
//! file under them. The ABI number follows semantic versioning: the major
//! version, or `0.<minor>` while the major is 0 (0.1 and 0.2 may differ).
//! Android loads libraries by file name and wants none, and other systems
//! name libraries their own way, so only Linux gets one.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_default();
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap_or_default();
    let abi = if major == "0" {
        format!("0.{minor}")
    } else {
        major
    };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnim_signaling.so.{abi}");
}
