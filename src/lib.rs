//! pgrec: multimodal recommendation inside PostgreSQL.
//!
//! Pure cores (`kernels`, `ann`, `embed`, `recsys`) never touch pgrx; the shells
//! (`types`, `am`, `catalog`, `api`) adapt them to Postgres. `error` is shared by
//! both and `sqlstate` is the single place errors become Postgres ERRORs. All DDL
//! is hand-written in `sql/` and pulled in here.

pub mod ann;
pub mod embed;
pub mod error;
pub mod kernels;
pub mod recsys;
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
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
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
