//! The little-endian byte form of stored models: length-prefixed arrays of
//! integers and floats, read back with bounds checks so that a damaged value
//! is an error, never a panic.

use pgrec_base::error::{Error, ErrorKind, Result};

/// A stored model or graph in a format this build does not read: written by
/// a newer pgrec (older formats are all read).
pub(crate) fn unknown_format(what: &str, format: u32, newest: u32) -> Error {
    Error::new(
        ErrorKind::FeatureNotSupported,
        format!("the stored {what} is in format {format}, written by a newer pgrec; this library reads formats 1 to {newest}"),
    )
    .with_hint("install the pgrec library that trained it, or train the model again with this one")
}

pub(crate) fn corrupt(what: &str) -> Error {
    Error::new(ErrorKind::DataCorrupted, format!("stored model is not valid: {what}"))
        .with_hint("train the model again")
}

pub(crate) struct Writer(pub Vec<u8>);

impl Writer {
    pub fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.bytes(s.as_bytes());
    }
    pub fn i64s(&mut self, v: &[i64]) {
        self.u32(v.len() as u32);
        v.iter().for_each(|x| self.0.extend_from_slice(&x.to_le_bytes()));
    }
    pub fn u32s(&mut self, v: &[u32]) {
        self.u32(v.len() as u32);
        v.iter().for_each(|x| self.0.extend_from_slice(&x.to_le_bytes()));
    }
    pub fn f32s(&mut self, v: &[f32]) {
        self.u32(v.len() as u32);
        v.iter().for_each(|x| self.0.extend_from_slice(&x.to_le_bytes()));
    }
}

pub(crate) struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Reader<'a> {
        Reader { b, at: 0 }
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| corrupt("truncated"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    pub fn u32(&mut self) -> Result<u32> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    pub fn str(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    pub fn vec<T>(&mut self, size: usize, f: impl Fn(&[u8]) -> T) -> Result<Vec<T>> {
        let n = self.u32()? as usize;
        Ok(self.take(n.checked_mul(size).ok_or_else(|| corrupt("size overflow"))?)?.chunks_exact(size).map(f).collect())
    }
    pub fn i64s(&mut self) -> Result<Vec<i64>> {
        self.vec(8, |c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
    }
    pub fn u32s(&mut self) -> Result<Vec<u32>> {
        self.vec(4, |c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }
    pub fn f32s(&mut self) -> Result<Vec<f32>> {
        self.vec(4, |c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }
}
