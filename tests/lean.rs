//! The library stays lean: whoever depends on `mcpvault` compiles none of the CLI's weight. clap, rusqlite and
//! redis belong to the CLI package (crates/cli, binary `mcpvault`), never to the library's normal dependency tree.

use std::process::Command;

const CLI_ONLY: [&str; 3] = ["clap", "rusqlite", "redis"];

#[test]
fn library_normal_dependencies_leave_out_the_cli() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "mcpvault",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--manifest-path",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("cargo tree runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo tree failed: {stderr}");
    let tree = String::from_utf8(out.stdout).expect("cargo tree prints UTF-8");
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        crates.first() == Some(&"mcpvault"),
        "unexpected cargo tree output:\n{tree}"
    );
    for name in CLI_ONLY {
        assert!(
            !crates.contains(&name),
            "the library's normal dependencies include {name}; it belongs to crates/cli:\n{tree}"
        );
    }
}
