//! Recommenders independent of Postgres: interaction data (`data`), held-out
//! splits (`split`), ranking metrics (`metrics`), the k best-scored items
//! (`topk`, for serving and metrics alike), the params rules and the
//! protocol's keys (`params`), the algorithms, each in one module that holds
//! its typed params, defaults, rules and `fit` (`popular`, `als`, `bpr`, `mf`,
//! `ease`, `item_knn`, `kgat`, `vbpr`, and `content_knn` in `content`, which
//! also aligns item features), the registry that lists them (`registry`), the
//! byte form models are stored in (`codec`), and the trained [`Model`] every
//! one of them produces. [`fit`] (in `fit.rs`) runs the whole protocol: split,
//! train, evaluate on the held-out part; `progress` and `init` are what the
//! algorithms share.
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
pub mod ease;
mod fit;
mod init;
pub mod item_knn;
pub mod kgat;
pub mod lightgcn;
pub mod memory;
pub mod metrics;
pub mod mf;
pub mod model;
pub mod params;
pub mod popular;
mod progress;
pub mod registry;
mod sgd;
pub mod split;
pub mod topk;
pub mod tune;
pub mod update;
pub mod vbpr;

pub use data::{Csr, Dataset, Row};
pub use fit::{Side, Trained, fit, fit_json, fit_with};
pub use metrics::Metrics;
pub use model::Model;
pub use params::Params;
pub use progress::{Phases, Progress};
pub use registry::Algorithm;

#[cfg(test)]
mod tests;
