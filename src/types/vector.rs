//! The `embedding` value as plain Rust: validation, the text and binary wire
//! formats, type-modifier rules, element-wise arithmetic, ordering and the
//! running state of `avg(embedding)`. No Postgres here, so all of it is unit-tested
//! with `cargo test`; `datum.rs` and `io.rs` wrap it for the server.

use std::cmp::Ordering;

use crate::error::{Error, ErrorKind, Result};

/// Hard cap on dimensions, as in pgvector; keeps one value under 64 KB.
pub const MAX_DIM: usize = 16_000;

const SYNTAX_HINT: &str = "write an embedding as '[1,2.5,-3]': square brackets, comma-separated finite numbers";

fn no_dimensions() -> Error {
    Error::new(ErrorKind::DataException, "embedding must have at least 1 dimension")
}

fn out_of_range(pos: usize, shown: &dyn std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::NumericValueOutOfRange,
        format!("{shown} is out of range for an embedding element (element {pos})"),
    )
    .with_hint("embedding elements are real (float4): about ±3.4e38, nonzero magnitudes above 1.2e-38")
}

pub fn check_dims(n: usize) -> Result<()> {
    if n == 0 {
        return Err(no_dimensions());
    }
    if n > MAX_DIM {
        return Err(Error::new(
            ErrorKind::ProgramLimitExceeded,
            format!("embedding cannot have more than {MAX_DIM} dimensions, got {n}"),
        ));
    }
    Ok(())
}

/// Rejects NaN and ±Infinity; `pos` is 1-based as users count elements.
pub fn check_finite(pos: usize, v: f32) -> Result<()> {
    if v.is_nan() {
        return Err(Error::new(
            ErrorKind::DataException,
            format!("nan is not allowed in an embedding (element {pos})"),
        ));
    }
    if v.is_infinite() {
        return Err(Error::new(
            ErrorKind::DataException,
            format!("infinite value is not allowed in an embedding (element {pos} is {v})"),
        )
        .with_hint("replace infinities before casting, e.g. with least(greatest(x, -1e38), 1e38)"));
    }
    Ok(())
}

/// Validates a whole vector: dimension count and every element.
pub fn validate(values: &[f32]) -> Result<()> {
    check_dims(values.len())?;
    values.iter().enumerate().try_for_each(|(i, &v)| check_finite(i + 1, v))
}

/// Narrows a double to an element, refusing values `real` cannot hold (Postgres'
/// own `float4in` rule: overflow to infinity and underflow to zero are errors).
pub fn narrow(pos: usize, v: f64, shown: &dyn std::fmt::Display) -> Result<f32> {
    if v.is_nan() || v.is_infinite() {
        check_finite(pos, v as f32)?;
    }
    let f = v as f32;
    if f.is_infinite() || (f == 0.0 && v != 0.0) {
        return Err(out_of_range(pos, shown));
    }
    Ok(f)
}

fn syntax_error(input: &str, what: String) -> Error {
    Error::new(
        ErrorKind::InvalidTextRepresentation,
        format!("invalid input syntax for type embedding: \"{input}\": {what}"),
    )
    .with_hint(SYNTAX_HINT)
}

/// Parses pgvector's text form `[1,2.5,-3]` (whitespace allowed around tokens).
pub fn parse(input: &str) -> Result<Vec<f32>> {
    let body = input.trim();
    let Some(inner) = body.strip_prefix('[') else {
        return Err(syntax_error(input, "must start with \"[\"".into()));
    };
    let Some(inner) = inner.strip_suffix(']') else {
        return Err(syntax_error(input, "must end with \"]\"".into()));
    };
    if inner.trim().is_empty() {
        return Err(no_dimensions());
    }
    let mut out = Vec::with_capacity(inner.len() / 2 + 1);
    for (i, tok) in inner.split(',').enumerate() {
        let pos = i + 1;
        if pos > MAX_DIM {
            check_dims(inner.split(',').count())?;
        }
        let tok = tok.trim();
        if tok.is_empty() {
            return Err(syntax_error(input, format!("element {pos} is empty")));
        }
        let v: f64 =
            tok.parse().map_err(|_| syntax_error(input, format!("element {pos} (\"{tok}\") is not a number")))?;
        let lower = tok.trim_start_matches(['+', '-']).to_ascii_lowercase();
        if v.is_infinite() && lower != "inf" && lower != "infinity" {
            // A finite literal too large even for f64, e.g. 1e400.
            return Err(out_of_range(pos, &format_args!("\"{tok}\"")));
        }
        out.push(narrow(pos, v, &format_args!("\"{tok}\""))?);
    }
    check_dims(out.len())?;
    Ok(out)
}

/// Shortest text that parses back to the same f32s; exponent form from 1e7 up and
/// below 1e-5 (where plain digits would suggest precision a float4 lacks).
pub fn format(values: &[f32]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(values.len() * 10 + 2);
    s.push('[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        // Writing to a String cannot fail.
        let _ = write!(s, "{}", Elem(*v));
    }
    s.push(']');
    s
}

/// One element as [`format`] writes it; also used to show values in messages.
pub struct Elem(pub f32);

impl std::fmt::Display for Elem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (v, a) = (self.0, self.0.abs());
        if a != 0.0 && !(1e-5..1e7).contains(&a) { write!(f, "{v:e}") } else { write!(f, "{v}") }
    }
}

/// Checks the numbers inside `embedding(n)` and returns the stored typmod.
pub fn typmod_from(mods: &[i32]) -> Result<i32> {
    let [n] = mods else {
        return Err(Error::new(
            ErrorKind::InvalidParameterValue,
            format!("embedding takes one type modifier (its dimensions), got {}", mods.len()),
        )
        .with_hint("declare the column as embedding(384)"));
    };
    let n = *n;
    if n < 1 {
        return Err(Error::new(
            ErrorKind::InvalidParameterValue,
            format!("dimensions for type embedding must be at least 1, got {n}"),
        ));
    }
    if n as usize > MAX_DIM {
        return Err(Error::new(
            ErrorKind::InvalidParameterValue,
            format!("dimensions for type embedding cannot exceed {MAX_DIM}, got {n}"),
        ));
    }
    Ok(n)
}

/// A value stored in an `embedding(n)` column must have exactly n dimensions.
pub fn check_typmod(dims: usize, typmod: i32) -> Result<()> {
    if typmod > 0 && dims != typmod as usize {
        return Err(Error::new(ErrorKind::DataException, format!("expected {typmod} dimensions, not {dims}"))
            .with_hint(format!("the target is embedding({typmod}); pass a vector of that length or use subvector()")));
    }
    Ok(())
}

pub fn check_same_dims(a: &[f32], b: &[f32]) -> Result<()> {
    if a.len() != b.len() {
        return Err(Error::new(
            ErrorKind::DataException,
            format!("different embedding dimensions {} and {}", a.len(), b.len()),
        ));
    }
    Ok(())
}

fn elementwise(a: &[f32], b: &[f32], op: &str, f: impl Fn(f32, f32) -> f32) -> Result<Vec<f32>> {
    check_same_dims(a, b)?;
    let out: Vec<f32> = a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
    if let Some(i) = out.iter().position(|v| v.is_infinite()) {
        return Err(Error::new(
            ErrorKind::NumericValueOutOfRange,
            format!("embedding {op} overflows at element {}: {} {op} {}", i + 1, Elem(a[i]), Elem(b[i])),
        ));
    }
    Ok(out)
}

pub fn add(a: &[f32], b: &[f32]) -> Result<Vec<f32>> {
    elementwise(a, b, "+", |x, y| x + y)
}

pub fn sub(a: &[f32], b: &[f32]) -> Result<Vec<f32>> {
    elementwise(a, b, "-", |x, y| x - y)
}

pub fn mul(a: &[f32], b: &[f32]) -> Result<Vec<f32>> {
    elementwise(a, b, "*", |x, y| x * y)
}

/// Unit-length copy; a zero vector stays zero (it has no direction to keep).
pub fn l2_normalize(values: &[f32]) -> Vec<f32> {
    let norm = f64::from(crate::kernels::norm_squared(values)).sqrt();
    if norm == 0.0 {
        return values.to_vec();
    }
    values.iter().map(|&v| (f64::from(v) / norm) as f32).collect()
}

/// `count` elements starting at 1-based `start`, like SQL's `substring`; the part
/// that overlaps the vector is returned.
pub fn subvector(values: &[f32], start: i32, count: i32) -> Result<Vec<f32>> {
    if count < 1 {
        return Err(Error::new(
            ErrorKind::ArraySubscriptError,
            format!("subvector count must be at least 1, got {count}"),
        ));
    }
    let first = i64::from(start).max(1);
    let end = (i64::from(start) + i64::from(count)).min(values.len() as i64 + 1);
    if first >= end {
        return Err(Error::new(
            ErrorKind::ArraySubscriptError,
            format!("subvector({start}, {count}) is outside an embedding of {} dimensions", values.len()),
        )
        .with_hint(format!("start must be between 1 and {}", values.len())));
    }
    Ok(values[(first - 1) as usize..(end - 1) as usize].to_vec())
}

/// Total order for btree: element by element, then the shorter vector first.
/// Elements are never NaN (input rejects it), so `partial_cmp` always answers.
pub fn compare(a: &[f32], b: &[f32]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match x.partial_cmp(y) {
            Some(Ordering::Equal) | None => {}
            Some(o) => return o,
        }
    }
    a.len().cmp(&b.len())
}

/// Binary wire format, byte-compatible with pgvector's `vector_send`: int16 dims,
/// int16 reserved (0), then dims big-endian float4s.
pub fn encode_binary(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * values.len());
    out.extend_from_slice(&(values.len() as u16).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    for v in values {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

/// Decodes [`encode_binary`]'s format; returns the values and the bytes consumed.
pub fn decode_binary(bytes: &[u8]) -> Result<(Vec<f32>, usize)> {
    let bad =
        |what: String| Error::new(ErrorKind::InvalidBinaryRepresentation, format!("invalid binary embedding: {what}"));
    if bytes.len() < 4 {
        return Err(bad(format!("{} bytes is shorter than the 4-byte header", bytes.len())));
    }
    let dims = i16::from_be_bytes([bytes[0], bytes[1]]);
    let reserved = i16::from_be_bytes([bytes[2], bytes[3]]);
    if dims < 0 {
        return Err(bad(format!("negative dimension count {dims}")));
    }
    let dims = dims as usize;
    check_dims(dims)?;
    if reserved != 0 {
        return Err(bad(format!("reserved header field is {reserved}, expected 0")));
    }
    let need = 4 + 4 * dims;
    if bytes.len() < need {
        return Err(bad(format!("{dims} dimensions need {need} bytes, got {}", bytes.len())));
    }
    let values: Vec<f32> =
        bytes[4..need].chunks_exact(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
    validate(&values)?;
    Ok((values, need))
}

/// `avg(embedding)` keeps `[count, Σx₁, …, Σx_d]` as doubles: a plain `float8[]`
/// state needs no serialisation for parallel aggregation, and doubles keep the
/// sum exact enough over millions of rows. The initial state is `[0]`.
pub fn avg_accum(state: &mut Vec<f64>, v: &[f32]) -> Result<()> {
    if state.len() <= 1 {
        state.resize(1 + v.len(), 0.0);
    } else if state.len() - 1 != v.len() {
        return Err(Error::new(
            ErrorKind::DataException,
            format!("different embedding dimensions {} and {}", state.len() - 1, v.len()),
        ));
    }
    state[0] += 1.0;
    for (s, &x) in state[1..].iter_mut().zip(v) {
        *s += f64::from(x);
    }
    Ok(())
}

/// Merges two partial `avg` states (parallel workers).
pub fn avg_combine(a: &mut Vec<f64>, b: &[f64]) -> Result<()> {
    if b.len() <= 1 {
        return Ok(());
    }
    if a.len() <= 1 {
        a.clear();
        a.extend_from_slice(b);
        return Ok(());
    }
    if a.len() != b.len() {
        return Err(Error::new(
            ErrorKind::DataException,
            format!("different embedding dimensions {} and {}", a.len() - 1, b.len() - 1),
        ));
    }
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
    Ok(())
}

/// The mean, or `None` when no rows were aggregated (SQL `avg` of nothing is NULL).
pub fn avg_final(state: &[f64]) -> Option<Vec<f32>> {
    let (&n, sums) = state.split_first()?;
    if n == 0.0 || sums.is_empty() {
        return None;
    }
    Some(sums.iter().map(|s| (s / n) as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind<T: std::fmt::Debug>(r: Result<T>) -> ErrorKind {
        r.expect_err("expected an error").kind
    }

    #[test]
    fn parses_and_formats_round_trip() {
        assert_eq!(parse("[1,2.5,-3]").unwrap(), vec![1.0, 2.5, -3.0]);
        assert_eq!(parse("  [ 1 , 2.5 ,-3 ]  ").unwrap(), vec![1.0, 2.5, -3.0]);
        assert_eq!(parse("[1e3,+4,.5,-0]").unwrap(), vec![1000.0, 4.0, 0.5, -0.0]);
        assert_eq!(format(&[1.0, 2.5, -3.0]), "[1,2.5,-3]");
        for v in [0.1f32, 1e-7, 3.4028235e38, -1.1754944e-38, 123456.79, 1e15, 1e16, f32::MIN_POSITIVE] {
            let s = format(&[v]);
            assert_eq!(parse(&s).unwrap(), vec![v], "{s}");
        }
        assert_eq!(format(&[1e20]), "[1e20]");
        assert_eq!(format(&[1e-7]), "[1e-7]");
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in ["", "1,2", "[1,2", "1,2]", "[1,,2]", "[1,2,]", "[a]", "[1 2]", "[[1]]", "[0x10]"] {
            assert_eq!(kind(parse(bad)), ErrorKind::InvalidTextRepresentation, "{bad}");
        }
        let e = parse("[1,x]").unwrap_err();
        assert_eq!(e.message, "invalid input syntax for type embedding: \"[1,x]\": element 2 (\"x\") is not a number");
        assert!(e.hint.is_some());
    }

    #[test]
    fn rejects_empty_nan_infinite_and_out_of_range() {
        assert_eq!(parse("[]").unwrap_err().message, "embedding must have at least 1 dimension");
        assert_eq!(kind(parse("[ ]")), ErrorKind::DataException);
        assert_eq!(parse("[1,NaN]").unwrap_err().message, "nan is not allowed in an embedding (element 2)");
        assert_eq!(kind(parse("[inf]")), ErrorKind::DataException);
        assert_eq!(kind(parse("[-Infinity]")), ErrorKind::DataException);
        let e = parse("[1e39]").unwrap_err();
        assert_eq!(e.kind, ErrorKind::NumericValueOutOfRange);
        assert_eq!(e.message, "\"1e39\" is out of range for an embedding element (element 1)");
        assert_eq!(kind(parse("[1e400]")), ErrorKind::NumericValueOutOfRange);
        assert_eq!(kind(parse("[1e-50]")), ErrorKind::NumericValueOutOfRange);
    }

    #[test]
    fn dimension_limits() {
        let ok = format!("[{}]", vec!["1"; MAX_DIM].join(","));
        assert_eq!(parse(&ok).unwrap().len(), MAX_DIM);
        let e = parse(&format!("[{}]", vec!["1"; MAX_DIM + 1].join(","))).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ProgramLimitExceeded);
        assert_eq!(e.message, "embedding cannot have more than 16000 dimensions, got 16001");
    }

    #[test]
    fn typmods() {
        assert_eq!(typmod_from(&[3]).unwrap(), 3);
        assert_eq!(kind(typmod_from(&[0])), ErrorKind::InvalidParameterValue);
        assert_eq!(kind(typmod_from(&[16001])), ErrorKind::InvalidParameterValue);
        assert_eq!(kind(typmod_from(&[1, 2])), ErrorKind::InvalidParameterValue);
        assert!(check_typmod(3, 3).is_ok());
        assert!(check_typmod(4, -1).is_ok());
        assert_eq!(check_typmod(4, 3).unwrap_err().message, "expected 3 dimensions, not 4");
    }

    #[test]
    fn arithmetic() {
        assert_eq!(add(&[1.0, 2.0], &[3.0, 4.0]).unwrap(), vec![4.0, 6.0]);
        assert_eq!(sub(&[1.0, 2.0], &[3.0, 4.0]).unwrap(), vec![-2.0, -2.0]);
        assert_eq!(mul(&[1.0, 2.0], &[3.0, 4.0]).unwrap(), vec![3.0, 8.0]);
        assert_eq!(add(&[1.0], &[1.0, 2.0]).unwrap_err().message, "different embedding dimensions 1 and 2");
        assert_eq!(kind(add(&[3e38], &[3e38])), ErrorKind::NumericValueOutOfRange);
        assert_eq!(l2_normalize(&[3.0, 4.0]), vec![0.6, 0.8]);
        assert_eq!(l2_normalize(&[0.0, 0.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn subvectors() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(subvector(&v, 2, 2).unwrap(), vec![2.0, 3.0]);
        assert_eq!(subvector(&v, 3, 10).unwrap(), vec![3.0, 4.0]);
        assert_eq!(subvector(&v, 0, 2).unwrap(), vec![1.0]);
        assert_eq!(kind(subvector(&v, 5, 1)), ErrorKind::ArraySubscriptError);
        assert_eq!(kind(subvector(&v, 1, 0)), ErrorKind::ArraySubscriptError);
        assert_eq!(kind(subvector(&v, i32::MAX, i32::MAX)), ErrorKind::ArraySubscriptError);
    }

    #[test]
    fn ordering() {
        assert_eq!(compare(&[1.0, 2.0], &[1.0, 3.0]), Ordering::Less);
        assert_eq!(compare(&[1.0, 2.0], &[1.0, 2.0]), Ordering::Equal);
        assert_eq!(compare(&[1.0, 2.0], &[1.0]), Ordering::Greater);
        assert_eq!(compare(&[2.0], &[1.0, 5.0]), Ordering::Greater);
    }

    #[test]
    fn binary_round_trip_and_errors() {
        let v = vec![1.0, -2.5, 3e10];
        let bytes = encode_binary(&v);
        assert_eq!(&bytes[..4], &[0, 3, 0, 0]);
        assert_eq!(decode_binary(&bytes).unwrap(), (v, 16));
        assert_eq!(kind(decode_binary(&bytes[..10])), ErrorKind::InvalidBinaryRepresentation);
        assert_eq!(kind(decode_binary(&[0, 0, 0, 0])), ErrorKind::DataException);
        assert_eq!(kind(decode_binary(&[0, 1, 0, 1, 0, 0, 0, 0])), ErrorKind::InvalidBinaryRepresentation);
        assert_eq!(kind(decode_binary(&encode_binary(&[f32::NAN]))), ErrorKind::DataException);
    }

    #[test]
    fn average_state() {
        let mut s = vec![0.0];
        avg_accum(&mut s, &[1.0, 2.0]).unwrap();
        avg_accum(&mut s, &[3.0, 6.0]).unwrap();
        assert_eq!(avg_final(&s).unwrap(), vec![2.0, 4.0]);
        assert_eq!(kind(avg_accum(&mut s, &[1.0])), ErrorKind::DataException);
        let mut t = vec![0.0];
        avg_combine(&mut t, &s).unwrap();
        avg_combine(&mut t, &[0.0]).unwrap();
        avg_combine(&mut t, &s).unwrap();
        assert_eq!(avg_final(&t).unwrap(), vec![2.0, 4.0]);
        assert_eq!(avg_final(&[0.0]), None);
    }
}
