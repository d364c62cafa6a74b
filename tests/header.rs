//! The committed C header must be exactly what the pinned cbindgen makes
//! from the sources. Set NIM_SIGNALING_UPDATE_HEADER=1 to rewrite it.

use std::path::PathBuf;

#[test]
fn header_is_up_to_date() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&root)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let path = root.join("include/nim_signaling.h");
    if std::env::var_os("NIM_SIGNALING_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write header");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/nim_signaling.h is stale: run NIM_SIGNALING_UPDATE_HEADER=1 cargo test --test header and commit it"
    );
}

/// The header compiles cleanly as C99 and as C++17 under strict warnings.
#[test]
fn header_compiles_as_c99_and_cpp17() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("nim-signaling-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = "#include \"nim_signaling.h\"\n\
               int main(void) { nim_signaling_code c = NIM_SIGNALING_OK; return c == 200 ? 0 : 1; }\n";
    for (compiler, std, file) in [("cc", "-std=c99", "h.c"), ("c++", "-std=c++17", "h.cpp")] {
        let path = dir.join(file);
        std::fs::write(&path, src).unwrap();
        let out = std::process::Command::new(compiler)
            .args([
                std,
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-fsyntax-only",
                "-I",
            ])
            .arg(root.join("include"))
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
        assert!(
            out.status.success(),
            "{compiler} {std}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
