//! Leftovers of writes that were killed: staging folders (`.NAME.writing-PID-…`), datasets
//! moved aside by an overwrite (`.NAME.old-PID-…`) and conversion scratch files
//! (`.slaf-scratch-PID-…`) next to the output. Each name carries its writer's process id; the
//! next write to the same place removes those whose process is gone and reports what it did.

use std::path::Path;

/// Whether process `pid` is running (Linux: `/proc/PID`). Where that cannot be told, every
/// process counts as running, so nothing is removed.
fn running(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

/// The writer's process id in a leftover's name, after `prefix` (`"PID-…"`).
fn owner(rest: &str) -> Option<u32> {
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

/// Removes the leftovers of dead writers of `target` (and scratch files in its folder);
/// returns one line per leftover removed or kept.
pub(crate) fn clean(target: &Path) -> Vec<String> {
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let parent = target.parent().unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let prefixes = [
        format!(".{name}.writing-"),
        format!(".{name}.old-"),
        ".slaf-scratch-".to_string(),
    ];
    let mut notes = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = prefixes
            .iter()
            .find_map(|p| file_name.strip_prefix(p.as_str()))
        else {
            continue;
        };
        let path = entry.path();
        match owner(rest) {
            Some(pid) if pid == std::process::id() || running(pid) => {}
            Some(_) => {
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                notes.push(match removed {
                    Ok(()) => format!(
                        "removed {}, left behind by an interrupted write",
                        path.display()
                    ),
                    Err(e) => format!(
                        "could not remove {}, left behind by an interrupted write: {e}",
                        path.display()
                    ),
                });
            }
            None => notes.push(format!(
                "{} may be left behind by an interrupted write; remove it if no write is running",
                path.display()
            )),
        }
    }
    notes.sort();
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_leftovers_of_dead_writers_only() {
        let dir = std::env::temp_dir().join(format!("slaf-leftovers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // No process has id 4294967295 (above Linux's pid_max).
        let dead = dir.join(".out.slaf.writing-4294967295-1");
        let mine = dir.join(format!(".out.slaf.writing-{}-1", std::process::id()));
        let scratch = dir.join(".slaf-scratch-4294967295-abc");
        let other = dir.join(".other.slaf.writing-4294967295-1");
        std::fs::create_dir_all(dead.join("cells.lance")).unwrap();
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(&scratch, b"x").unwrap();
        let notes = clean(&dir.join("out.slaf"));
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(!dead.exists() && !scratch.exists());
        assert!(mine.exists() && other.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
