//! `amvalidate`: what the `amvalidate()` SQL function asks of an operator class.
//! The three operator classes come with the extension; a user-made one is
//! checked where it matters, when an index is built: its support function 1
//! must be a distance the index knows (`pages::opclass_metric`).

use pgrx::{pg_guard, pg_sys};

#[pg_guard]
pub unsafe extern "C-unwind" fn amvalidate(_opclass: pg_sys::Oid) -> bool {
    true
}
