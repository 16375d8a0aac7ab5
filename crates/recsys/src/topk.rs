//! The k best-scored items: what serving returns (`recommend`, batches,
//! similar items) and what the held-out metrics rank, from one heap that
//! rejects almost every score with one comparison.

/// The indices of the `k` highest scores, best first (ties: lower index
/// first), skipping NaN and -inf; among `pool` only, if given. One pass with a
/// k-sized heap, no allocation proportional to the catalogue.
pub fn top_k(scores: &[f32], k: usize, pool: Option<&[u32]>) -> Vec<u32> {
    let mut top = TopK::new(k);
    match pool {
        Some(p) => p.iter().for_each(|&i| top.push(i, scores[i as usize])),
        None => top.push_all(0, scores),
    }
    top.into_sorted().into_iter().map(|(i, _)| i).collect()
}

/// The `k` best (index, score) pairs seen so far, fed in any number of pieces.
pub struct TopK {
    k: usize,
    heap: std::collections::BinaryHeap<Kept>,
    /// The worst kept score once `k` are kept (−∞ before): a score below it
    /// is rejected with one comparison, which is nearly every score.
    floor: f32,
}

/// Heap entry ordered so the heap's top is the worst kept item.
#[derive(PartialEq)]
struct Kept(f32, std::cmp::Reverse<u32>);
impl Eq for Kept {}
impl PartialOrd for Kept {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Kept {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Lower score is "greater" (worse), and at equal score the higher index.
        o.0.total_cmp(&self.0).then(o.1.cmp(&self.1))
    }
}

impl TopK {
    pub fn new(k: usize) -> TopK {
        // Room for the usual k; a larger k grows the heap only as scores
        // arrive, so memory follows the catalogue, never the k asked for.
        TopK { k, heap: std::collections::BinaryHeap::with_capacity(k.min(1024) + 1), floor: f32::NEG_INFINITY }
    }

    #[inline]
    pub fn push(&mut self, i: u32, s: f32) {
        // NaN and −∞ fail this too.
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        if !(s >= self.floor) || s == f32::NEG_INFINITY || self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Kept(s, std::cmp::Reverse(i)));
        } else if let Some(worst) = self.heap.peek()
            && (s > worst.0 || (s == worst.0 && i < (worst.1).0))
        {
            self.heap.pop();
            self.heap.push(Kept(s, std::cmp::Reverse(i)));
        }
        if self.heap.len() == self.k {
            self.floor = self.heap.peek().map_or(f32::NEG_INFINITY, |w| w.0);
        }
    }

    /// `scores[t]` is the score of index `first + t`.
    #[inline]
    pub fn push_all(&mut self, first: u32, scores: &[f32]) {
        // Eight at a time: a block with nothing at or above the floor (almost
        // all of them, once k are kept) costs one vectorised comparison.
        let mut chunks = scores.chunks_exact(8);
        let mut at = first;
        for c in &mut chunks {
            let floor = self.floor;
            if c.iter().fold(false, |any, &s| any | (s >= floor)) {
                for (t, &s) in c.iter().enumerate() {
                    self.push(at + t as u32, s);
                }
            }
            at += 8;
        }
        for (t, &s) in chunks.remainder().iter().enumerate() {
            self.push(at + t as u32, s);
        }
    }

    /// Best first.
    pub fn into_sorted(self) -> Vec<(u32, f32)> {
        self.heap.into_sorted_vec().into_iter().map(|Kept(s, std::cmp::Reverse(i))| (i, s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_first_ties_to_the_lower_index_skipping_nan_and_minus_infinity() {
        assert_eq!(top_k(&[1.0, 3.0, f32::NEG_INFINITY, 2.0], 5, None), vec![1, 3, 0]);
        assert_eq!(top_k(&[2.0, 5.0, 2.0, f32::NAN, 7.0, 2.0], 3, None), vec![4, 1, 0], "ties: lower index first");
        assert_eq!(top_k(&[2.0, 5.0, 2.0, 7.0], 2, Some(&[0, 2, 3])), vec![3, 0]);
        assert!(top_k(&[1.0], 0, None).is_empty());
    }
}
