//! What the Rust benchmarks share: reading KGAT-style split files.

/// A train.txt / test.txt of KGAT's splits (a line per user: the user, then
/// the items) as (user, item) pairs.
pub fn read(path: &std::path::Path) -> Vec<(i64, i64)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .flat_map(|l| {
            let mut it = l.split_whitespace().map(|x| x.parse::<i64>().expect("integer id"));
            let u = it.next();
            it.filter_map(move |i| u.map(|u| (u, i)))
        })
        .collect()
}
