//! Every user-callable SQL function, grouped by what it works on. Functions are
//! declared with `sql = false`: their DDL (volatility, strictness, parallel
//! safety, operators, aggregates) is hand-written in `sql/`.

mod embedding;
mod encoders;
mod recsys;
