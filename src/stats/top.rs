//! Per row of a CSR block, the sums of its largest values: scanpy's `percent_top` QC columns.

use rayon::prelude::*;

use crate::error::{Error, Result};

/// For each row of the CSR block (`indptr`, `values`), the sum of its `n` largest values for
/// each `n` of `ns` (ascending, > 0), row-major `rows × ns.len()`. A row with fewer than `n`
/// values sums all of them. Rows run in parallel; each selects its `max(ns)` largest values
/// (linear time) and sorts only those.
pub fn top_sums(indptr: &[i64], values: &[f64], ns: &[usize]) -> Result<Vec<f64>> {
    if ns.is_empty() || ns[0] == 0 || ns.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::invalid_argument(format!(
            "top sizes must be ascending and positive, not {ns:?}"
        )));
    }
    let bad_indptr = indptr.is_empty()
        || indptr[0] < 0
        || indptr.windows(2).any(|w| w[1] < w[0])
        || indptr[indptr.len() - 1] as usize > values.len();
    if bad_indptr {
        return Err(Error::invalid_argument(format!(
            "indptr is not a valid CSR row index over {} values",
            values.len()
        )));
    }
    let k = ns[ns.len() - 1];
    let mut out = vec![0.0; (indptr.len() - 1) * ns.len()];
    out.par_chunks_mut(ns.len()).enumerate().for_each_init(
        Vec::new,
        |scratch: &mut Vec<f64>, (row, sums)| {
            let span = indptr[row] as usize..indptr[row + 1] as usize;
            scratch.clear();
            scratch.extend_from_slice(&values[span]);
            let descending = |a: &f64, b: &f64| b.total_cmp(a);
            if scratch.len() > k {
                scratch.select_nth_unstable_by(k - 1, descending);
                scratch.truncate(k);
            }
            scratch.sort_unstable_by(descending);
            let (mut total, mut next) = (0.0, 0);
            for (i, value) in scratch.iter().enumerate() {
                total += value;
                while next < ns.len() && ns[next] == i + 1 {
                    sums[next] = total;
                    next += 1;
                }
            }
            sums[next..].fill(total);
        },
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_of_the_largest_values_per_row() {
        // Row 0: 5, 1, 3; row 1: empty; row 2: 2.
        let got = top_sums(&[0, 3, 3, 4], &[5.0, 1.0, 3.0, 2.0], &[1, 2, 10]).unwrap();
        assert_eq!(got, vec![5.0, 8.0, 9.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(top_sums(&[0, 1], &[1.0], &[2, 1]).is_err());
        assert!(top_sums(&[0, 2], &[1.0], &[1]).is_err());
        assert!(top_sums(&[], &[], &[1]).is_err());
    }
}
