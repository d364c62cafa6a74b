//! The layers of docs/ARCHITECTURE.md, held to by the manifests: each
//! crate depends only on the layers below it, and the client-only C library
//! pulls in none of the server's stack.

#[path = "common/child.rs"]
mod child;

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .args(args);
    child::run(&mut cmd, "cargo", Duration::from_secs(300)).succeeded()
}

/// Each workspace crate and the workspace crates it may use (normal and
/// build dependencies; tests may use anything). The one direction:
/// protocol <- core <- server <- bins, protocol <- client <- C library.
const ALLOWED: &[(&str, &[&str])] = &[
    ("nim-signaling-protocol", &[]),
    ("nim-signaling-core", &["nim-signaling-protocol"]),
    ("nim-signaling-client", &["nim-signaling-protocol"]),
    (
        "nim-signaling-server",
        &["nim-signaling-core", "nim-signaling-protocol"],
    ),
    (
        "nim-signaling",
        &[
            "nim-signaling-client",
            "nim-signaling-protocol",
            "nim-signaling-server",
        ],
    ),
    ("nim-signaling-server-bin", &["nim-signaling-server"]),
    (
        "nim-signaling-bench",
        &[
            "nim-signaling-client",
            "nim-signaling-protocol",
            "nim-signaling-server",
        ],
    ),
];

#[test]
fn every_crate_depends_only_on_the_layers_below_it() {
    let meta: Value =
        serde_json::from_str(&cargo(&["metadata", "--no-deps", "--format-version", "1"]))
            .expect("cargo metadata is JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let ours: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let listed: BTreeSet<&str> = ALLOWED.iter().map(|(name, _)| *name).collect();
    assert_eq!(ours, listed, "every workspace crate has its row in ALLOWED");
    for p in packages {
        let name = p["name"].as_str().unwrap();
        let allowed = ALLOWED.iter().find(|(n, _)| *n == name).unwrap().1;
        for d in p["dependencies"].as_array().unwrap() {
            let dep = d["name"].as_str().unwrap();
            if d["kind"] == "dev" || !ours.contains(dep) {
                continue;
            }
            assert!(
                allowed.contains(&dep),
                "{name} depends on {dep}: that points up or sideways (allowed: {allowed:?})"
            );
        }
    }
}

#[test]
fn the_client_only_library_holds_no_server_stack() {
    let tree = cargo(&[
        "tree",
        "-p",
        "nim-signaling",
        "--no-default-features",
        "-e",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]);
    let crates: BTreeSet<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(crates.contains("nim-signaling-client"), "{tree}");
    for banned in [
        "nim-signaling-server",
        "nim-signaling-core",
        "redis",
        "hyper",
        "axum",
        "reqwest",
        "toml",
        "clap",
        "hdrhistogram",
    ] {
        assert!(
            !crates.contains(banned),
            "the client-only build pulls in {banned}:\n{tree}"
        );
    }
    // The default build has the embedded server, and so its stack.
    let full = cargo(&[
        "tree",
        "-p",
        "nim-signaling",
        "-e",
        "normal",
        "--prefix",
        "none",
    ]);
    assert!(full.contains("nim-signaling-server"), "{full}");
}
