//! The `embedding` type: its value rules (`vector`, pure Rust), its in-memory
//! form and pgrx glue (`datum`), and its I/O and cast functions (`io`).

pub mod vector;

pub(crate) mod datum;
mod io;
