//! Appends DuckDB's extension metadata footer to the built library and lays out a local
//! extension repository:
//!
//! ```text
//! slaf-package-extension <libslaf_duckdb.so> <repository dir>
//! → <repository dir>/v1.5.6/linux_amd64/slaf.duckdb_extension
//!   <repository dir>/v2.0.0/linux_amd64/slaf.duckdb_extension   (the same file)
//! ```
//!
//! The footer is 534 bytes: a WebAssembly custom-section header naming `duckdb_signature`,
//! eight 32-byte NUL-padded fields (three unused, ABI type, extension version, DuckDB version,
//! platform, magic "4"), then 256 bytes of (absent) signature. ABI `C_STRUCT` with DuckDB
//! version `v1.5.6` is what lets the same file load in DuckDB 1.5.6 and 2.0.0.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const ABI_TYPE: &str = "C_STRUCT";
const MIN_DUCKDB_VERSION: &str = "v1.5.6";
const PLATFORM: &str = "linux_amd64";
const ENGINE_VERSIONS: [&str; 2] = ["v1.5.6", "v2.0.0"];
const FILE_NAME: &str = "slaf.duckdb_extension";
const FOOTER_LEN: usize = 534;

fn field(value: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..value.len()].copy_from_slice(value.as_bytes());
    out
}

/// The metadata footer for an extension of version `extension_version`.
fn footer(extension_version: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(FOOTER_LEN);
    // Custom section id 0, size 0x0213 (LEB128), name length 16, name, payload length 512.
    out.extend_from_slice(&[0x00, 0x93, 0x04, 16]);
    out.extend_from_slice(b"duckdb_signature");
    out.extend_from_slice(&[0x80, 0x04]);
    for value in [
        "",
        "",
        "",
        ABI_TYPE,
        extension_version,
        MIN_DUCKDB_VERSION,
        PLATFORM,
        "4",
    ] {
        out.extend_from_slice(&field(value));
    }
    out.extend_from_slice(&[0u8; 256]);
    out
}

fn package(library: &Path, repository: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut bytes = std::fs::read(library)?;
    bytes.extend_from_slice(&footer(concat!("v", env!("CARGO_PKG_VERSION"))));
    let mut written = Vec::new();
    for version in ENGINE_VERSIONS {
        let dir = repository.join(version).join(PLATFORM);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(FILE_NAME);
        std::fs::write(&path, &bytes)?;
        written.push(path);
    }
    Ok(written)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: {} <libslaf_duckdb.so> <repository dir>", args[0]);
        return ExitCode::from(2);
    }
    match package(Path::new(&args[1]), Path::new(&args[2])) {
        Ok(paths) => {
            for path in paths {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: packaging {} into {}: {e}", args[1], args[2]);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_has_duckdb_layout() {
        let f = footer("v0.1.0");
        assert_eq!(f.len(), FOOTER_LEN);
        assert_eq!(&f[4..20], b"duckdb_signature");
        let fields = &f[22..22 + 256];
        assert_eq!(&fields[96..104], b"C_STRUCT");
        assert_eq!(&fields[160..166], b"v1.5.6");
        assert_eq!(&fields[192..203], b"linux_amd64");
        assert_eq!(fields[224], b'4');
        assert!(f[278..].iter().all(|&b| b == 0));
    }
}
