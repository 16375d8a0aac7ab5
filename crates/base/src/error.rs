//! pgrec's error type, shared by the pure cores and the Postgres shells.
//!
//! Errors carry a kind that says which SQLSTATE class they belong to, a lower-case
//! message naming the offending value, and an optional hint saying how to fix it.
//! Nothing here knows about Postgres: the extension's `sqlstate` module is the one place that turns
//! an [`Error`] into an `ERROR` report.

use std::fmt;

/// What went wrong, in SQLSTATE terms; each variant maps to exactly one code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// 22P02: text that does not parse.
    InvalidTextRepresentation,
    /// 22P03: binary input that does not decode.
    InvalidBinaryRepresentation,
    /// 22000: a value that is well-formed but not acceptable (NaN, wrong dimensions).
    DataException,
    /// 22003: a number that does not fit, or arithmetic that overflowed.
    NumericValueOutOfRange,
    /// 22004: a NULL where none is allowed.
    NullValueNotAllowed,
    /// 22023: a bad argument or type modifier.
    InvalidParameterValue,
    /// 2202E: an index or range outside the value.
    ArraySubscriptError,
    /// 54000: beyond a hard limit of pgrec.
    ProgramLimitExceeded,
    /// XX001: a stored value that cannot be what was written.
    DataCorrupted,
    /// 42P01: a relation that does not exist.
    UndefinedTable,
    /// 42703: a column that does not exist.
    UndefinedColumn,
    /// 42804: a column of the wrong type.
    DatatypeMismatch,
    /// 42704: a named pgrec object (model, encoder) that does not exist.
    UndefinedObject,
    /// 58P01: a file or folder that does not exist.
    UndefinedFile,
    /// 58030: a file that exists but cannot be read.
    IoError,
    /// 42501: the role lacks a privilege the call needs.
    InsufficientPrivilege,
    /// 0A000: a model architecture or format pgrec does not support.
    FeatureNotSupported,
    /// 55000: the database is not ready for the call (the extension's SQL is
    /// another version than the library's).
    ObjectNotInPrerequisiteState,
    /// XX000: a state pgrec's own code should never reach (a bug to report).
    Internal,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), hint: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
