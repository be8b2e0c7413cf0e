//! Selectors for one axis (cells or genes): everything, integer ids, Python-style ranges,
//! boolean masks or names. They resolve to the ordered list of integer ids they pick.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// Which axis a selector applies to; used in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Cells,
    Genes,
}

impl Axis {
    fn noun(self) -> &'static str {
        match self {
            Axis::Cells => "cell",
            Axis::Genes => "gene",
        }
    }
}

/// A selection along one axis, in the caller's order (duplicates allowed).
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    /// Every position, in order.
    All,
    /// Integer ids; negative ids count from the end, as in Python.
    Ids(Vec<i64>),
    /// A Python slice `start:stop:step` (bounds clipped as Python does).
    Range {
        start: Option<i64>,
        stop: Option<i64>,
        step: i64,
    },
    /// A boolean mask of exactly the axis length.
    Mask(Vec<bool>),
    /// `cell_id` / `gene_id` names.
    Names(Vec<String>),
}

/// A resolved selection: either everything or explicit ids in output order.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    All(usize),
    Ids(Vec<u32>),
}

impl Resolved {
    /// Number of selected positions (the output axis length).
    pub fn len(&self) -> usize {
        match self {
            Resolved::All(n) => *n,
            Resolved::Ids(ids) => ids.len(),
        }
    }

    /// Whether nothing is selected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id at output position `i`.
    pub fn id(&self, i: usize) -> u32 {
        match self {
            Resolved::All(_) => i as u32,
            Resolved::Ids(ids) => ids[i],
        }
    }
}

impl Selector {
    /// Resolves against an axis of length `n`; `names` is asked for only by name selectors.
    pub fn resolve<'a>(
        &self,
        n: usize,
        axis: Axis,
        names: impl FnOnce() -> Result<&'a HashMap<String, u32>>,
    ) -> Result<Resolved> {
        let noun = axis.noun();
        let entries = match self {
            Selector::Ids(v) => v.len(),
            Selector::Mask(v) => v.len(),
            Selector::Names(v) => v.len(),
            Selector::All | Selector::Range { .. } => 0,
        };
        crate::limits::check_range(
            &format!("number of {noun}s selected"),
            entries,
            0,
            crate::limits::MAX_SELECTION,
        )?;
        match self {
            Selector::All => Ok(Resolved::All(n)),
            Selector::Ids(ids) => {
                let mut out = Vec::with_capacity(ids.len());
                for &id in ids {
                    let wrapped = if id < 0 { id + n as i64 } else { id };
                    if wrapped < 0 || wrapped >= n as i64 {
                        return Err(Error::out_of_range(format!(
                            "{noun} index {id} is out of range for {n} {noun}s"
                        )));
                    }
                    out.push(wrapped as u32);
                }
                Ok(Resolved::Ids(out))
            }
            Selector::Range { start, stop, step } => {
                let ids = python_slice(*start, *stop, *step, n).ok_or_else(|| {
                    Error::invalid_argument(format!("{noun} slice step cannot be zero"))
                })?;
                if *step == 1 && ids.len() == n {
                    return Ok(Resolved::All(n));
                }
                Ok(Resolved::Ids(ids))
            }
            Selector::Mask(mask) => {
                if mask.len() != n {
                    return Err(Error::invalid_argument(format!(
                        "boolean {noun} mask has length {} but there are {n} {noun}s",
                        mask.len()
                    )));
                }
                Ok(Resolved::Ids(
                    mask.iter()
                        .enumerate()
                        .filter(|(_, &keep)| keep)
                        .map(|(i, _)| i as u32)
                        .collect(),
                ))
            }
            Selector::Names(wanted) => {
                let lookup = names()?;
                let mut out = Vec::with_capacity(wanted.len());
                let mut missing = Vec::new();
                for name in wanted {
                    match lookup.get(name) {
                        Some(&AMBIGUOUS) => {
                            return Err(Error::invalid_argument(format!(
                                "{noun} name {name:?} is shared by several {noun}s; select them by integer id"
                            )))
                        }
                        Some(&id) => out.push(id),
                        None => missing.push(name.as_str()),
                    }
                }
                if !missing.is_empty() {
                    let shown: Vec<String> =
                        missing.iter().take(5).map(|m| format!("{m:?}")).collect();
                    let more = if missing.len() > 5 {
                        format!(" and {} more", missing.len() - 5)
                    } else {
                        String::new()
                    };
                    return Err(Error::unknown_name(format!(
                        "unknown {noun} {}: {}{more}",
                        if missing.len() == 1 { "name" } else { "names" },
                        shown.join(", ")
                    )));
                }
                Ok(Resolved::Ids(out))
            }
        }
    }
}

/// The positions of `range(n)[start:stop:step]`; `None` when `step == 0`.
fn python_slice(start: Option<i64>, stop: Option<i64>, step: i64, n: usize) -> Option<Vec<u32>> {
    if step == 0 {
        return None;
    }
    let n = n as i64;
    let clip = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
    let bound = |v: Option<i64>, default: i64, lo: i64, hi: i64| match v {
        None => default,
        Some(v) if v < 0 => clip(v.saturating_add(n), lo, hi),
        Some(v) => clip(v, lo, hi),
    };
    let mut out = Vec::new();
    // `i + step` may leave the i64 range for huge steps: that ends the walk, as in Python.
    if step > 0 {
        let (mut i, stop) = (bound(start, 0, 0, n), bound(stop, n, 0, n));
        while i < stop {
            out.push(i as u32);
            let Some(next) = i.checked_add(step) else {
                break;
            };
            i = next;
        }
    } else {
        let (mut i, stop) = (bound(start, n - 1, -1, n - 1), bound(stop, -1, -1, n - 1));
        while i > stop {
            out.push(i as u32);
            let Some(next) = i.checked_add(step) else {
                break;
            };
            i = next;
        }
    }
    Some(out)
}

/// Parses a range written as text, `'start:stop[:step]'` with optional, possibly negative,
/// bounds (Python slice syntax; bounds beyond the i64 range are clipped, which selects the same
/// positions). `None` when the text is not of that form (it may then be a name).
pub fn parse_range(text: &str) -> Option<Selector> {
    let parts: Vec<&str> = text.split(':').map(str::trim).collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let bound = |s: &str| -> Option<Option<i64>> {
        if s.is_empty() {
            return Some(None);
        }
        let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Some(s.parse().unwrap_or(if s.starts_with('-') {
            i64::MIN
        } else {
            i64::MAX
        })))
    };
    let start = bound(parts[0])?;
    let stop = bound(parts[1])?;
    let step = match parts.get(2) {
        Some(s) => bound(s)?.unwrap_or(1),
        None => 1,
    };
    Some(Selector::Range { start, stop, step })
}

/// Marks a name shared by several entries (anndata allows non-unique obs/var names).
pub(crate) const AMBIGUOUS: u32 = u32::MAX;

/// Builds the name → integer id lookup for an axis; a repeated name maps to [`AMBIGUOUS`].
pub(crate) fn name_index<'a>(names: impl Iterator<Item = Option<&'a str>>) -> HashMap<String, u32> {
    let mut index = HashMap::new();
    for (i, name) in names.enumerate() {
        let Some(name) = name else { continue };
        index
            .entry(name.to_string())
            .and_modify(|id| *id = AMBIGUOUS)
            .or_insert(i as u32);
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_names<'a>() -> Result<&'a HashMap<String, u32>> {
        panic!("names should not be needed")
    }

    #[test]
    fn ranges_follow_python_slicing() {
        let ids = |s, e, st| python_slice(s, e, st, 10).unwrap();
        assert_eq!(ids(Some(2), Some(5), 1), vec![2, 3, 4]);
        assert_eq!(ids(None, None, 3), vec![0, 3, 6, 9]);
        assert_eq!(ids(Some(-3), None, 1), vec![7, 8, 9]);
        assert_eq!(ids(None, None, -4), vec![9, 5, 1]);
        assert_eq!(ids(Some(8), Some(2), -3), vec![8, 5]);
        assert_eq!(ids(Some(50), Some(60), 1), Vec::<u32>::new());
        assert!(python_slice(None, None, 0, 10).is_none());
    }

    #[test]
    fn ids_wrap_negatives_and_reject_out_of_range() {
        let sel = Selector::Ids(vec![0, -1, 3]);
        assert_eq!(
            sel.resolve(5, Axis::Cells, no_names).unwrap(),
            Resolved::Ids(vec![0, 4, 3])
        );
        let err = Selector::Ids(vec![5])
            .resolve(5, Axis::Genes, no_names)
            .unwrap_err();
        assert_eq!(err.message(), "gene index 5 is out of range for 5 genes");
    }

    #[test]
    fn masks_must_match_the_axis() {
        let sel = Selector::Mask(vec![true, false, true]);
        assert_eq!(
            sel.resolve(3, Axis::Cells, no_names).unwrap(),
            Resolved::Ids(vec![0, 2])
        );
        let err = sel.resolve(4, Axis::Cells, no_names).unwrap_err();
        assert!(err.message().contains("length 3 but there are 4 cells"));
    }

    #[test]
    fn names_resolve_in_order_and_report_unknowns() {
        let index: HashMap<String, u32> = [("a", 0), ("b", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let sel = Selector::Names(vec!["b".into(), "a".into()]);
        assert_eq!(
            sel.resolve(2, Axis::Genes, || Ok(&index)).unwrap(),
            Resolved::Ids(vec![1, 0])
        );
        let err = Selector::Names(vec!["zz".into()])
            .resolve(2, Axis::Genes, || Ok(&index))
            .unwrap_err();
        assert_eq!(err.message(), "unknown gene name: \"zz\"");
    }

    #[test]
    fn repeated_names_select_only_by_id() {
        let index = name_index([Some("a"), Some("b"), Some("a")].into_iter());
        let ok = Selector::Names(vec!["b".into()]).resolve(3, Axis::Cells, || Ok(&index));
        assert_eq!(ok.unwrap(), Resolved::Ids(vec![1]));
        let err = Selector::Names(vec!["a".into()])
            .resolve(3, Axis::Cells, || Ok(&index))
            .unwrap_err();
        assert!(err.message().contains("\"a\" is shared by several cells"));
    }

    #[test]
    fn range_text_parses_like_python_slices() {
        let range = |start, stop, step| Some(Selector::Range { start, stop, step });
        assert_eq!(parse_range("10:20"), range(Some(10), Some(20), 1));
        assert_eq!(parse_range(" :-1:2 "), range(None, Some(-1), 2));
        assert_eq!(parse_range("::"), range(None, None, 1));
        assert_eq!(
            parse_range("0:99999999999999999999:-99999999999999999999"),
            range(Some(0), Some(i64::MAX), i64::MIN)
        );
        for name in ["AAAC-1", "a:b", "1:2:3:4", "-:1", "1 2:3", "１:2", ""] {
            assert_eq!(parse_range(name), None, "{name:?}");
        }
    }

    /// CPython's slice semantics in i128, as the reference for random ranges.
    fn reference(start: Option<i64>, stop: Option<i64>, step: i64, n: usize) -> Vec<u32> {
        let (n, step) = (n as i128, step as i128);
        let (lo, hi) = if step < 0 { (-1, n - 1) } else { (0, n) };
        let adjust = |v: Option<i64>, default: i128| match v.map(i128::from) {
            None => default,
            Some(v) if v < 0 => (v + n).max(lo),
            Some(v) => v.min(hi),
        };
        let (mut i, stop) = if step < 0 {
            (adjust(start, hi), adjust(stop, lo))
        } else {
            (adjust(start, lo), adjust(stop, hi))
        };
        let mut out = Vec::new();
        while (step > 0 && i < stop) || (step < 0 && i > stop) {
            out.push(i as u32);
            i += step;
        }
        out
    }

    /// Random range texts (deterministic seed, bounded count) never panic, and what parses
    /// selects what Python's `range(n)[start:stop:step]` does, extreme bounds included.
    #[test]
    fn random_range_texts_match_python() {
        use rand_chacha::rand_core::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let atoms = [
            "",
            "0",
            "1",
            "-1",
            "3",
            "-7",
            "+2",
            "10",
            "40",
            "-40",
            "9223372036854775807",
            "-9223372036854775808",
            "99999999999999999999",
            " ",
            "x",
            ":",
            "--1",
        ];
        for _ in 0..20_000 {
            let parts = 1 + rng.next_u32() as usize % 4;
            let text: Vec<&str> = (0..parts)
                .map(|_| atoms[rng.next_u32() as usize % atoms.len()])
                .collect();
            let text = text.join(":");
            let Some(selector) = parse_range(&text) else {
                continue;
            };
            let Selector::Range { start, stop, step } = selector.clone() else {
                panic!("{text:?} parsed to {selector:?}");
            };
            let n = rng.next_u32() as usize % 45;
            match selector.resolve(n, Axis::Cells, no_names) {
                Ok(resolved) => {
                    let ids: Vec<u32> = (0..resolved.len()).map(|i| resolved.id(i)).collect();
                    assert_eq!(ids, reference(start, stop, step, n), "{text:?} over {n}");
                }
                Err(e) => {
                    assert_eq!(step, 0, "{text:?}: {e}");
                    assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
                }
            }
        }
    }

    #[test]
    fn ids_at_the_ends_of_i64_are_out_of_range() {
        for id in [i64::MIN, i64::MAX, -6, 5] {
            let err = Selector::Ids(vec![0, id])
                .resolve(5, Axis::Cells, no_names)
                .unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::OutOfRange);
            assert!(
                err.message().contains(&format!("cell index {id} ")),
                "{err}"
            );
        }
    }
}
