//! Appends DuckDB's extension metadata footer to a built library and lays out a local
//! extension repository:
//!
//! ```text
//! slaf-package-extension <libslaf_duckdb.so> <repository dir>
//! → <repository dir>/v1.5.6/linux_amd64/slaf.duckdb_extension
//!   <repository dir>/v2.0.0/linux_amd64/slaf.duckdb_extension   (the same file)
//! slaf-package-extension --in-place <_native.abi3.so>
//! → the Python module itself gets the footer (it exports the same entry point), so one file
//!   serves Python and DuckDB-in-Python; a footer already there is replaced, not doubled
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

/// `bytes` without a footer this tool appended earlier.
fn without_footer(bytes: &[u8]) -> &[u8] {
    let ours = footer(concat!("v", env!("CARGO_PKG_VERSION")));
    // Everything but the extension version field is fixed, so compare the header and the magic.
    match bytes.len().checked_sub(FOOTER_LEN) {
        Some(start)
            if bytes[start..start + 22] == ours[..22]
                && bytes[start + 22 + 224..] == ours[22 + 224..] =>
        {
            &bytes[..start]
        }
        _ => bytes,
    }
}

/// The library's bytes followed by the footer.
fn with_footer(library: &Path) -> std::io::Result<Vec<u8>> {
    let bytes = std::fs::read(library)?;
    let mut out = without_footer(&bytes).to_vec();
    out.extend_from_slice(&footer(concat!("v", env!("CARGO_PKG_VERSION"))));
    Ok(out)
}

/// Gives `library` the footer in place (written beside it, then renamed over it, so a reader
/// never sees half a file).
fn seal_in_place(library: &Path) -> std::io::Result<Vec<PathBuf>> {
    let bytes = with_footer(library)?;
    let mut staged = library.as_os_str().to_owned();
    staged.push(".footer-tmp");
    let staged = PathBuf::from(staged);
    std::fs::write(&staged, &bytes)?;
    std::fs::set_permissions(&staged, std::fs::metadata(library)?.permissions())?;
    std::fs::rename(&staged, library)?;
    Ok(vec![library.to_path_buf()])
}

fn package(library: &Path, repository: &Path) -> std::io::Result<Vec<PathBuf>> {
    let bytes = with_footer(library)?;
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
        eprintln!(
            "usage: {0} <libslaf_duckdb.so> <repository dir>\n       {0} --in-place <library>",
            args[0]
        );
        return ExitCode::from(2);
    }
    let done = match args[1].as_str() {
        "--in-place" => seal_in_place(Path::new(&args[2])),
        _ => package(Path::new(&args[1]), Path::new(&args[2])),
    };
    match done {
        Ok(paths) => {
            for path in paths {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: packaging {}: {e}", args[1..].join(" "));
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

    #[test]
    fn sealing_twice_appends_one_footer() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib.so");
        let plain = b"\x7fELF library bytes";
        std::fs::write(&lib, plain).unwrap();
        seal_in_place(&lib).unwrap();
        let once = std::fs::read(&lib).unwrap();
        seal_in_place(&lib).unwrap();
        assert_eq!(std::fs::read(&lib).unwrap(), once);
        assert_eq!(once.len(), plain.len() + FOOTER_LEN);
        assert_eq!(without_footer(&once), plain);
    }
}
