//! Index access method `pgrec_hnsw`: one file per IndexAmRoutine callback, plus
//! `layout` (the page format, pure bytes). The callbacks arrive with the index
//! issue's next steps; the graph algorithms they use live in `crate::ann`.

#[allow(dead_code)] // used by the callbacks that come next; tested on its own now
pub(crate) mod layout;
