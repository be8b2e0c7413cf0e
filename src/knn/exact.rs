//! The flat search: every candidate's distance to every query, in parallel over blocks of rows.
//!
//! A block of rows stays in cache while all queries are compared with it, so a batch of
//! queries costs one pass over the vectors, not one per query. Distances come from Lance's
//! own kernels (`lance_linalg`), the ones its indexes use, so both paths rank alike.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use lance_linalg::distance::{
    cosine_distance_batch, dot_distance_batch_into, l2_distance_batch_into,
};
use rayon::prelude::*;

use super::{Metric, Neighbours, Request};

/// Rows per block: a few hundred KiB of vectors, compared with every query while cached.
const BLOCK_ROWS: usize = 2048;

/// A candidate ordered by distance, then id (NaN last, as `total_cmp` puts it).
#[derive(Debug, Clone, Copy)]
struct Candidate {
    distance: f32,
    id: u32,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.id.cmp(&other.id))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

/// The `k` smallest candidates seen so far (a max-heap: the worst kept one on top).
#[derive(Debug, Clone)]
struct TopK {
    k: usize,
    heap: BinaryHeap<Candidate>,
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    fn offer(&mut self, candidate: Candidate) {
        if self.heap.len() < self.k {
            self.heap.push(candidate);
        } else if let Some(worst) = self.heap.peek() {
            if candidate < *worst {
                self.heap.pop();
                self.heap.push(candidate);
            }
        }
    }

    fn merge(&mut self, other: TopK) {
        for candidate in other.heap {
            self.offer(candidate);
        }
    }
}

/// Distances from `query` to each `width`-wide row of `block`, into `out`.
fn distances(metric: Metric, query: &[f32], block: &[f32], width: usize, out: &mut [f32]) {
    match metric {
        Metric::L2 => l2_distance_batch_into(query, block, width, out),
        Metric::Dot => dot_distance_batch_into(query, block, width, out),
        Metric::Cosine => {
            for (slot, d) in out
                .iter_mut()
                .zip(cosine_distance_batch(query, block, width))
            {
                *slot = d;
            }
        }
    }
}

/// The `k` nearest rows of `data` (`width` values per row, row `i` has id `i`) to each of the
/// request's query vectors; rows where `allowed` is `false` are skipped.
pub(super) fn search(data: &[f32], request: &Request, allowed: Option<&[bool]>) -> Neighbours {
    let Request {
        queries,
        n_queries,
        width,
        metric,
        ..
    } = *request;
    let k = request.search.k;
    let n_rows = data.len() / width;
    let n_blocks = n_rows.div_ceil(BLOCK_ROWS);
    let found = (0..n_blocks)
        .into_par_iter()
        .fold(
            || (vec![TopK::new(k); n_queries], Vec::<f32>::new()),
            |(mut tops, mut scratch), b| {
                let first = b * BLOCK_ROWS;
                let last = (first + BLOCK_ROWS).min(n_rows);
                if let Some(mask) = allowed {
                    if !mask[first..last].iter().any(|&keep| keep) {
                        return (tops, scratch);
                    }
                }
                let block = &data[first * width..last * width];
                scratch.resize(last - first, 0.0);
                for (q, top) in tops.iter_mut().enumerate() {
                    let query = &queries[q * width..(q + 1) * width];
                    distances(metric, query, block, width, &mut scratch);
                    for (i, &distance) in scratch.iter().enumerate() {
                        let id = first + i;
                        if allowed.is_none_or(|mask| mask[id]) {
                            top.offer(Candidate {
                                distance,
                                id: id as u32,
                            });
                        }
                    }
                }
                (tops, scratch)
            },
        )
        .map(|(tops, _)| tops)
        .reduce(
            || vec![TopK::new(k); n_queries],
            |mut left, right| {
                for (l, r) in left.iter_mut().zip(right) {
                    l.merge(r);
                }
                left
            },
        );
    let mut out = Neighbours {
        metric: Some(metric),
        indexed: false,
        ..Default::default()
    };
    for (q, top) in found.into_iter().enumerate() {
        for candidate in top.heap.into_sorted_vec() {
            out.queries.push(q as u32);
            out.ids.push(candidate.id);
            out.distances.push(candidate.distance);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knn::{Embedding, Search};

    /// `search` over `queries` (one after another) for the `k` nearest.
    fn run(
        data: &[f32],
        width: usize,
        queries: &[f32],
        metric: Metric,
        k: usize,
        allowed: Option<&[bool]>,
    ) -> Neighbours {
        let search_options = Search::new(k);
        let request = Request {
            what: Embedding::Obsm,
            key: "X",
            queries,
            n_queries: queries.len() / width,
            width,
            metric,
            search: &search_options,
        };
        search(data, &request, allowed)
    }
    use rand_chacha::rand_core::{RngCore, SeedableRng};

    /// The same search done the obvious way: every distance, sorted.
    fn brute(
        data: &[f32],
        width: usize,
        query: &[f32],
        metric: Metric,
        k: usize,
        allowed: Option<&[bool]>,
    ) -> Vec<(u32, f32)> {
        let f = metric.lance().func::<f32>();
        let mut all: Vec<(u32, f32)> = data
            .chunks(width)
            .enumerate()
            .filter(|(i, _)| allowed.is_none_or(|m| m[*i]))
            .map(|(i, row)| (i as u32, f(query, row)))
            .collect();
        all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        all
    }

    #[test]
    fn equals_brute_force_for_every_metric_with_and_without_a_mask() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (n, width, n_queries, k) = (5000, 13, 7, 9);
        let mut uniform = || rng.next_u32() as f32 / u32::MAX as f32 - 0.5;
        let data: Vec<f32> = (0..n * width).map(|_| uniform()).collect();
        let queries: Vec<f32> = (0..n_queries * width).map(|_| uniform()).collect();
        let mask: Vec<bool> = (0..n).map(|i| i % 3 != 0).collect();
        for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
            for allowed in [None, Some(mask.as_slice())] {
                let hits = run(&data, width, &queries, metric, k, allowed);
                assert_eq!(hits.ids.len(), n_queries * k);
                for q in 0..n_queries {
                    let expected = brute(
                        &data,
                        width,
                        &queries[q * width..(q + 1) * width],
                        metric,
                        k,
                        allowed,
                    );
                    let got = &hits.ids[q * k..(q + 1) * k];
                    let ids: Vec<u32> = expected.iter().map(|e| e.0).collect();
                    assert_eq!(got, ids.as_slice(), "{metric:?} query {q}");
                    for (d, e) in hits.distances[q * k..(q + 1) * k].iter().zip(&expected) {
                        assert!(
                            (d - e.1).abs() <= 1e-5 * e.1.abs().max(1.0),
                            "{d} vs {}",
                            e.1
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn fewer_candidates_than_k_returns_them_all() {
        let data = vec![0.0_f32, 0.0, 1.0, 1.0, 3.0, 3.0];
        let mask = [true, false, true];
        let hits = run(&data, 2, &[1.0, 1.0], Metric::L2, 5, Some(&mask));
        assert_eq!(hits.ids, vec![0, 2]);
        assert_eq!(hits.distances, vec![2.0, 8.0]);
        assert_eq!(hits.queries, vec![0, 0]);
    }
}
