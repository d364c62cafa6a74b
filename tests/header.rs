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
