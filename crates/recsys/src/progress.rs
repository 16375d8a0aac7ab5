//! What a trainer reports to its caller between iterations (and between
//! batches of a long one), where a Postgres backend shows progress and checks
//! for cancellation.

/// What a trainer reports after each iteration (epoch).
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub iteration: usize,
    pub of: usize,
    pub loss: f64,
    pub elapsed: f64,
    /// No iteration finished: a chance between batches of a long iteration
    /// for the caller to cancel (nothing to report).
    pub checkpoint: bool,
    /// KGAT: the loss's CF (BPR) and KG (TransR) parts.
    pub cf_kg: Option<(f64, f64)>,
    /// Recall@20 on the validation part, when this iteration evaluated it.
    pub validation_recall: Option<f64>,
}
