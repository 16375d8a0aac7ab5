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
        let mut counts = vec![0f32; cx.train.n_cols];
        cx.train.indices.iter().for_each(|&i| counts[i as usize] += 1.0);
        let max = counts.iter().copied().fold(1.0, f32::max);
        cx.model.item_bias = counts.into_iter().map(|c| c / max).collect();
        (cx.on_iteration)(&Progress { iteration: 1, of: 1, ..Progress::default() })
    }
}
