//! Embeds the Pro web board's built files (`web/dist`, committed, so that building the
//! server needs no Node) into the binary: writes `$OUT_DIR/pro_files.rs`, a table of
//! `(path, ETag, bytes)` with the bytes by `include_bytes!`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dist = manifest.join("../web/dist");
    // A directory: cargo reruns this when any file under it changes.
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if dist.is_dir() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();
    let mut table = String::from("&[\n");
    for (relative, path) in &files {
        let bytes = std::fs::read(path).expect("a file under web/dist reads");
        writeln!(
            table,
            "    ({relative:?}, \"\\\"{:016x}\\\"\", include_bytes!({:?})),",
            fnv1a(&bytes),
            path.display()
        )
        .expect("writing to a String");
    }
    table.push(']');
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    std::fs::write(out.join("pro_files.rs"), table).expect("OUT_DIR is writable");
}

/// Every file under `dir`, with its path relative to `root` in `/` form.
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).expect("web/dist reads") {
        let path = entry.expect("web/dist reads").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let relative = path.strip_prefix(root).expect("under root");
            let parts: Vec<_> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.push((parts.join("/"), path.canonicalize().expect("exists")));
        }
    }
}

/// A 64-bit FNV-1a hash of the content, for the ETag: stable across builds, and any
/// change to a file changes it.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
