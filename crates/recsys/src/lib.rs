//! Recommenders independent of Postgres: interaction data (`data`), held-out
//! splits (`split`), ranking metrics (`metrics`), the k best-scored items
//! (`topk`, for serving and metrics alike), training parameters
//! (`params`), the algorithms (`als`, `bpr`, `mf`, `kgat`, `vbpr`, and
//! `content_knn` in `content`, which also aligns item features; popularity is
//! a count), the byte form models are stored in (`codec`), and
//! the trained [`Model`] every one of them produces. [`fit`] (in `fit.rs`) runs
//! the whole protocol: split, train, evaluate on the held-out part; `progress`
//! and `init` are what the algorithms share.
//!
//! Training parallelises with rayon inside each iteration; between iterations
//! control returns to the caller's thread (`on_iteration`), which is where a
//! Postgres backend reports progress and checks for cancellation.

mod adam;
pub mod als;
pub mod bpr;
mod codec;
pub mod content;
pub mod data;
mod fit;
mod init;
pub mod kgat;
pub mod memory;
pub mod metrics;
pub mod mf;
pub mod model;
pub mod params;
mod progress;
mod sgd;
pub mod split;
pub mod topk;
pub mod vbpr;

pub use data::{Csr, Dataset, Row};
pub use fit::{Side, Trained, fit, fit_with};
pub use metrics::Metrics;
pub use model::{Algorithm, Model};
pub use params::Params;
pub use progress::Progress;

#[cfg(test)]
mod tests;
