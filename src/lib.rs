//! pgrec: multimodal recommendation inside PostgreSQL.
//!
//! The extension: the Postgres shells (`types`, `am`, `catalog`, `api`) over the
//! pure cores, which are crates of their own without pgrx (`crates/`: base, with
//! `error`, `kernels` and `rng`; `ann`; `embed`; `recsys`). `sqlstate` is the
//! single place errors become Postgres ERRORs. All DDL is hand-written in `sql/`
//! and pulled in here.

// A panic inside pgrec becomes a Postgres ERROR only by unwinding to the
// `#[pg_guard]` of the callback Postgres called; built with panic = "abort",
// the same panic would take the whole server down. So no profile may do that.
#[cfg(not(panic = "unwind"))]
compile_error!("pgrec must be built with panic = \"unwind\": set it in every Cargo profile");

// The pure cores, each a crate of its own without pgrx (see ARCHITECTURE.md),
// under the names the shells and benches use.
pub use pgrec_ann as ann;
pub use pgrec_base::{error, kernels, rng};
pub use pgrec_embed as embed;
pub use pgrec_recsys as recsys;

pub mod types;

mod am;
mod api;
mod catalog;
mod guc;
mod sqlstate;

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;

::pgrx::pg_module_magic!(name, version);

::pgrx::extension_sql_file!("../sql/embedding.sql", name = "embedding", bootstrap);
::pgrx::extension_sql_file!("../sql/recsys.sql", name = "recsys", requires = ["embedding"]);
::pgrx::extension_sql_file!("../sql/encoders.sql", name = "encoders", requires = ["recsys"]);
::pgrx::extension_sql_file!("../sql/hnsw.sql", name = "hnsw", finalize);

/// Runs once per backend when the library loads: registers the `pgrec.*`
/// settings and the index's reloptions.
#[::pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // A panic's report goes to the client: never with a Rust backtrace in it,
    // whatever RUST_BACKTRACE the server was started with. Set before any
    // thread of ours exists, so nothing reads the environment concurrently.
    // The encoders' thread settings are written here once for the same reason
    // (a matrix multiply splits into one part per core; `pgrec.threads` then
    // bounds how many run at once, by the pool the forward pass runs on).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: a backend (or the postmaster, for shared_preload_libraries) is
    // single-threaded until pgrec starts a pool, and none is started yet.
    unsafe {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
        embed::set_candle_environment(cores);
    }
    guc::register();
    am::options::register();
}

/// Required by `cargo pgrx test`: one-off setup and extra postgresql.conf lines.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
