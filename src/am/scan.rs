//! The state one index scan carries between `amrescan` and `amgettuple` calls:
//! the graph, the prepared query and the widening neighbour stream.

use super::layout::NodeRef;
use super::pages::PageGraph;
use crate::ann::Stream;

#[derive(Default)]
pub struct ScanState {
    /// The query has been read and the stream set up (or found empty).
    pub started: bool,
    pub graph: Option<PageGraph>,
    pub query: Vec<f32>,
    pub stream: Option<Stream<NodeRef>>,
}
