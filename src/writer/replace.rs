//! What `overwrite` may replace: a SLAF dataset only — a folder whose config.json parses and
//! that holds nothing but that config, `uns.json` and the tables it names. Never a file, a
//! folder holding anything else, the current directory (or a folder around it), or a path
//! that is or holds one of the inputs being converted.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use crate::config::Config;
use crate::error::{Error, Result};

/// `path` with symlinks resolved where it exists (else made absolute).
pub(crate) fn resolve(path: &Path) -> Result<PathBuf> {
    match std::fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(_) => std::path::absolute(path)
            .map_err(|e| Error::storage(format!("resolving {}", path.display()), e)),
    }
}

fn refuse(target: &str, why: String) -> Error {
    Error::invalid_argument(format!(
        "refusing to overwrite {target}: {why}; --overwrite (overwrite=True) replaces only a \
         SLAF dataset"
    ))
}

/// Fails unless the existing `target` may be replaced by a new dataset converted from
/// `inputs`. Nothing is deleted here or when it fails.
pub fn check_replaceable(target: &str, inputs: &[String]) -> Result<()> {
    let shown = target;
    let target = resolve(Path::new(target))?;
    if !target.exists() {
        return Ok(());
    }
    for input in inputs {
        let input_path = resolve(Path::new(input))?;
        if input_path == target {
            return Err(refuse(shown, format!("it is the input {input}")));
        }
        if input_path.starts_with(&target) {
            return Err(refuse(shown, format!("it holds the input {input}")));
        }
    }
    if let Ok(cwd) = std::env::current_dir().and_then(std::fs::canonicalize) {
        if cwd.starts_with(&target) {
            return Err(refuse(
                shown,
                "it is the current directory or holds it".to_string(),
            ));
        }
    }
    if !target.is_dir() {
        return Err(refuse(
            shown,
            "it is a file, not a SLAF dataset".to_string(),
        ));
    }
    let config_path = target.join("config.json");
    let bytes = std::fs::read(&config_path).map_err(|_| {
        refuse(
            shown,
            "it is not a SLAF dataset (no config.json)".to_string(),
        )
    })?;
    let config = Config::parse(&bytes, &config_path.to_string_lossy())
        .map_err(|e| refuse(shown, format!("it is not a SLAF dataset ({e})")))?;
    // What a dataset holds: its config, uns.json and the top folder of each table.
    let mut own: BTreeSet<String> = ["config.json", "uns.json"].map(String::from).into();
    for relative in config.tables.values() {
        let first = Path::new(relative.trim_start_matches("./"))
            .components()
            .find_map(|c| match c {
                Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
                _ => None,
            });
        own.extend(first);
    }
    let entries =
        std::fs::read_dir(&target).map_err(|e| Error::storage(format!("listing {shown}"), e))?;
    let mut foreign: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // Atomic replacements of config.json / uns.json that a killed write left.
        .filter(|n| !own.contains(n) && !n.contains(".tmp-"))
        .collect();
    if !foreign.is_empty() {
        foreign.sort();
        let more = foreign.len().saturating_sub(3);
        foreign.truncate(3);
        let list = foreign.join(", ");
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        return Err(refuse(
            shown,
            format!("it holds files that are not part of the dataset ({list}{tail})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_everything_but_a_dataset() {
        let root = std::env::temp_dir().join(format!("slaf-replace-{}", std::process::id()));
        let ds = root.join("ds.slaf");
        std::fs::create_dir_all(ds.join("cells.lance")).unwrap();
        std::fs::create_dir_all(ds.join("expression.lance")).unwrap();
        std::fs::create_dir_all(ds.join("genes.lance")).unwrap();
        std::fs::write(ds.join("config.json"), br#"{"array_shape": [0, 0]}"#).unwrap();
        let s = |p: &Path| p.to_string_lossy().into_owned();
        check_replaceable(&s(&ds), &[]).unwrap();
        check_replaceable(&s(&root.join("absent")), &[]).unwrap();

        let input = ds.join("in.h5ad");
        std::fs::write(&input, b"x").unwrap();
        let err = check_replaceable(&s(&ds), &[s(&input)]).unwrap_err();
        assert!(err.message().contains("holds the input"), "{err}");
        let err = check_replaceable(&s(&input), &[s(&input)]).unwrap_err();
        assert!(err.message().contains("is the input"), "{err}");
        let err = check_replaceable(&s(&ds), &[]).unwrap_err();
        assert!(err.message().contains("in.h5ad"), "{err}");

        let other = root.join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("keep.txt"), b"x").unwrap();
        let err = check_replaceable(&s(&other), &[]).unwrap_err();
        assert!(err.message().contains("no config.json"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
