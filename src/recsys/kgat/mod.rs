//! KGAT (Wang et al., KDD 2019): embeddings of users, items and knowledge-graph
//! entities propagated over the collaborative knowledge graph with TransR-based
//! attention, trained with BPR on interactions and TransR on triples.
//! `graph` builds the collaborative knowledge graph, `transr` holds the KG
//! loss and the attention, `propagate` the layers (forward and backward),
//! `cf` the BPR loss on the final representations, `train` the training loop.

pub mod cf;
pub mod graph;
pub mod propagate;
pub mod train;
pub mod transr;

pub use train::{train, KgatFactors, KgatParams};
