//! `popular`: every user gets the items with the most training interactions.
//! The baseline every other model must beat, and the fallback for users a
//! model does not know.

use serde::{Deserialize, Serialize};

use super::memory::{Shape, factor_model};
use super::params::Param;
use super::progress::Progress;
use super::registry::{Algo, Context};
use pgrec_base::error::Result;

/// popular takes no params of its own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopularParams {}

pub struct Popular;

impl Algo for Popular {
    type Params = PopularParams;
    const NAME: &'static str = "popular";
    const SUMMARY: &'static str = "interaction counts: the same items for everyone";
    const PARAMS: &'static [Param] = &[];

    fn memory(_p: &PopularParams, s: &Shape) -> (u64, &'static str) {
        (factor_model(s, 0), "train on a sample of the interactions")
    }

    /// The score is the item's training interactions over the most any
    /// item has.
    fn fit(_p: &PopularParams, cx: &mut Context<'_>) -> Result<()> {
        cx.model.item_bias = scores(&counts(cx.train));
        (cx.on_iteration)(&Progress { iteration: 1, of: 1, ..Progress::default() })
    }
}

/// Interactions per item (column) of `ui`.
pub(crate) fn counts(ui: &crate::data::Csr) -> Vec<u32> {
    let mut c = vec![0u32; ui.n_cols];
    ui.indices.iter().for_each(|&i| c[i as usize] += 1);
    c
}

/// The popularity score: an item's interactions over the most any item has.
pub(crate) fn scores(counts: &[u32]) -> Vec<f32> {
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f32;
    counts.iter().map(|&c| c as f32 / max).collect()
}

/// Items by interaction count, most first (ties by index): a model's
/// fallback for unknown users.
pub(crate) fn by_count(counts: &[u32]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..counts.len() as u32).collect();
    order.sort_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));
    order
}
