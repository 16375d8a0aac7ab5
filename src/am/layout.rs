//! On-page format of the `pgrec_hnsw` index, as plain bytes (no pgrx here, so it
//! is unit-tested with `cargo test`; the callbacks in this folder move these bytes
//! in and out of buffers under GenericXLog).
//!
//! Block 0 is the meta page ([`Meta`]). Every other block holds node items, one
//! per indexed heap row:
//!
//! ```text
//! kind u8 (=1) | level u8 | flags u8 | reserved u8 | heap block u32 | heap offset u16 | dims u16
//! vector: dims × f32
//! for each level 0..=level: count u16, then cap(level) slots of (block u32, offset u16)
//! ```
//!
//! Neighbour arrays have a fixed capacity (2·m on level 0, m above), so a node's
//! links are rewritten in place and an item never changes size. All integers are
//! little-endian; items are read by copying fields, never by casting, so page
//! alignment does not matter.

use crate::error::{Error, ErrorKind, Result};

pub const META_MAGIC: u32 = 0x7067_6873; // "pghs"
pub const FORMAT_VERSION: u32 = 1;
const NODE_KIND: u8 = 1;
const FLAG_DELETED: u8 = 1;
const NODE_HEADER: usize = 12;
const REF_SIZE: usize = 6;

/// Where a node item lives: block and 1-based line pointer, as in an ItemPointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeRef {
    pub block: u32,
    pub offset: u16,
}

impl NodeRef {
    fn write(self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.block.to_le_bytes());
        out[4..6].copy_from_slice(&self.offset.to_le_bytes());
    }

    fn read(b: &[u8]) -> NodeRef {
        NodeRef { block: u32::from_le_bytes([b[0], b[1], b[2], b[3]]), offset: u16::from_le_bytes([b[4], b[5]]) }
    }
}

fn cap(m: usize, level: usize) -> usize {
    if level == 0 { 2 * m } else { m }
}

/// Bytes of a node item with `dims` dimensions on levels `0..=level`.
pub fn node_size(dims: usize, level: usize, m: usize) -> usize {
    NODE_HEADER + 4 * dims + (0..=level).map(|l| 2 + REF_SIZE * cap(m, l)).sum::<usize>()
}

fn corrupt(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::DataCorrupted, format!("corrupt pgrec_hnsw index item: {}", what.into()))
        .with_hint("REINDEX the index")
}

/// Serialises a new node with its links (each list at most its capacity).
pub fn encode_node(heap: NodeRef, vector: &[f32], links: &[Vec<NodeRef>], m: usize) -> Vec<u8> {
    let level = links.len().saturating_sub(1);
    let mut out = vec![0u8; node_size(vector.len(), level, m)];
    out[0] = NODE_KIND;
    out[1] = level as u8;
    heap.write(&mut out[4..10]);
    out[10..12].copy_from_slice(&(vector.len() as u16).to_le_bytes());
    for (i, v) in vector.iter().enumerate() {
        out[NODE_HEADER + 4 * i..NODE_HEADER + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
    let mut node = NodeMut { bytes: &mut out, m };
    for (l, list) in links.iter().enumerate() {
        node.set_links(l, list);
    }
    out
}

/// Read-only view of a node item.
pub struct Node<'a> {
    bytes: &'a [u8],
    m: usize,
}

impl<'a> Node<'a> {
    /// Checks the header and the size against it before any field is read.
    pub fn parse(bytes: &'a [u8], m: usize) -> Result<Node<'a>> {
        if bytes.len() < NODE_HEADER || bytes[0] != NODE_KIND {
            return Err(corrupt(format!("{} bytes without a node header", bytes.len())));
        }
        let level = bytes[1] as usize;
        let dims = u16::from_le_bytes([bytes[10], bytes[11]]) as usize;
        if node_size(dims, level, m) != bytes.len() {
            return Err(corrupt(format!(
                "{} bytes do not hold a level-{level} node of {dims} dimensions",
                bytes.len()
            )));
        }
        Ok(Node { bytes, m })
    }

    pub fn level(&self) -> usize {
        self.bytes[1] as usize
    }

    pub fn is_deleted(&self) -> bool {
        self.bytes[2] & FLAG_DELETED != 0
    }

    pub fn heap(&self) -> NodeRef {
        NodeRef::read(&self.bytes[4..10])
    }

    pub fn dims(&self) -> usize {
        u16::from_le_bytes([self.bytes[10], self.bytes[11]]) as usize
    }

    /// The vector, copied out (items need not be 4-byte aligned in the page).
    pub fn vector_into(&self, out: &mut Vec<f32>) {
        out.clear();
        out.extend(
            self.bytes[NODE_HEADER..NODE_HEADER + 4 * self.dims()]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }

    /// Runs `f` on the vector, read in place when the item is 4-byte aligned
    /// (items start MAXALIGN'd and the vector sits at offset 12, so in a page it
    /// always is) and copied otherwise.
    pub fn with_vector<R>(&self, f: impl FnOnce(&[f32]) -> R) -> R {
        let bytes = &self.bytes[NODE_HEADER..NODE_HEADER + 4 * self.dims()];
        #[cfg(target_endian = "little")]
        {
            // SAFETY: every bit pattern is a valid f32, and align_to only yields
            // the middle part at f32 alignment; the stored form is little-endian.
            let (head, floats, tail) = unsafe { bytes.align_to::<f32>() };
            if head.is_empty() && tail.is_empty() {
                return f(floats);
            }
        }
        let mut v = Vec::with_capacity(self.dims());
        self.vector_into(&mut v);
        f(&v)
    }

    fn links_at(&self, level: usize) -> usize {
        NODE_HEADER + 4 * self.dims() + (0..level).map(|l| 2 + REF_SIZE * cap(self.m, l)).sum::<usize>()
    }

    /// Appends the links on `level` (none above the node's level).
    pub fn links_into(&self, level: usize, out: &mut Vec<NodeRef>) {
        if level > self.level() {
            return;
        }
        let at = self.links_at(level);
        let n = (u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]]) as usize).min(cap(self.m, level));
        out.extend((0..n).map(|i| NodeRef::read(&self.bytes[at + 2 + REF_SIZE * i..])));
    }
}

/// Mutable view of a node item, for rewriting links and flags in place.
pub struct NodeMut<'a> {
    bytes: &'a mut [u8],
    m: usize,
}

impl<'a> NodeMut<'a> {
    pub fn parse(bytes: &'a mut [u8], m: usize) -> Result<NodeMut<'a>> {
        Node::parse(bytes, m)?;
        Ok(NodeMut { bytes, m })
    }

    fn view(&self) -> Node<'_> {
        Node { bytes: self.bytes, m: self.m }
    }

    /// Replaces the links on `level`, keeping at most the level's capacity.
    pub fn set_links(&mut self, level: usize, links: &[NodeRef]) {
        if level > self.view().level() {
            return;
        }
        let at = self.view().links_at(level);
        let n = links.len().min(cap(self.m, level));
        self.bytes[at..at + 2].copy_from_slice(&(n as u16).to_le_bytes());
        for (i, r) in links[..n].iter().enumerate() {
            r.write(&mut self.bytes[at + 2 + REF_SIZE * i..at + 2 + REF_SIZE * (i + 1)]);
        }
    }

    pub fn mark_deleted(&mut self) {
        self.bytes[2] |= FLAG_DELETED;
    }
}

/// Usable bytes of an index page: 8 kB less the 24-byte page header.
pub const PAGE_SPACE: usize = 8192 - 24;

/// Refuses a dimension count whose nodes could not fit a page at the highest
/// level a node can draw (15), so a build or insert never fails half-way.
pub fn check_fits(dims: usize, m: usize) -> Result<()> {
    let size = node_size(dims, 15, m);
    if size.div_ceil(8) * 8 + 4 > PAGE_SPACE {
        return Err(Error::new(
            ErrorKind::ProgramLimitExceeded,
            format!("pgrec_hnsw cannot index {dims} dimensions with m = {m}: a node needs up to {size} bytes of an 8 kB page"),
        )
        .with_hint("index fewer dimensions (an expression index on subvector(...)) or use a smaller m"));
    }
    Ok(())
}

/// Assigns every node a (block, offset) by packing items in order into pages of
/// `page_space` usable bytes, from block 1 (block 0 is the meta page). Each item
/// costs its MAXALIGN'd size plus a 4-byte line pointer, as in a Postgres page.
pub fn place(sizes: impl IntoIterator<Item = usize>, page_space: usize) -> Result<Vec<NodeRef>> {
    let mut out = Vec::new();
    let (mut block, mut offset, mut free) = (1u32, 0u16, page_space);
    for size in sizes {
        let need = size.div_ceil(8) * 8 + 4;
        if need > page_space {
            return Err(Error::new(
                ErrorKind::ProgramLimitExceeded,
                format!("an index node of {size} bytes does not fit in a page"),
            )
            .with_hint("use fewer dimensions or a smaller m"));
        }
        if need > free {
            block += 1;
            offset = 0;
            free = page_space;
        }
        offset += 1;
        free -= need;
        out.push(NodeRef { block, offset });
    }
    Ok(out)
}

/// Metric code stored in the meta page.
pub fn metric_code(m: crate::ann::Metric) -> u8 {
    match m {
        crate::ann::Metric::L2 => 1,
        crate::ann::Metric::Cosine => 2,
        crate::ann::Metric::InnerProduct => 3,
    }
}

/// The meta page's contents.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Meta {
    pub dims: u16,
    pub metric: crate::ann::Metric,
    pub m: u16,
    pub ef_construction: u16,
    /// Entry node and its level; `None` for an empty index.
    pub entry: Option<(NodeRef, u8)>,
    /// Last block with node items, where inserts try first.
    pub last_block: u32,
    pub nodes: u64,
}

pub const META_SIZE: usize = 36;

impl Meta {
    pub fn encode(&self) -> [u8; META_SIZE] {
        let mut b = [0u8; META_SIZE];
        b[0..4].copy_from_slice(&META_MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[8..10].copy_from_slice(&self.dims.to_le_bytes());
        b[10] = metric_code(self.metric);
        b[11] = self.entry.map_or(0, |(_, l)| l + 1);
        b[12..14].copy_from_slice(&self.m.to_le_bytes());
        b[14..16].copy_from_slice(&self.ef_construction.to_le_bytes());
        if let Some((r, _)) = self.entry {
            r.write(&mut b[16..22]);
        }
        b[24..28].copy_from_slice(&self.last_block.to_le_bytes());
        b[28..36].copy_from_slice(&self.nodes.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<Meta> {
        let bad = |what: &str| {
            Error::new(ErrorKind::DataCorrupted, format!("pgrec_hnsw meta page is not valid: {what}"))
                .with_hint("REINDEX the index")
        };
        if b.len() < META_SIZE || u32::from_le_bytes([b[0], b[1], b[2], b[3]]) != META_MAGIC {
            return Err(bad("wrong magic number"));
        }
        let version = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        if version != FORMAT_VERSION {
            return Err(bad(&format!("format version {version}, this build reads {FORMAT_VERSION}")));
        }
        let metric = match b[10] {
            1 => crate::ann::Metric::L2,
            2 => crate::ann::Metric::Cosine,
            3 => crate::ann::Metric::InnerProduct,
            x => return Err(bad(&format!("unknown metric code {x}"))),
        };
        Ok(Meta {
            dims: u16::from_le_bytes([b[8], b[9]]),
            metric,
            m: u16::from_le_bytes([b[12], b[13]]),
            ef_construction: u16::from_le_bytes([b[14], b[15]]),
            entry: (b[11] > 0).then(|| (NodeRef::read(&b[16..22]), b[11] - 1)),
            last_block: u32::from_le_bytes([b[24], b[25], b[26], b[27]]),
            nodes: u64::from_le_bytes([b[28], b[29], b[30], b[31], b[32], b[33], b[34], b[35]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ann::Metric;

    fn r(block: u32, offset: u16) -> NodeRef {
        NodeRef { block, offset }
    }

    #[test]
    fn node_round_trip_and_in_place_updates() {
        let links = vec![vec![r(1, 2), r(7, 3)], vec![r(9, 1)]];
        let mut bytes = encode_node(r(42, 5), &[1.0, -2.5, 3e10], &links, 4);
        assert_eq!(bytes.len(), node_size(3, 1, 4));
        assert_eq!(bytes.len(), 12 + 12 + (2 + 6 * 8) + (2 + 6 * 4));
        let n = Node::parse(&bytes, 4).unwrap();
        assert_eq!((n.level(), n.dims(), n.heap(), n.is_deleted()), (1, 3, r(42, 5), false));
        let mut v = Vec::new();
        n.vector_into(&mut v);
        assert_eq!(v, vec![1.0, -2.5, 3e10]);
        let mut l = Vec::new();
        n.links_into(0, &mut l);
        n.links_into(1, &mut l);
        n.links_into(2, &mut l);
        assert_eq!(l, vec![r(1, 2), r(7, 3), r(9, 1)]);

        let mut m = NodeMut::parse(&mut bytes, 4).unwrap();
        m.set_links(0, &(1..=20).map(|i| r(i, 1)).collect::<Vec<_>>());
        m.mark_deleted();
        let n = Node::parse(&bytes, 4).unwrap();
        let mut l = Vec::new();
        n.links_into(0, &mut l);
        assert_eq!(l.len(), 8, "capped at 2·m");
        assert!(n.is_deleted());
    }

    #[test]
    fn damaged_items_are_reported_not_read() {
        let bytes = encode_node(r(1, 1), &[1.0; 4], &[vec![]], 16);
        assert_eq!(Node::parse(&bytes[..bytes.len() - 1], 16).err().map(|e| e.kind), Some(ErrorKind::DataCorrupted));
        assert!(Node::parse(&bytes, 8).is_err(), "wrong m changes the expected size");
        assert!(Node::parse(&[0u8; 40], 16).is_err());
    }

    #[test]
    fn placement_packs_pages_like_postgres() {
        // 8168 usable bytes; a 1742-byte node costs 1744 + 4.
        let refs = place(std::iter::repeat_n(1742, 10), 8168).unwrap();
        assert_eq!(refs[0], r(1, 1));
        assert_eq!(refs[3], r(1, 4));
        assert_eq!(refs[4], r(2, 1));
        assert_eq!(refs[9], r(3, 2));
        assert_eq!(place([9000], 8168).err().map(|e| e.kind), Some(ErrorKind::ProgramLimitExceeded));
    }

    #[test]
    fn page_fit_is_checked_at_the_highest_level() {
        // 1,621 is the most the README promises for the default m.
        assert!(check_fits(1621, 16).is_ok());
        assert!(check_fits(1622, 16).is_err());
        let e = check_fits(1700, 16).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ProgramLimitExceeded);
        assert!(e.message.starts_with("pgrec_hnsw cannot index 1700 dimensions with m = 16"), "{}", e.message);
        let bytes = encode_node(r(1, 1), &[1.5, -2.0], &[vec![]], 4);
        let n = Node::parse(&bytes, 4).unwrap();
        assert_eq!(n.with_vector(|v| v.to_vec()), vec![1.5, -2.0]);
    }

    #[test]
    fn meta_round_trip() {
        let meta = Meta {
            dims: 384,
            metric: Metric::Cosine,
            m: 16,
            ef_construction: 64,
            entry: Some((r(3, 2), 4)),
            last_block: 99,
            nodes: 123_456,
        };
        assert_eq!(Meta::decode(&meta.encode()).unwrap(), meta);
        let empty = Meta { entry: None, ..meta };
        assert_eq!(Meta::decode(&empty.encode()).unwrap(), empty);
        let mut bad = meta.encode();
        bad[4] = 9;
        assert!(Meta::decode(&bad).unwrap_err().message.contains("format version 9"));
        assert!(Meta::decode(&[0; 36]).is_err());
    }
}
