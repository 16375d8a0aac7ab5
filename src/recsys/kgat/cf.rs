//! KGAT's collaborative-filtering loss on the final representations: BPR on
//! ŷ(u, i) = f_u · f_i for (user, positive item, negative item) triples, plus
//! `reg` × ½(|f_u|² + |f_i|² + |f_j|²), both averaged over the batch as in the
//! authors' code. Users are CKG nodes `n_entities + u`; items are nodes `i`.

use ndarray::Array2;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The batch's mean loss; adds its gradient to the rows of `d_final`.
pub fn bpr_loss(
    finals: &Array2<f32>,
    n_entities: usize,
    batch: &[(u32, u32, u32)],
    reg: f32,
    d_final: &mut Array2<f32>,
) -> f64 {
    let scale = 1.0 / batch.len().max(1) as f32;
    let mut total = 0.0;
    for &(u, i, j) in batch {
        let un = n_entities + u as usize;
        let (fu, fi, fj) =
            (finals.row(un).to_owned(), finals.row(i as usize).to_owned(), finals.row(j as usize).to_owned());
        let x = (fu.dot(&fi) - fu.dot(&fj)) as f64;
        // −ln σ(x), computed without overflow for large |x|.
        total += if x > 0.0 { (-x).exp().ln_1p() } else { -x + x.exp().ln_1p() };
        total += 0.5 * reg as f64 * (fu.dot(&fu) + fi.dot(&fi) + fj.dot(&fj)) as f64;
        let g = (-(1.0 - sigmoid(x))) as f32 * scale;
        let rs = reg * scale;
        d_final.row_mut(un).scaled_add(1.0, &(&(&fi - &fj) * g + &fu * rs));
        d_final.row_mut(i as usize).scaled_add(1.0, &(&fu * g + &fi * rs));
        d_final.row_mut(j as usize).scaled_add(1.0, &(&fu * -g + &fj * rs));
    }
    total * scale as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ann::synth::Rng;

    #[test]
    fn bpr_gradients_match_finite_differences() {
        let mut rng = Rng::new(11);
        // 3 entities (items 0..2 among them), 2 users (nodes 3, 4).
        let mut f = Array2::from_shape_fn((5, 4), |_| rng.normal() as f32);
        let batch = [(0, 0, 1), (1, 2, 0), (0, 2, 1)];
        let mut d = Array2::zeros(f.raw_dim());
        bpr_loss(&f, 3, &batch, 0.05, &mut d);
        let eps = 1e-3f32;
        for r in 0..5 {
            for c in 0..4 {
                let x = f[[r, c]];
                f[[r, c]] = x + eps;
                let up = bpr_loss(&f, 3, &batch, 0.05, &mut Array2::zeros((5, 4)));
                f[[r, c]] = x - eps;
                let down = bpr_loss(&f, 3, &batch, 0.05, &mut Array2::zeros((5, 4)));
                f[[r, c]] = x;
                let num = (up - down) / (2.0 * eps as f64);
                assert!((d[[r, c]] as f64 - num).abs() < 1e-3 + 1e-2 * num.abs(), "[{r},{c}]: {} vs {num}", d[[r, c]]);
            }
        }
        // A confident, correct ranking costs almost nothing.
        let mut g = Array2::<f32>::zeros((5, 4));
        g[[3, 0]] = 10.0;
        g[[0, 0]] = 10.0;
        assert!(bpr_loss(&g, 3, &[(0, 0, 1)], 0.0, &mut Array2::zeros((5, 4))) < 1e-30);
    }
}
