//! Large buffers backed by 2 MB pages where the kernel allows it.
//!
//! A build reads vectors and neighbour lists at random across hundreds of
//! megabytes; with 4 kB pages nearly every read also misses the TLB and walks
//! the page table. Linux backs an `madvise(MADV_HUGEPAGE)` range with 2 MB
//! pages when transparent huge pages are set to `madvise` or `always` (Debian's
//! default is `madvise`), if the range is advised before it is first touched.
//! Measured on a 1,000,000 × 128 in-memory build (`cargo bench --bench hnsw
//! -- l2_1m`, table order, 2 threads): 162.9 s with 4 kB pages, 145.4 s with
//! the vectors and layer 0 advised.

/// A vector of `len` values from `fill`, its storage advised to use huge
/// pages before any is written. Elsewhere than Linux, or when the kernel
/// declines, an ordinary vector.
pub fn filled<T>(len: usize, fill: impl FnMut(usize) -> T) -> Vec<T> {
    let mut v = advised(len);
    v.extend((0..len).map(fill));
    v
}

/// A copy of `from` in storage advised as [`filled`]'s.
pub fn copy_of<T: Copy>(from: &[T]) -> Vec<T> {
    let mut v = advised(from.len());
    v.extend_from_slice(from);
    v
}

/// An empty vector with room for `len` values, the whole 2 MB-aligned part
/// of that room advised before anything touches it.
fn advised<T>(len: usize) -> Vec<T> {
    let v = Vec::with_capacity(len);
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = v.as_ptr() as usize;
        let end = start + v.capacity() * std::mem::size_of::<T>();
        let (from, to) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if to > from {
            // SAFETY: [from, to) lies inside `v`'s own allocation; MADV_HUGEPAGE
            // changes only how the kernel backs those pages, never their
            // contents, and a refusal (an error return) is harmless.
            unsafe { libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE) };
        }
    }
    v
}
