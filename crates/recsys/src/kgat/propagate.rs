//! KGAT's attentive embedding propagation over the collaborative knowledge
//! graph, forward and backward, written out by hand so the whole step is a
//! few sparse and dense passes (no autograd tape, no dense adjacency).
//!
//! One layer maps node embeddings E (n × d) to H (n × d'):
//! - neighbourhood Ñ = A·E, with A the attention-weighted adjacency (a CSR
//!   whose rows sum to 1; the attention itself is refreshed once per epoch
//!   and held fixed within it, as in the authors' code);
//! - `bi`: H = LeakyReLU((E + Ñ)W₁ + b₁) + LeakyReLU((E ⊙ Ñ)W₂ + b₂);
//!   `gcn`: H = LeakyReLU((E + Ñ)W₁ + b₁); `graphsage`: H = LeakyReLU([E, Ñ]W₁ + b₁);
//! - message dropout on H, which feeds the next layer;
//! - each layer's output enters the final representation L2-normalised, and
//!   the final representation is [E₀, norm(H₁), …, norm(H_L)].

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView2, Axis, Zip, concatenate, s};
use rayon::prelude::*;

use super::super::data::Csr;

/// LeakyReLU's slope below zero (TensorFlow's default, which KGAT uses).
pub const LEAKY: f32 = 0.2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregator {
    Bi,
    Gcn,
    GraphSage,
}

/// One layer's weights. `w2`/`b2` are used by `bi` only; `graphsage`'s `w1`
/// has 2d rows.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    pub w1: Array2<f32>,
    pub b1: Array1<f32>,
    pub w2: Array2<f32>,
    pub b2: Array1<f32>,
}

impl LayerWeights {
    pub fn zeros_like(&self) -> LayerWeights {
        LayerWeights {
            w1: Array2::zeros(self.w1.raw_dim()),
            b1: Array1::zeros(self.b1.raw_dim()),
            w2: Array2::zeros(self.w2.raw_dim()),
            b2: Array1::zeros(self.b2.raw_dim()),
        }
    }
}

/// What the backward pass needs from the forward pass of one layer.
pub struct LayerCache {
    input: Array2<f32>,
    neighbours: Array2<f32>,
    z1: Array2<f32>,
    z2: Array2<f32>,
    /// Dropout scale per element (0 or 1/(1-p)); empty without dropout.
    keep: Array2<f32>,
    /// The layer's output after dropout, before normalisation.
    out: Array2<f32>,
    norms: Vec<f32>,
}

/// y = A·x for a CSR `a` with weights in `data`, rows in parallel, each row
/// by the shared `weighted_sum` kernel (AVX2/FMA where the CPU has them, the
/// sum kept in registers across the row's edges), as LightGCN propagates.
pub fn spmm(a: &Csr, x: ArrayView2<f32>) -> Array2<f32> {
    let d = x.ncols();
    // Plain slices for the kernel (a standard-layout copy of `x` when it is
    // not one already).
    let x = x.as_standard_layout();
    let src = x.as_slice().unwrap_or(&[]);
    let mut y = vec![0f32; a.n_rows * d];
    if d > 0 && src.len() == x.len() {
        let ws = pgrec_base::kernels::best().weighted_sum;
        y.par_chunks_mut(d).enumerate().with_min_len(64).for_each(|(r, row)| {
            let (cols, vals) = a.row(r);
            ws(row, cols, vals, src);
        });
    }
    Array2::from_shape_vec((a.n_rows, d), y).unwrap_or_else(|_| Array2::zeros((a.n_rows, d)))
}

/// Rows per parallel task of the dense products below.
const ROWS: usize = 512;

/// Message-dropout scales for one batch: per layer, an n × d array of 0 (with
/// probability `p`, to 1/65,536) or 1/(1−p). Element k of a layer is decided
/// by 16 bits of the (k/4)-th value of a SplitMix64 stream from that layer's
/// seed, computed from k directly, so rows are drawn in parallel (drawn one
/// by one, a uniform each, the masks took a tenth of a CF batch on
/// ml-1m-kgat).
pub fn dropout_masks(n: usize, dims: &[usize], p: f32, seed: u64) -> Vec<Array2<f32>> {
    use pgrec_base::rng::{GOLDEN, mix64};
    let scale = 1.0 / (1.0 - p);
    let below = (f64::from(p) * 65536.0).round() as u64;
    dims.iter()
        .enumerate()
        .map(|(l, &d)| {
            let base = mix64(seed ^ (l as u64).wrapping_mul(GOLDEN));
            let mut m = vec![0f32; n * d];
            m.par_chunks_mut(ROWS * d.max(1)).enumerate().for_each(|(c, chunk)| {
                let first = (c * ROWS * d) as u64;
                let mut word = 0;
                for (k, x) in chunk.iter_mut().enumerate() {
                    let g = first + k as u64;
                    if k == 0 || g.is_multiple_of(4) {
                        word = mix64(base.wrapping_add((g / 4 + 1).wrapping_mul(GOLDEN)));
                    }
                    let bits = (word >> (16 * (g % 4))) & 0xffff;
                    *x = if bits < below { 0.0 } else { scale };
                }
            });
            Array2::from_shape_vec((n, d), m).unwrap_or_else(|_| Array2::zeros((n, d)))
        })
        .collect()
}

/// x·w, row blocks in parallel (ndarray's own product is single-threaded).
fn mm(x: ArrayView2<f32>, w: ArrayView2<f32>) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros((x.nrows(), w.ncols()));
    out.axis_chunks_iter_mut(Axis(0), ROWS)
        .into_par_iter()
        .zip(x.axis_chunks_iter(Axis(0), ROWS))
        .for_each(|(mut o, xc)| general_mat_mul(1.0, &xc, &w, 0.0, &mut o));
    out
}

/// xᵀ·y, summed over row blocks computed in parallel.
fn mm_t(x: ArrayView2<f32>, y: ArrayView2<f32>) -> Array2<f32> {
    x.axis_chunks_iter(Axis(0), ROWS)
        .into_par_iter()
        .zip(y.axis_chunks_iter(Axis(0), ROWS))
        .map(|(xc, yc)| xc.t().dot(&yc))
        .reduce(|| Array2::zeros((x.ncols(), y.ncols())), |a, b| a + b)
}

fn add(a: &Array2<f32>, b: &Array2<f32>) -> Array2<f32> {
    Zip::from(a).and(b).par_map_collect(|x, y| x + y)
}

fn mul(a: &Array2<f32>, b: &Array2<f32>) -> Array2<f32> {
    Zip::from(a).and(b).par_map_collect(|x, y| x * y)
}

/// x·w + b.
fn affine(x: &Array2<f32>, w: &Array2<f32>, b: &Array1<f32>) -> Array2<f32> {
    let mut z = mm(x.view(), w.view());
    z.axis_chunks_iter_mut(Axis(0), ROWS).into_par_iter().for_each(|mut c| c += b);
    z
}

fn leaky(z: &Array2<f32>) -> Array2<f32> {
    Zip::from(z).par_map_collect(|&v| if v > 0.0 { v } else { LEAKY * v })
}

fn leaky_back(z: &Array2<f32>, g: &Array2<f32>) -> Array2<f32> {
    Zip::from(g).and(z).par_map_collect(|&g, &z| if z > 0.0 { g } else { LEAKY * g })
}

/// One layer forward. `keep` is the dropout scale (empty for none).
pub fn layer_forward(
    agg: Aggregator,
    a: &Csr,
    w: &LayerWeights,
    input: Array2<f32>,
    keep: Array2<f32>,
) -> (Array2<f32>, LayerCache) {
    let neighbours = spmm(a, input.view());
    let (z1, z2) = match agg {
        Aggregator::Bi => {
            (affine(&add(&input, &neighbours), &w.w1, &w.b1), affine(&mul(&input, &neighbours), &w.w2, &w.b2))
        }
        Aggregator::Gcn => (affine(&add(&input, &neighbours), &w.w1, &w.b1), Array2::zeros((0, 0))),
        Aggregator::GraphSage => {
            (affine(&concatenate![Axis(1), input, neighbours], &w.w1, &w.b1), Array2::zeros((0, 0)))
        }
    };
    let mut out = leaky(&z1);
    if agg == Aggregator::Bi {
        Zip::from(&mut out).and(&z2).par_for_each(|o, &z| *o += if z > 0.0 { z } else { LEAKY * z });
    }
    if !keep.is_empty() {
        out *= &keep;
    }
    let norms: Vec<f32> = out.axis_iter(Axis(0)).into_par_iter().map(|r| r.dot(&r).sqrt().max(1e-12)).collect();
    let mut normed = out.clone();
    Zip::from(normed.rows_mut()).and(&ndarray::aview1(&norms)).par_for_each(|mut r, &n| r /= n);
    (normed, LayerCache { input, neighbours, z1, z2, keep, out, norms })
}

/// Gradients of one layer: from `d_normed` (of the normalised output) and
/// `d_out` (of the raw output, from the next layer), returns the gradient of
/// the layer's input and adds the weights' gradients to `dw`.
pub fn layer_backward(
    agg: Aggregator,
    a_t: &Csr,
    w: &LayerWeights,
    c: &LayerCache,
    d_normed: ArrayView2<f32>,
    d_out: Option<Array2<f32>>,
    dw: &mut LayerWeights,
) -> Array2<f32> {
    // Row normalisation y = h/|h|: dh = (dy − y(y·dy))/|h|.
    let mut dh = d_out.unwrap_or_else(|| Array2::zeros(c.out.raw_dim()));
    Zip::from(dh.rows_mut()).and(c.out.rows()).and(d_normed.rows()).and(&ndarray::aview1(&c.norms)).par_for_each(
        |mut g, h, dy, &n| {
            let y_dy = h.dot(&dy) / n;
            Zip::from(&mut g).and(&h).and(&dy).for_each(|g, &h, &dy| *g += (dy - h / n * y_dy) / n);
        },
    );
    if !c.keep.is_empty() {
        dh *= &c.keep;
    }
    let dz1 = leaky_back(&c.z1, &dh);
    let (mut d_in, d_nb) = match agg {
        Aggregator::Bi | Aggregator::Gcn => {
            let s = add(&c.input, &c.neighbours);
            dw.w1 += &mm_t(s.view(), dz1.view());
            dw.b1 += &dz1.sum_axis(Axis(0));
            let ds = mm(dz1.view(), w.w1.t());
            let (mut d_in, mut d_nb) = (ds.clone(), ds);
            if agg == Aggregator::Bi {
                let dz2 = leaky_back(&c.z2, &dh);
                let p = mul(&c.input, &c.neighbours);
                dw.w2 += &mm_t(p.view(), dz2.view());
                dw.b2 += &dz2.sum_axis(Axis(0));
                let dp = mm(dz2.view(), w.w2.t());
                Zip::from(&mut d_in).and(&dp).and(&c.neighbours).par_for_each(|d, &g, &x| *d += g * x);
                Zip::from(&mut d_nb).and(&dp).and(&c.input).par_for_each(|d, &g, &x| *d += g * x);
            }
            (d_in, d_nb)
        }
        Aggregator::GraphSage => {
            let cat = concatenate![Axis(1), c.input, c.neighbours];
            dw.w1 += &mm_t(cat.view(), dz1.view());
            dw.b1 += &dz1.sum_axis(Axis(0));
            let dc = mm(dz1.view(), w.w1.t());
            let d = c.input.ncols();
            (dc.slice(s![.., ..d]).to_owned(), dc.slice(s![.., d..]).to_owned())
        }
    };
    d_in += &spmm(a_t, d_nb.view());
    d_in
}

/// All layers forward: the final representation and the caches.
pub fn forward(
    agg: Aggregator,
    a: &Csr,
    layers: &[LayerWeights],
    e0: &Array2<f32>,
    keep: Vec<Array2<f32>>,
) -> (Array2<f32>, Vec<LayerCache>) {
    let mut parts = vec![e0.clone()];
    let mut caches = Vec::with_capacity(layers.len());
    let mut x = e0.clone();
    let mut keep = keep.into_iter();
    for w in layers {
        let (normed, cache) = layer_forward(agg, a, w, x, keep.next().unwrap_or_else(|| Array2::zeros((0, 0))));
        x = cache.out.clone();
        parts.push(normed);
        caches.push(cache);
    }
    let total = parts.iter().map(|p| p.ncols()).sum();
    let mut finals = Array2::zeros((e0.nrows(), total));
    let mut at = 0;
    for p in &parts {
        finals.slice_mut(s![.., at..at + p.ncols()]).assign(p);
        at += p.ncols();
    }
    (finals, caches)
}

/// All layers backward from the gradient of the final representation: the
/// gradient of E₀, and the layers' weight gradients.
pub fn backward(
    agg: Aggregator,
    a_t: &Csr,
    layers: &[LayerWeights],
    caches: &[LayerCache],
    d_final: &Array2<f32>,
) -> (Array2<f32>, Vec<LayerWeights>) {
    let d0 = caches.first().map_or(d_final.ncols(), |c| c.input.ncols());
    let mut offsets = vec![d0];
    for c in caches {
        offsets.push(offsets[offsets.len() - 1] + c.out.ncols());
    }
    let mut dws: Vec<LayerWeights> = layers.iter().map(LayerWeights::zeros_like).collect();
    let mut d_next: Option<Array2<f32>> = None;
    for l in (0..layers.len()).rev() {
        let dn = d_final.slice(s![.., offsets[l]..offsets[l + 1]]);
        d_next = Some(layer_backward(agg, a_t, &layers[l], &caches[l], dn, d_next, &mut dws[l]));
    }
    let mut d_e0 = d_final.slice(s![.., ..d0]).to_owned();
    if let Some(d) = d_next {
        d_e0 += &d;
    }
    (d_e0, dws)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgrec_base::rng::Rng;

    fn random(rows: usize, cols: usize, rng: &mut Rng) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |_| rng.normal() as f32 * 0.5)
    }

    /// 6 nodes, rows normalised to sum to 1, one isolated node (row of zeros).
    fn graph() -> Csr {
        let edges = [(0, 1, 0.5), (0, 2, 0.5), (1, 0, 0.3), (1, 3, 0.7), (2, 4, 1.0), (3, 0, 0.2), (3, 2, 0.8)];
        Csr::from_triples(6, 6, edges.iter().map(|&(r, c, v)| (r, c, v)))
    }

    fn weights(agg: Aggregator, dims: &[usize], rng: &mut Rng) -> Vec<LayerWeights> {
        dims.windows(2)
            .map(|d| {
                let rows = if agg == Aggregator::GraphSage { 2 * d[0] } else { d[0] };
                LayerWeights {
                    w1: random(rows, d[1], rng),
                    b1: Array1::from_shape_fn(d[1], |_| rng.normal() as f32 * 0.1),
                    w2: random(d[0], d[1], rng),
                    b2: Array1::from_shape_fn(d[1], |_| rng.normal() as f32 * 0.1),
                }
            })
            .collect()
    }

    /// loss = Σ final ⊙ R for a fixed random R, so d_final = R.
    fn loss(
        agg: Aggregator,
        a: &Csr,
        layers: &[LayerWeights],
        e0: &Array2<f32>,
        r: &Array2<f32>,
        keep: &[Array2<f32>],
    ) -> f64 {
        let (f, _) = forward(agg, a, layers, e0, keep.to_vec());
        (&f * r).iter().map(|&v| v as f64).sum()
    }

    fn check(name: &str, analytic: f32, numeric: f64) {
        let tol = 2e-3 + 2e-2 * numeric.abs();
        assert!((analytic as f64 - numeric).abs() < tol, "{name}: analytic {analytic}, numeric {numeric}");
    }

    #[test]
    fn gradients_match_finite_differences_for_every_aggregator() {
        let a = graph();
        let a_t = a.transpose();
        for agg in [Aggregator::Bi, Aggregator::Gcn, Aggregator::GraphSage] {
            let mut rng = Rng::new(7);
            let dims = [4, 3, 2];
            let mut layers = weights(agg, &dims, &mut rng);
            let mut e0 = random(6, 4, &mut rng);
            let total = dims.iter().sum::<usize>();
            let r = random(6, total, &mut rng);
            // Dropout on the first layer (fixed mask) is part of the function.
            let keep = vec![Array2::from_shape_fn((6, 3), |(i, j)| if (i + j) % 4 == 0 { 0.0 } else { 1.25 })];
            let (_, caches) = forward(agg, &a, &layers, &e0, keep.clone());
            let (d_e0, dws) = backward(agg, &a_t, &layers, &caches, &r);
            for i in 0..6 {
                for j in 0..4 {
                    let num = central_difference!(e0[[i, j]], loss(agg, &a, &layers, &e0, &r, &keep));
                    check(&format!("{agg:?} e0[{i},{j}]"), d_e0[[i, j]], num);
                }
            }
            for l in 0..layers.len() {
                let shape = layers[l].w1.dim();
                for (i, j) in [(0, 0), (shape.0 - 1, shape.1 - 1), (1, 0)] {
                    let num = central_difference!(layers[l].w1[[i, j]], loss(agg, &a, &layers, &e0, &r, &keep));
                    check(&format!("{agg:?} w1[{l}][{i},{j}]"), dws[l].w1[[i, j]], num);
                }
                let num = central_difference!(layers[l].b1[0], loss(agg, &a, &layers, &e0, &r, &keep));
                check(&format!("{agg:?} b1[{l}]"), dws[l].b1[0], num);
                if agg == Aggregator::Bi {
                    let num = central_difference!(layers[l].w2[[1, 1]], loss(agg, &a, &layers, &e0, &r, &keep));
                    check(&format!("{agg:?} w2[{l}]"), dws[l].w2[[1, 1]], num);
                } else {
                    assert!(dws[l].w2.iter().all(|&g| g == 0.0), "{agg:?} has no second weight");
                }
            }
        }
    }

    #[test]
    fn spmm_weights_neighbours_and_isolated_nodes_get_zero() {
        let x = Array2::from_shape_fn((6, 2), |(i, j)| (i * 2 + j) as f32);
        let y = spmm(&graph(), x.view());
        assert_eq!(y.row(0).to_vec(), vec![0.5 * 2.0 + 0.5 * 4.0, 0.5 * 3.0 + 0.5 * 5.0]);
        assert_eq!(y.row(5).to_vec(), vec![0.0, 0.0]);
    }

    #[test]
    fn dropout_masks_drop_the_asked_share_the_same_way_for_a_seed() {
        let masks = dropout_masks(3000, &[16, 8], 0.25, 7);
        assert_eq!(masks.iter().map(|m| m.dim()).collect::<Vec<_>>(), [(3000, 16), (3000, 8)]);
        for m in &masks {
            assert!(m.iter().all(|&x| x == 0.0 || (x - 1.0 / 0.75).abs() < 1e-6));
            let dropped = m.iter().filter(|&&x| x == 0.0).count() as f64 / m.len() as f64;
            assert!((dropped - 0.25).abs() < 0.01, "dropped {dropped}");
        }
        // The same seed gives the same masks (row chunks drawn in parallel
        // do not depend on scheduling); another seed or layer does not.
        assert_eq!(masks, dropout_masks(3000, &[16, 8], 0.25, 7));
        assert_ne!(masks[0], dropout_masks(3000, &[16], 0.25, 8)[0]);
        assert_ne!(masks[0].slice(s![.., ..8]), masks[1]);
    }

    #[test]
    fn spmm_gives_the_weighted_sum_at_every_width() {
        let mut rng = Rng::new(11);
        // 300 nodes with 0 to 40 random edges each (some repeated).
        let mut edges = Vec::new();
        for r in 0..300u32 {
            for _ in 0..rng.below(41) {
                edges.push((r, rng.below(300) as u32, rng.normal() as f32));
            }
        }
        let a = Csr::from_triples(300, 300, edges.iter().copied());
        for d in [5, 16, 32, 64, 128] {
            let x = random(300, d, &mut rng);
            let y = spmm(&a, x.view());
            for r in 0..300 {
                let (cols, vals) = a.row(r);
                for j in 0..d {
                    let want: f64 =
                        cols.iter().zip(vals).map(|(&c, &v)| f64::from(v) * f64::from(x[[c as usize, j]])).sum();
                    assert!(
                        (f64::from(y[[r, j]]) - want).abs() < 1e-4,
                        "width {d}, [{r},{j}]: {} vs {want}",
                        y[[r, j]]
                    );
                }
            }
        }
    }
}
