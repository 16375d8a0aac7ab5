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
    /// KGAT: seconds this epoch spent in each phase.
    pub phases: Option<Phases>,
    /// KGAT's report of its start (iteration 0): the seconds its own BPR
    /// pretraining took, when it ran one.
    pub pretrain_seconds: Option<f64>,
}

/// Where one KGAT epoch's time went, in seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    /// Refreshing every edge's attention (and transposing the adjacency).
    pub attention: f64,
    /// Drawing CF batches and their dropout masks.
    pub cf_sampling: f64,
    /// Propagation forward through all layers, and the BPR loss.
    pub cf_forward: f64,
    /// Propagation backward.
    pub cf_backward: f64,
    /// Adam steps of the CF phase.
    pub cf_adam: f64,
    /// TransR batches: loss, gradients and Adam.
    pub kg: f64,
    /// Validation for early stopping.
    pub validation: f64,
}

impl Phases {
    /// (name, seconds) of each phase, in the order above.
    pub fn named(&self) -> [(&'static str, f64); 7] {
        [
            ("attention", self.attention),
            ("cf sampling", self.cf_sampling),
            ("cf forward", self.cf_forward),
            ("cf backward", self.cf_backward),
            ("cf adam", self.cf_adam),
            ("kg", self.kg),
            ("validation", self.validation),
        ]
    }
}
