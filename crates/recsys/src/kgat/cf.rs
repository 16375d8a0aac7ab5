//! KGAT's collaborative-filtering loss on the final representations: BPR on
//! ŷ(u, i) = f_u · f_i (+ b_i with an item bias, an option the paper does not
//! have) for (user, positive item, negative item) triples, plus `reg` ×
//! ½(|f_u|² + |f_i|² + |f_j|² (+ b_i² + b_j²)), both averaged over the batch as
//! in the authors' code. Users are CKG nodes `n_entities + u`; items are
//! nodes `i`.

use ndarray::Array2;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// An item bias and its gradient, both one per item.
pub struct Bias<'a> {
    pub value: &'a [f32],
    pub grad: &'a mut [f32],
}

/// The batch's mean loss; adds its gradient to the rows of `d_final` (and
/// to `bias.grad`).
pub fn bpr_loss(
    finals: &Array2<f32>,
    n_entities: usize,
    batch: &[(u32, u32, u32)],
    reg: f32,
    d_final: &mut Array2<f32>,
    mut bias: Option<Bias<'_>>,
) -> f64 {
    let scale = 1.0 / batch.len().max(1) as f32;
    let mut total = 0.0;
    for &(u, i, j) in batch {
        let un = n_entities + u as usize;
        let (fu, fi, fj) =
            (finals.row(un).to_owned(), finals.row(i as usize).to_owned(), finals.row(j as usize).to_owned());
        let (bi, bj) = bias.as_ref().map_or((0.0, 0.0), |b| (b.value[i as usize], b.value[j as usize]));
        let x = (fu.dot(&fi) - fu.dot(&fj) + bi - bj) as f64;
        // −ln σ(x), computed without overflow for large |x|.
        total += if x > 0.0 { (-x).exp().ln_1p() } else { -x + x.exp().ln_1p() };
        total += 0.5 * reg as f64 * (fu.dot(&fu) + fi.dot(&fi) + fj.dot(&fj) + bi * bi + bj * bj) as f64;
        let g = (-(1.0 - sigmoid(x))) as f32 * scale;
        let rs = reg * scale;
        d_final.row_mut(un).scaled_add(1.0, &(&(&fi - &fj) * g + &fu * rs));
        d_final.row_mut(i as usize).scaled_add(1.0, &(&fu * g + &fi * rs));
        d_final.row_mut(j as usize).scaled_add(1.0, &(&fu * -g + &fj * rs));
        if let Some(b) = bias.as_mut() {
            b.grad[i as usize] += g + rs * bi;
            b.grad[j as usize] += -g + rs * bj;
        }
    }
    total * scale as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgrec_base::rng::Rng;

    #[test]
    fn bpr_gradients_match_finite_differences() {
        let mut rng = Rng::new(11);
        // 3 entities (items 0..2 among them), 2 users (nodes 3, 4).
        let mut f = Array2::from_shape_fn((5, 4), |_| rng.normal() as f32);
        let mut b: Vec<f32> = (0..3).map(|_| rng.normal() as f32).collect();
        let batch = [(0, 0, 1), (1, 2, 0), (0, 2, 1)];
        let loss = |f: &Array2<f32>, b: &[f32]| {
            let mut grad = vec![0f32; 3];
            bpr_loss(f, 3, &batch, 0.05, &mut Array2::zeros((5, 4)), Some(Bias { value: b, grad: &mut grad }))
        };
        let mut d = Array2::zeros(f.raw_dim());
        let mut db = vec![0f32; 3];
        bpr_loss(&f, 3, &batch, 0.05, &mut d, Some(Bias { value: &b, grad: &mut db }));
        let close = |got: f32, num: f64, at: &str| {
            assert!((got as f64 - num).abs() < 1e-3 + 1e-2 * num.abs(), "{at}: {got} vs {num}");
        };
        for r in 0..5 {
            for c in 0..4 {
                close(d[[r, c]], central_difference!(f[[r, c]], loss(&f, &b)), &format!("[{r},{c}]"));
            }
        }
        for k in 0..3 {
            close(db[k], central_difference!(b[k], loss(&f, &b)), &format!("bias {k}"));
        }
        // A confident, correct ranking costs almost nothing.
        let mut g = Array2::<f32>::zeros((5, 4));
        g[[3, 0]] = 10.0;
        g[[0, 0]] = 10.0;
        assert!(bpr_loss(&g, 3, &[(0, 0, 1)], 0.0, &mut Array2::zeros((5, 4)), None) < 1e-30);
    }
}
