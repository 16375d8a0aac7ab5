//! Every `pgrec.*` setting, registered once when the library loads. Each has a
//! documented default and bounds; Postgres itself rejects values outside them
//! with the parameter's name and the valid range. Settings that guard the
//! server (memory, decompression bombs) are superuser-only (`PGC_SUSET`);
//! the `pgrec` prefix is reserved, so a misspelt `pgrec.*` name is an error.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// Candidates kept by an HNSW index scan (`pgrec_hnsw`); higher is slower but
/// finds more of the true nearest neighbours.
pub static EF_SEARCH: GucSetting<i32> = GucSetting::<i32>::new(40);

/// Most rows one `pgrec_hnsw` scan returns. A scan under a `WHERE` filter keeps
/// widening its search until LIMIT rows pass; this bounds that work.
pub static MAX_SCAN_TUPLES: GucSetting<i32> = GucSetting::<i32>::new(20_000);

/// Worker threads for index builds, training and inference; 0
/// means one per CPU core, and more than the cores are not started.
pub static THREADS: GucSetting<i32> = GucSetting::<i32>::new(0);

/// Megabytes of model files one backend keeps loaded encoders for; beyond it
/// the least recently used encoder is dropped (the one in use always stays).
pub static ENCODER_CACHE_MB: GucSetting<i32> = GucSetting::<i32>::new(1024);

/// Largest image (width × height) `embed_image` decodes; checked from the
/// header, before decoding, so a small file cannot expand into gigabytes.
pub static MAX_IMAGE_PIXELS: GucSetting<i32> = GucSetting::<i32>::new(50_000_000);

/// Most memory one training may estimate it needs (MB); beyond it `train()`
/// refuses before allocating.
pub static MAX_TRAIN_MEMORY_MB: GucSetting<i32> = GucSetting::<i32>::new(4096);

pub fn register() {
    GucRegistry::define_int_guc(
        c"pgrec.ef_search",
        c"Candidate list size of a pgrec_hnsw index scan.",
        c"Larger values raise recall and cost time; a scan that needs more rows (LIMIT beyond it, or a WHERE filter) widens it by itself.",
        &EF_SEARCH,
        1,
        1000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pgrec.max_scan_tuples",
        c"Most rows one pgrec_hnsw index scan returns.",
        c"Bounds how far a filtered scan widens its search before it stops short of LIMIT.",
        &MAX_SCAN_TUPLES,
        1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pgrec.threads",
        c"Worker threads pgrec uses for index builds, training and inference; 0 means one per CPU core.",
        c"",
        &THREADS,
        0,
        1024,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pgrec.encoder_cache_mb",
        c"Megabytes of encoder models one connection keeps loaded.",
        c"Beyond it the least recently used encoder is unloaded; the encoder in use always stays.",
        &ENCODER_CACHE_MB,
        0,
        1_048_576,
        GucContext::Suset,
        GucFlags::UNIT_MB,
    );
    GucRegistry::define_int_guc(
        c"pgrec.max_image_pixels",
        c"Largest image, in pixels (width times height), that embed_image decodes.",
        c"Checked from the image header before decoding, against decompression bombs.",
        &MAX_IMAGE_PIXELS,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pgrec.max_train_memory",
        c"Most memory one train() call may need, by pgrec's estimate from its params and data.",
        c"Checked before training allocates; the error names the estimate and the param to lower.",
        &MAX_TRAIN_MEMORY_MB,
        16,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MB,
    );
    // SAFETY: called once from _PG_init, after pgrec's settings are defined.
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"pgrec".as_ptr()) };
}

/// `pgrec.max_train_memory` in bytes.
pub fn max_train_memory_bytes() -> u64 {
    MAX_TRAIN_MEMORY_MB.get().max(16) as u64 * 1024 * 1024
}

/// `rows` of a training's relation `what` are refused before pgrec copies
/// them if they alone would pass `pgrec.max_train_memory`.
pub fn check_rows_fit(rows: usize, what: &str) -> crate::error::Result<()> {
    let need = rows as u64 * crate::recsys::memory::BYTES_PER_INTERACTION;
    let limit = max_train_memory_bytes();
    if need <= limit {
        return Ok(());
    }
    Err(crate::error::Error::new(
        crate::error::ErrorKind::ProgramLimitExceeded,
        format!(
            "{rows} rows of {what} would need about {} MB, more than pgrec.max_train_memory ({} MB)",
            need.div_ceil(1 << 20),
            limit >> 20
        ),
    )
    .with_hint("train on a sample of the rows, or ask a superuser to raise pgrec.max_train_memory"))
}

pub fn max_image_pixels() -> u64 {
    MAX_IMAGE_PIXELS.get().max(1) as u64
}

/// `pgrec.encoder_cache_mb` in bytes.
pub fn encoder_cache_bytes() -> usize {
    ENCODER_CACHE_MB.get().max(0) as usize * 1024 * 1024
}

/// Threads to use now: `pgrec.threads`, or the number of cores when it is 0;
/// never more than the cores (more would only compete for them).
pub fn threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match THREADS.get() {
        n if n > 0 => (n as usize).min(cores),
        _ => cores,
    }
}
