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
//! - each layer's output enters the final representation L2-normalised and
//!   times its gate α (1 in the paper; learned from 0 from a pretrained
//!   start): [E₀, α₁ norm(H₁), …, α_L norm(H_L)].
//!
//! Each pass works through blocks of rows, doing all of a layer's dense and
//! element-wise steps while a block is in cache; one batch's arrays are kept
//! in a `Workspace` for the next.

use ndarray::linalg::general_mat_mul;
use std::ops::Range;

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis, Zip, concatenate, s};
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
    /// The weight of the layer's normalised output in the final
    /// representation: 1 in the paper; from a pretrained start, learned
    /// from a small value, so training begins near the pretrained model's
    /// ranking.
    pub gate: f32,
}

impl LayerWeights {
    pub fn zeros_like(&self) -> LayerWeights {
        LayerWeights {
            w1: Array2::zeros(self.w1.raw_dim()),
            b1: Array1::zeros(self.b1.raw_dim()),
            w2: Array2::zeros(self.w2.raw_dim()),
            b2: Array1::zeros(self.b2.raw_dim()),
            gate: 0.0,
        }
    }
}

/// What the backward pass needs from the forward pass of one layer (its
/// input is the previous layer's `out`, or E₀). The products' inputs E + Ñ
/// and E ⊙ Ñ are not kept: each row block recomputes them where it needs
/// them, while they are in cache.
#[derive(Default)]
pub struct LayerCache {
    /// Whether the layer ran on `rows` only (the last layer of a CF batch:
    /// the loss reads the final representation of the batch's rows alone);
    /// the arrays below then hold those rows, in that order.
    restricted: bool,
    rows: Vec<u32>,
    /// Those rows of the layer's input (0 × 0 otherwise).
    input_rows: Array2<f32>,
    neighbours: Array2<f32>,
    z1: Array2<f32>,
    /// `bi` only (0 × 0 otherwise).
    z2: Array2<f32>,
    /// The layer's output after dropout, before normalisation.
    out: Array2<f32>,
    /// The dropout `out` was drawn with, and its mask (1: kept), row-major.
    dropout: Option<Dropout>,
    kept: Vec<u8>,
    norms: Vec<f32>,
}

/// y = A·x (the tests' reference for `spmm_into`).
#[cfg(test)]
fn spmm(a: &Csr, x: ArrayView2<f32>) -> Array2<f32> {
    let mut y = Array2::zeros((a.n_rows, x.ncols()));
    spmm_into(a, x, &mut y, false, None);
    y
}

/// y = A·x, or y += A·x with `add`, for a CSR `a` with weights in `data` and
/// a standard-layout `y`: rows in parallel, each row by the shared
/// `weighted_sum` kernel (AVX2/FMA where the CPU has them, the sum kept in
/// registers across the row's edges), as LightGCN propagates. With `rows`,
/// row k of `y` is row `rows[k]` of A·x.
fn spmm_into(a: &Csr, x: ArrayView2<f32>, y: &mut Array2<f32>, add: bool, rows: Option<&[u32]>) {
    let d = x.ncols();
    // Plain slices for the kernel (a standard-layout copy of `x` when it is
    // not one already).
    let x = x.as_standard_layout();
    let src = x.as_slice().unwrap_or(&[]);
    let Some(y) = y.as_slice_mut() else { return };
    let n = rows.map_or(a.n_rows, <[u32]>::len);
    if d == 0 || src.len() != x.len() || y.len() != n * d {
        return;
    }
    let ws = pgrec_base::kernels::best().weighted_sum;
    y.par_chunks_mut(d).enumerate().with_min_len(64).for_each_init(
        || vec![0f32; if add { d } else { 0 }],
        |sum, (k, row)| {
            let (cols, vals) = a.row(rows.map_or(k, |rows| rows[k] as usize));
            if add {
                ws(sum, cols, vals, src);
                row.iter_mut().zip(sum.iter()).for_each(|(o, s)| *o += s);
            } else {
                ws(row, cols, vals, src);
            }
        },
    );
}

/// Rows per parallel task: one block's inputs, products and outputs stay in
/// cache through all of a layer's element-wise steps.
const ROWS: usize = 256;

/// The most tasks a layer's backward pass splits its row blocks into.
const GROUPS: usize = 32;

/// Message dropout of one batch: the share of each layer's outputs dropped
/// and the stream that decides which.
#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    pub p: f32,
    pub seed: u64,
}

impl Dropout {
    /// The scales (0 or 1/(1−p)) that `draw` decides, as the tests read them.
    #[cfg(test)]
    pub fn fill(&self, layer: usize, first: usize, out: &mut [f32]) {
        let scale = self.scale();
        self.draw(layer, first, out, |kept| if kept { scale } else { 0.0 });
    }

    fn scale(&self) -> f32 {
        1.0 / (1.0 - self.p)
    }

    /// Whether elements `first..` of layer `layer`'s row-major output are
    /// kept (dropped with probability `p` to 1/65,536), as `value(kept)`
    /// into `out`. Element k is decided by 16 bits of the (k/4)-th value of
    /// a SplitMix64 stream from the layer's seed, computed from k directly:
    /// the forward pass draws the mask block by block, in parallel (drawn one
    /// by one, the masks took a tenth of a CF batch on ml-1m-kgat).
    fn draw<T>(&self, layer: usize, first: usize, out: &mut [T], value: impl Fn(bool) -> T) {
        use pgrec_base::rng::{GOLDEN, mix64};
        let below = (f64::from(self.p) * 65536.0).round() as u64;
        let base = mix64(self.seed ^ (layer as u64).wrapping_mul(GOLDEN));
        let word = |g: usize| mix64(base.wrapping_add((g as u64 / 4 + 1).wrapping_mul(GOLDEN)));
        let decide = |word: u64, k: usize| value((word >> (16 * k)) & 0xffff >= below);
        // Up to the next multiple of 4, then four elements per value.
        let head = ((4 - first % 4) % 4).min(out.len());
        let (lead, rest) = out.split_at_mut(head);
        for (k, x) in lead.iter_mut().enumerate() {
            *x = decide(word(first + k), (first + k) % 4);
        }
        let mut g = first + head;
        let mut quads = rest.chunks_exact_mut(4);
        for q in quads.by_ref() {
            let w = word(g);
            for (k, x) in q.iter_mut().enumerate() {
                *x = decide(w, k);
            }
            g += 4;
        }
        let tail = quads.into_remainder();
        if !tail.is_empty() {
            let w = word(g);
            for (k, x) in tail.iter_mut().enumerate() {
                *x = decide(w, k);
            }
        }
    }

    /// Draws the mask of a block of rows (rows `first..` of the layer's
    /// output, or rows `listed`) into `kept` (1: kept) and applies it; the
    /// backward pass applies the same `kept` again (drawing it twice took a
    /// twentieth of a CF batch on ml-1m-kgat).
    fn apply(
        &self,
        layer: usize,
        first: usize,
        listed: Option<&[u32]>,
        block: &mut ndarray::ArrayViewMut2<f32>,
        kept: &mut [u8],
    ) {
        let d = block.ncols().max(1);
        match listed {
            None => self.draw(layer, first * d, kept, u8::from),
            Some(rows) => {
                for (part, &r) in kept.chunks_mut(d).zip(rows) {
                    self.draw(layer, r as usize * d, part, u8::from);
                }
            }
        }
        self.reapply(kept, block);
    }

    /// Scales a block by a mask `apply` drew for it.
    fn reapply(&self, kept: &[u8], block: &mut ndarray::ArrayViewMut2<f32>) {
        let scale = [0.0, self.scale()];
        // A view's iter_mut walks it row by row, as `draw` numbers elements.
        block.iter_mut().zip(kept).for_each(|(x, &k)| *x *= scale[usize::from(k & 1)]);
    }
}

fn leaky(v: f32) -> f32 {
    if v > 0.0 { v } else { LEAKY * v }
}

/// The block's input to W₁: E + Ñ (`bi`, `gcn`) or [E, Ñ] (`graphsage`).
fn first_input(agg: Aggregator, e: ArrayView2<f32>, nb: ArrayView2<f32>) -> Array2<f32> {
    match agg {
        Aggregator::GraphSage => concatenate![Axis(1), e, nb],
        _ => &e + &nb,
    }
}

/// The blocks of a mask over `n` rows of `d` (ROWS rows each), or as many
/// `None`s without one.
fn mask_blocks(kept: &mut [u8], n: usize, d: usize) -> Vec<Option<&mut [u8]>> {
    if kept.is_empty() || d == 0 {
        (0..n.div_ceil(ROWS)).map(|_| None).collect()
    } else {
        kept.chunks_mut(ROWS * d).map(Some).collect()
    }
}

/// The row blocks of `x`, or as many `None`s for an empty `x`.
fn blocks(x: &mut Array2<f32>, n: usize) -> Vec<Option<ndarray::ArrayViewMut2<'_, f32>>> {
    if x.is_empty() {
        (0..n.div_ceil(ROWS)).map(|_| None).collect()
    } else {
        x.axis_chunks_iter_mut(Axis(0), ROWS).map(Some).collect()
    }
}

/// A zeroed `rows` × `cols` array whose first element sits on a 64-byte
/// boundary, so that with `cols` a multiple of 16 every row starts a cache
/// line: a row gathered by `spmm_into` then spans the fewest lines (a heap
/// array of 64-wide rows usually starts 16 bytes into a line, and the
/// product on ml-1m-kgat took 1.5 times as long over it).
pub fn aligned_zeros(rows: usize, cols: usize) -> Array2<f32> {
    let len = rows * cols;
    let mut flat = Array1::<f32>::zeros(len + 15);
    let skip = (flat.as_ptr() as usize).wrapping_neg() % 64 / std::mem::size_of::<f32>();
    flat.slice_collapse(s![skip..skip + len]);
    flat.into_shape_with_order((rows, cols)).unwrap_or_else(|_| Array2::zeros((rows, cols)))
}

/// `x` as a `rows` × `cols` array, reallocated (aligned) only when its shape
/// differs (the passes below overwrite every element).
fn fit(x: &mut Array2<f32>, rows: usize, cols: usize) {
    if x.dim() != (rows, cols) {
        *x = aligned_zeros(rows, cols);
    }
}

/// The rows `ids` of `x` (a copy).
fn gather(x: ArrayView2<f32>, ids: &[u32]) -> Array2<f32> {
    let mut out = Array2::zeros((ids.len(), x.ncols()));
    for (mut dst, &r) in out.rows_mut().into_iter().zip(ids) {
        dst.assign(&x.row(r as usize));
    }
    out
}

/// One layer forward from `input` into `c`; writes the normalised output
/// into `normed` (the layer's columns of the final representation). With
/// `rows` (ascending), only those rows are computed and written.
#[allow(clippy::too_many_arguments)]
pub fn layer_forward(
    agg: Aggregator,
    a: &Csr,
    w: &LayerWeights,
    input: ArrayView2<f32>,
    dropout: Option<(Dropout, usize)>,
    rows: Option<&[u32]>,
    mut normed: ndarray::ArrayViewMut2<f32>,
    c: &mut LayerCache,
) {
    let d = w.w1.ncols();
    c.restricted = rows.is_some();
    c.rows.clear();
    c.rows.extend_from_slice(rows.unwrap_or(&[]));
    let n = rows.map_or(input.nrows(), <[u32]>::len);
    c.input_rows = rows.map_or_else(|| Array2::zeros((0, 0)), |ids| gather(input, ids));
    fit(&mut c.neighbours, n, input.ncols());
    spmm_into(a, input, &mut c.neighbours, false, rows);
    fit(&mut c.z1, n, d);
    fit(&mut c.z2, if agg == Aggregator::Bi { n } else { 0 }, d);
    fit(&mut c.out, n, d);
    c.norms.resize(n, 0.0);
    c.dropout = dropout.map(|(dr, _)| dr);
    c.kept.resize(if dropout.is_some() { n * d } else { 0 }, 0);
    let (neighbours, ids) = (&c.neighbours, &c.rows);
    let src = if c.restricted { c.input_rows.view() } else { input.view() };
    // Over all rows, each block writes its rows of `normed`; over listed
    // rows, they are written below.
    let mut direct = (!c.restricted).then_some(&mut normed);
    let normed_blocks: Vec<_> = match direct.as_mut() {
        Some(normed) => normed.axis_chunks_iter_mut(Axis(0), ROWS).map(Some).collect(),
        None => (0..n.div_ceil(ROWS)).map(|_| None).collect(),
    };
    let jobs: Vec<_> =
        c.z1.axis_chunks_iter_mut(Axis(0), ROWS)
            .zip(blocks(&mut c.z2, n))
            .zip(c.out.axis_chunks_iter_mut(Axis(0), ROWS))
            .zip(c.norms.chunks_mut(ROWS))
            .zip(normed_blocks)
            .zip(mask_blocks(&mut c.kept, n, d))
            .enumerate()
            .collect();
    jobs.into_par_iter().for_each(|(b, (((((mut z1, z2), mut out), norms), normed), kept))| {
        let r = b * ROWS..b * ROWS + z1.nrows();
        let (e, nb) = (src.slice(s![r.clone(), ..]), neighbours.slice(s![r.clone(), ..]));
        general_mat_mul(1.0, &first_input(agg, e, nb), &w.w1, 0.0, &mut z1);
        z1 += &w.b1;
        Zip::from(&mut out).and(&z1).for_each(|o, &z| *o = leaky(z));
        if let Some(mut z2) = z2 {
            general_mat_mul(1.0, &(&e * &nb), &w.w2, 0.0, &mut z2);
            z2 += &w.b2;
            Zip::from(&mut out).and(&z2).for_each(|o, &z| *o += leaky(z));
        }
        if let (Some((dr, layer)), Some(kept)) = (dropout, kept) {
            dr.apply(layer, r.start, rows.map(|_| &ids[r.clone()]), &mut out, kept);
        }
        for (h, norm) in out.rows().into_iter().zip(norms.iter_mut()) {
            *norm = h.dot(&h).sqrt().max(1e-12);
        }
        if let Some(mut normed) = normed {
            for ((h, mut y), norm) in out.rows().into_iter().zip(normed.rows_mut()).zip(norms.iter()) {
                let scale = w.gate / *norm;
                Zip::from(&mut y).and(&h).for_each(|y, &h| *y = h * scale);
            }
        }
    });
    if c.restricted {
        for ((&r, h), norm) in c.rows.iter().zip(c.out.rows()).zip(&c.norms) {
            let scale = w.gate / *norm;
            Zip::from(normed.row_mut(r as usize)).and(&h).for_each(|y, &h| *y = h * scale);
        }
    }
}

impl LayerCache {
    /// The rows the layer ran on, when it ran on listed rows only.
    fn listed(&self) -> Option<&[u32]> {
        self.restricted.then_some(&self.rows[..])
    }
}

impl LayerWeights {
    fn add(&mut self, o: &LayerWeights) {
        self.w1 += &o.w1;
        self.b1 += &o.b1;
        self.w2 += &o.w2;
        self.b2 += &o.b2;
        self.gate += o.gate;
    }
}

/// The rows `ids[r]` of `x` (an n-row array read by a layer that ran on
/// listed rows), or its rows `r`.
fn take<'a>(x: ArrayView2<'a, f32>, ids: Option<&[u32]>, r: &Range<usize>) -> ndarray::CowArray<'a, f32, ndarray::Ix2> {
    match ids {
        Some(ids) => gather(x, &ids[r.clone()]).into(),
        None => x.slice_move(s![r.clone(), ..]).into(),
    }
}

/// One block's part of `layer_backward`: rows `r` of the cache (`src`: the
/// layer's input in the cache's row order; `ids`: the listed rows, if the
/// layer ran on them). Writes the block's gradients of the input and of the
/// neighbourhood sums into `d_e` and `d_n`; adds the weights' gradients to `g`.
#[allow(clippy::too_many_arguments)]
fn block_backward(
    agg: Aggregator,
    w: &LayerWeights,
    (src, ids, r): (ArrayView2<f32>, Option<&[u32]>, &Range<usize>),
    c: &LayerCache,
    d_normed: ArrayView2<f32>,
    d_out: Option<&Array2<f32>>,
    g: &mut LayerWeights,
    (d_e, d_n): (&mut ArrayViewMut2<f32>, &mut ArrayViewMut2<f32>),
) {
    let d_in = src.ncols();
    fn rows<'a>(x: &'a Array2<f32>, r: &Range<usize>) -> ArrayView2<'a, f32> {
        x.slice(s![r.clone(), ..])
    }
    let (e, nb, h) = (src.slice(s![r.clone(), ..]), c.neighbours.slice(s![r.clone(), ..]), rows(&c.out, r));
    // Row normalisation y = h/|h|: dh = (dy − y(y·dy))/|h|.
    let mut dh = d_out.map_or_else(|| Array2::zeros(h.raw_dim()), |x| take(x.view(), ids, r).into_owned());
    let dy = take(d_normed, ids, r);
    for (((mut dh_row, h), dy), &norm) in
        dh.rows_mut().into_iter().zip(h.rows()).zip(dy.rows()).zip(&c.norms[r.clone()])
    {
        // The gate α scales y: dα = Σ y·dy, and y's gradient is α dy.
        let y_dy = h.dot(&dy) / norm;
        g.gate += y_dy;
        let a = w.gate;
        Zip::from(&mut dh_row).and(&h).and(&dy).for_each(|d, &h, &dy| *d += a * (dy - h / norm * y_dy) / norm);
    }
    if let Some(dr) = c.dropout {
        let d = dh.ncols();
        dr.reapply(&c.kept[r.start * d..r.end * d], &mut dh.view_mut());
    }
    let back = |z: ArrayView2<f32>| Zip::from(&dh).and(&z).map_collect(|&g, &z| if z > 0.0 { g } else { LEAKY * g });
    let dz1 = back(rows(&c.z1, r));
    general_mat_mul(1.0, &first_input(agg, e, nb).t(), &dz1, 1.0, &mut g.w1);
    g.b1 += &dz1.sum_axis(Axis(0));
    // The input's gradient goes straight into the caller's rows: through W₁
    // for both of E + Ñ's terms (each half of [E, Ñ] for graphsage), then
    // E ⊙ Ñ's term for bi.
    let w1t = w.w1.t();
    match agg {
        Aggregator::GraphSage => {
            general_mat_mul(1.0, &dz1, &w1t.slice(s![.., ..d_in]), 0.0, d_e);
            general_mat_mul(1.0, &dz1, &w1t.slice(s![.., d_in..]), 0.0, d_n);
        }
        Aggregator::Gcn => {
            general_mat_mul(1.0, &dz1, &w1t, 0.0, d_e);
            d_n.assign(d_e);
        }
        Aggregator::Bi => {
            general_mat_mul(1.0, &dz1, &w1t, 0.0, d_e);
            let dz2 = back(rows(&c.z2, r));
            general_mat_mul(1.0, &(&e * &nb).t(), &dz2, 1.0, &mut g.w2);
            g.b2 += &dz2.sum_axis(Axis(0));
            let dp = dz2.dot(&w.w2.t());
            Zip::from(d_e).and(d_n).and(&dp).and(&nb).and(&e).for_each(|d_e, d_n, &p, &nb, &e| {
                *d_n = *d_e + p * e;
                *d_e += p * nb;
            });
        }
    }
}

/// Gradients of one layer: from `d_normed` (of the normalised output) and
/// `d_out` (of the raw output, from the next layer), the gradient of the
/// layer's input into `d_input` (`d_nb`: that of its neighbourhood sums, on
/// the way); adds the weights' gradients to
/// `dw`. A layer that ran on listed rows takes its gradients there only.
#[allow(clippy::too_many_arguments)]
pub fn layer_backward(
    agg: Aggregator,
    a_t: &Csr,
    w: &LayerWeights,
    input: ArrayView2<f32>,
    c: &LayerCache,
    d_normed: ArrayView2<f32>,
    d_out: Option<&Array2<f32>>,
    dw: &mut LayerWeights,
    (d_input, d_nb): (&mut Array2<f32>, &mut Array2<f32>),
) {
    let (n, d_in) = input.dim();
    let m = c.out.nrows();
    let ids = c.listed();
    fit(d_input, n, d_in);
    fit(d_nb, n, d_in);
    // Over listed rows, their gradients go to blocks of their own, put in
    // their rows of `d_input` and `d_nb` below; the input is read from the
    // cache's copy of those rows.
    let listed = if ids.is_some() { m } else { 0 };
    let (mut listed_d_e, mut listed_d_n) = (Array2::zeros((listed, d_in)), Array2::zeros((listed, d_in)));
    let (src, d_e_blocks, d_n_blocks) = match ids {
        Some(_) => (c.input_rows.view(), &mut listed_d_e, &mut listed_d_n),
        None => (input.view(), &mut *d_input, &mut *d_nb),
    };
    // Blocks go to at most GROUPS tasks, each summing its blocks' weight
    // gradients in order, and the tasks' sums are added in order below, so a
    // seed gives the same model whatever the threads' timing or number (one
    // sum per block, added one by one, was a serial pass over ~400 copies of
    // the weights per layer and batch on ml-1m-kgat).
    let per = m.div_ceil(ROWS).div_ceil(GROUPS).max(1) * ROWS;
    let jobs: Vec<_> = d_e_blocks
        .axis_chunks_iter_mut(Axis(0), per)
        .zip(d_n_blocks.axis_chunks_iter_mut(Axis(0), per))
        .enumerate()
        .collect();
    let partial: Vec<LayerWeights> = jobs
        .into_par_iter()
        .map(|(k, (mut d_e_group, mut d_n_group))| {
            let mut g = w.zeros_like();
            let blocks =
                d_e_group.axis_chunks_iter_mut(Axis(0), ROWS).zip(d_n_group.axis_chunks_iter_mut(Axis(0), ROWS));
            for (b, (mut d_e, mut d_n)) in blocks.enumerate() {
                let r = k * per + b * ROWS..k * per + b * ROWS + d_e.nrows();
                block_backward(agg, w, (src, ids, &r), c, d_normed, d_out, &mut g, (&mut d_e, &mut d_n));
            }
            g
        })
        .collect();
    for g in &partial {
        dw.add(g);
    }
    if let Some(ids) = ids {
        // Rows outside the list have no gradient of their own. (Aᵀ·d_nb
        // over the listed rows' edges alone took longer than over all
        // edges with zeros: it must pick them out of every row of Aᵀ.)
        d_input.par_mapv_inplace(|_| 0.0);
        d_nb.par_mapv_inplace(|_| 0.0);
        for ((&r, g), gn) in ids.iter().zip(listed_d_e.rows()).zip(listed_d_n.rows()) {
            d_input.row_mut(r as usize).assign(&g);
            d_nb.row_mut(r as usize).assign(&gn);
        }
    }
    spmm_into(a_t, d_nb.view(), d_input, true, None);
}

/// The arrays of one batch's passes, kept from batch to batch: each pass
/// overwrites them, where a fresh n × d array per pass cost page faults and
/// zeroing (about a sixth of an epoch on fb943's 97k nodes).
#[derive(Default)]
pub struct Workspace {
    /// The final representation [E₀, norm(H₁), …] of the last forward pass.
    pub finals: Array2<f32>,
    caches: Vec<LayerCache>,
    /// Per layer, the gradients of its input and of its neighbourhood sums.
    grads: Vec<(Array2<f32>, Array2<f32>)>,
}

/// All layers forward (message dropout from `dropout`) into `ws.finals`.
/// With `rows` (ascending), the last layer runs on those rows only and the
/// final representation holds them alone (other rows keep stale values in
/// the last layer's columns): a CF batch's loss reads no other row. (Its
/// backward pass still runs Aᵀ over every row, zeros outside the list: see
/// `layer_backward`.)
pub fn forward(
    agg: Aggregator,
    a: &Csr,
    layers: &[LayerWeights],
    e0: &Array2<f32>,
    dropout: Option<Dropout>,
    rows: Option<&[u32]>,
    ws: &mut Workspace,
) {
    let d0 = e0.ncols();
    let total = d0 + layers.iter().map(|w| w.w1.ncols()).sum::<usize>();
    fit(&mut ws.finals, e0.nrows(), total);
    match rows {
        // The other rows of the final representation are not read.
        Some(rows) => {
            for &r in rows {
                ws.finals.slice_mut(s![r as usize, ..d0]).assign(&e0.row(r as usize));
            }
        }
        None => Zip::from(ws.finals.slice_mut(s![.., ..d0])).and(e0).par_for_each(|f, &e| *f = e),
    }
    ws.caches.resize_with(layers.len(), LayerCache::default);
    let mut at = d0;
    for (l, w) in layers.iter().enumerate() {
        let d = w.w1.ncols();
        let (before, rest) = ws.caches.split_at_mut(l);
        let input = before.last().map_or(e0.view(), |c| c.out.view());
        let normed = ws.finals.slice_mut(s![.., at..at + d]);
        let last = (l + 1 == layers.len()).then_some(rows).flatten();
        layer_forward(agg, a, w, input, dropout.map(|dr| (dr, l)), last, normed, &mut rest[0]);
        at += d;
    }
}

/// All layers backward from the gradient of the final representation, after
/// `forward` into `ws` (the same `e0`; its dropout masks are in `ws`): the
/// gradient of E₀ (held in `ws`), and the layers' weight gradients.
pub fn backward<'w>(
    agg: Aggregator,
    a_t: &Csr,
    layers: &[LayerWeights],
    e0: &Array2<f32>,
    d_final: &Array2<f32>,
    ws: &'w mut Workspace,
) -> (&'w Array2<f32>, Vec<LayerWeights>) {
    let d0 = e0.ncols();
    let caches = &ws.caches;
    let mut offsets = vec![d0];
    for c in caches {
        offsets.push(offsets[offsets.len() - 1] + c.out.ncols());
    }
    let mut dws: Vec<LayerWeights> = layers.iter().map(LayerWeights::zeros_like).collect();
    let depth = layers.len().min(caches.len());
    ws.grads.resize_with(depth.max(1), Default::default);
    for l in (0..depth).rev() {
        let dn = d_final.slice(s![.., offsets[l]..offsets[l + 1]]);
        let input = if l == 0 { e0.view() } else { caches[l - 1].out.view() };
        let (this, above) = ws.grads.split_at_mut(l + 1);
        let (d_input, d_nb) = &mut this[l];
        let d_out = above.first().map(|g| &g.0);
        layer_backward(agg, a_t, &layers[l], input, &caches[l], dn, d_out, &mut dws[l], (d_input, d_nb));
    }
    // E₀'s gradient: its own columns of the final representation, plus what
    // came back through the first layer.
    let d_e0 = &mut ws.grads[0].0;
    if depth == 0 {
        *d_e0 = d_final.slice(s![.., ..d0]).to_owned();
    } else {
        Zip::from(&mut *d_e0).and(d_final.slice(s![.., ..d0])).par_for_each(|g, &d| *g += d);
    }
    (&ws.grads[0].0, dws)
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
                    gate: 0.7,
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
        dropout: Option<Dropout>,
    ) -> f64 {
        let mut ws = Workspace::default();
        forward(agg, a, layers, e0, dropout, None, &mut ws);
        let f = ws.finals;
        (&f * r).iter().map(|&v| v as f64).sum()
    }

    /// Forward then backward with d_final = `r`, through one workspace used
    /// twice (the second pass must not depend on what the first left there).
    fn gradients(
        agg: Aggregator,
        a: &Csr,
        a_t: &Csr,
        layers: &[LayerWeights],
        e0: &Array2<f32>,
        dropout: Option<Dropout>,
        r: &Array2<f32>,
    ) -> (Array2<f32>, Vec<LayerWeights>) {
        let mut ws = Workspace::default();
        let mut out = Vec::new();
        for seed in [dropout.map(|d| Dropout { seed: d.seed + 1, ..d }), dropout] {
            forward(agg, a, layers, e0, seed, None, &mut ws);
            let (d_e0, dws) = backward(agg, a_t, layers, e0, r, &mut ws);
            out.push((d_e0.clone(), dws));
        }
        out.pop().expect("two passes")
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
            // Dropout (a fixed mask for a seed) is part of the function.
            let keep = Some(Dropout { p: 0.2, seed: 5 });
            let (d_e0, dws) = gradients(agg, &a, &a_t, &layers, &e0, keep, &r);
            for i in 0..6 {
                for j in 0..4 {
                    let num = central_difference!(e0[[i, j]], loss(agg, &a, &layers, &e0, &r, keep));
                    check(&format!("{agg:?} e0[{i},{j}]"), d_e0[[i, j]], num);
                }
            }
            for l in 0..layers.len() {
                let shape = layers[l].w1.dim();
                for (i, j) in [(0, 0), (shape.0 - 1, shape.1 - 1), (1, 0)] {
                    let num = central_difference!(layers[l].w1[[i, j]], loss(agg, &a, &layers, &e0, &r, keep));
                    check(&format!("{agg:?} w1[{l}][{i},{j}]"), dws[l].w1[[i, j]], num);
                }
                let num = central_difference!(layers[l].b1[0], loss(agg, &a, &layers, &e0, &r, keep));
                check(&format!("{agg:?} b1[{l}]"), dws[l].b1[0], num);
                let num = central_difference!(layers[l].gate, loss(agg, &a, &layers, &e0, &r, keep));
                check(&format!("{agg:?} gate[{l}]"), dws[l].gate, num);
                if agg == Aggregator::Bi {
                    let num = central_difference!(layers[l].w2[[1, 1]], loss(agg, &a, &layers, &e0, &r, keep));
                    check(&format!("{agg:?} w2[{l}]"), dws[l].w2[[1, 1]], num);
                } else {
                    assert!(dws[l].w2.iter().all(|&g| g == 0.0), "{agg:?} has no second weight");
                }
            }
        }
    }

    #[test]
    fn aligned_arrays_start_on_a_cache_line_and_are_zero() {
        for (rows, cols) in [(0, 64), (1, 1), (7, 16), (1000, 64), (333, 32)] {
            let x = aligned_zeros(rows, cols);
            assert_eq!(x.dim(), (rows, cols));
            assert!(x.is_standard_layout());
            // (An empty array has no element to place.)
            assert!(rows == 0 || (x.as_ptr() as usize).is_multiple_of(64), "{rows} x {cols}");
            assert!(x.iter().all(|&v| v == 0.0));
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
        let dropout_masks = |n: usize, dims: &[usize], p: f32, seed: u64| -> Vec<Array2<f32>> {
            let dr = Dropout { p, seed };
            let mask = |(l, &d): (usize, &usize)| {
                let mut m = vec![0f32; n * d];
                dr.fill(l, 0, &mut m);
                Array2::from_shape_vec((n, d), m).expect("shape")
            };
            dims.iter().enumerate().map(mask).collect()
        };
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
        // A block drawn from any element on is that part of the whole mask
        // (the passes draw their row blocks separately).
        let whole = masks[0].as_slice().expect("standard layout");
        for first in [1, 3, 4, 37, 4096] {
            let mut part = vec![0f32; 301];
            Dropout { p: 0.25, seed: 7 }.fill(0, first, &mut part);
            assert_eq!(part, whole[first..first + 301]);
        }
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

    /// A graph of `n` nodes with up to 6 random edges each, rows summing to 1.
    fn random_graph(n: usize, rng: &mut Rng) -> Csr {
        let mut edges = Vec::new();
        for r in 0..n as u32 {
            let k = rng.below(7);
            edges.extend((0..k).map(|_| (r, rng.below(n as u64) as u32, 1.0 / k as f32)));
        }
        Csr::from_triples(n, n, edges.into_iter())
    }

    #[test]
    fn forward_over_several_row_blocks_is_the_layer_formula() {
        let mut rng = Rng::new(3);
        let n = 2 * ROWS + 9;
        let a = random_graph(n, &mut rng);
        let layers = weights(Aggregator::Bi, &[5, 4, 3], &mut rng);
        let e0 = random(n, 5, &mut rng);
        let dr = Dropout { p: 0.3, seed: 9 };
        let mut ws = Workspace::default();
        forward(Aggregator::Bi, &a, &layers, &e0, Some(dr), None, &mut ws);
        let finals = ws.finals;
        // Dense, whole-matrix reference: H = LeakyReLU((E + AE)W₁ + b₁) +
        // LeakyReLU((E ⊙ AE)W₂ + b₂), times the mask, rows normalised.
        let mut x = e0.clone();
        let mut at = 5;
        assert_eq!(finals.slice(s![.., ..5]), e0);
        for (l, w) in layers.iter().enumerate() {
            let nb = spmm(&a, x.view());
            let lr = |z: Array2<f32>| z.mapv(|v| if v > 0.0 { v } else { LEAKY * v });
            let mut h = lr((&x + &nb).dot(&w.w1) + &w.b1) + lr((&x * &nb).dot(&w.w2) + &w.b2);
            let mut keep = vec![0f32; h.len()];
            dr.fill(l, 0, &mut keep);
            h *= &Array2::from_shape_vec(h.raw_dim(), keep).expect("shape");
            for r in 0..n {
                let norm = h.row(r).dot(&h.row(r)).sqrt().max(1e-12) / w.gate;
                for j in 0..h.ncols() {
                    let got = finals[[r, at + j]];
                    assert!((got - h[[r, j]] / norm).abs() < 1e-5, "layer {l} [{r},{j}]: {got}");
                }
            }
            at += h.ncols();
            x = h;
        }
    }

    #[test]
    fn the_last_layer_over_listed_rows_gives_those_rows_and_the_same_gradients() {
        let mut rng = Rng::new(8);
        let n = 2 * ROWS + 9;
        let a = random_graph(n, &mut rng);
        let a_t = a.transpose();
        // Rows in every block, the first and the last among them.
        let rows: Vec<u32> = (0..n as u32).filter(|r| r % 7 == 0 || *r == n as u32 - 1).collect();
        for agg in [Aggregator::Bi, Aggregator::Gcn, Aggregator::GraphSage] {
            let layers = weights(agg, &[5, 4, 3], &mut rng);
            let e0 = random(n, 5, &mut rng);
            let dr = Some(Dropout { p: 0.3, seed: 9 });
            let (mut full, mut part) = (Workspace::default(), Workspace::default());
            forward(agg, &a, &layers, &e0, dr, None, &mut full);
            forward(agg, &a, &layers, &e0, dr, Some(&rows), &mut part);
            for &r in &rows {
                for j in 0..12 {
                    let (f, p) = (full.finals[[r as usize, j]], part.finals[[r as usize, j]]);
                    assert!((f - p).abs() < 1e-6, "{agg:?} [{r},{j}]: {f} vs {p}");
                }
            }
            // A loss over the listed rows only.
            let mut d_final = random(n, 12, &mut rng);
            for r in 0..n {
                if rows.binary_search(&(r as u32)).is_err() {
                    d_final.row_mut(r).fill(0.0);
                }
            }
            let (g_full, w_full) = backward(agg, &a_t, &layers, &e0, &d_final, &mut full);
            let (g_part, w_part) = backward(agg, &a_t, &layers, &e0, &d_final, &mut part);
            for (f, p) in g_full.iter().zip(g_part.iter()) {
                assert!((f - p).abs() < 1e-5, "{agg:?} d_e0: {f} vs {p}");
            }
            for (l, (f, p)) in w_full.iter().zip(&w_part).enumerate() {
                for (x, y) in
                    f.w1.iter()
                        .chain(&f.w2)
                        .chain(&f.b1)
                        .chain(&f.b2)
                        .zip(p.w1.iter().chain(&p.w2).chain(&p.b1).chain(&p.b2))
                {
                    assert!((x - y).abs() < 1e-4, "{agg:?} layer {l}: {x} vs {y}");
                }
                assert!((f.gate - p.gate).abs() < 1e-4, "{agg:?} gate {l}");
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences_across_row_blocks() {
        let mut rng = Rng::new(4);
        // More blocks than tasks: the backward pass's tasks then hold two.
        let n = (GROUPS + 1) * ROWS + 40;
        let a = random_graph(n, &mut rng);
        let a_t = a.transpose();
        let mut layers = weights(Aggregator::Bi, &[3, 2, 2], &mut rng);
        let mut e0 = random(n, 3, &mut rng);
        let r = random(n, 7, &mut rng);
        let keep = Some(Dropout { p: 0.1, seed: 2 });
        let (d_e0, dws) = gradients(Aggregator::Bi, &a, &a_t, &layers, &e0, keep, &r);
        for i in [0, ROWS - 1, ROWS, 2 * ROWS, 3 * ROWS - 1, n - 1] {
            for j in 0..3 {
                let num = central_difference!(e0[[i, j]], loss(Aggregator::Bi, &a, &layers, &e0, &r, keep));
                check(&format!("e0[{i},{j}]"), d_e0[[i, j]], num);
            }
        }
        // A weight moves every row's products, so some cross LeakyReLU's kink
        // within the macro's step: a smaller one here.
        let step = 1e-4f32;
        for (l, dw) in dws.iter().enumerate() {
            for (which, (i, j)) in [(1, (1, 0)), (2, (0, 1))] {
                fn at(ls: &mut [LayerWeights], l: usize, which: u8, (i, j): (usize, usize)) -> &mut f32 {
                    if which == 1 { &mut ls[l].w1[[i, j]] } else { &mut ls[l].w2[[i, j]] }
                }
                let x = *at(&mut layers, l, which, (i, j));
                *at(&mut layers, l, which, (i, j)) = x + step;
                let up = loss(Aggregator::Bi, &a, &layers, &e0, &r, keep);
                *at(&mut layers, l, which, (i, j)) = x - step;
                let down = loss(Aggregator::Bi, &a, &layers, &e0, &r, keep);
                *at(&mut layers, l, which, (i, j)) = x;
                let analytic = if which == 1 { dw.w1[[i, j]] } else { dw.w2[[i, j]] };
                check(&format!("w{which}[{l}]"), analytic, (up - down) / (2.0 * f64::from(step)));
            }
        }
    }
}
