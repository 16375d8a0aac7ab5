//! The one mapping from pgrec's [`Error`] to a Postgres `ERROR`: SQLSTATE from the
//! error kind, message and hint as written. Every SQL-callable function returns
//! through [`OrRaise::or_raise`] so no other code decides error codes.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use crate::error::{Error, ErrorKind};

fn code(kind: ErrorKind) -> PgSqlErrorCode {
    use PgSqlErrorCode::*;
    match kind {
        ErrorKind::InvalidTextRepresentation => ERRCODE_INVALID_TEXT_REPRESENTATION,
        ErrorKind::InvalidBinaryRepresentation => ERRCODE_INVALID_BINARY_REPRESENTATION,
        ErrorKind::DataException => ERRCODE_DATA_EXCEPTION,
        ErrorKind::NumericValueOutOfRange => ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
        ErrorKind::NullValueNotAllowed => ERRCODE_NULL_VALUE_NOT_ALLOWED,
        ErrorKind::InvalidParameterValue => ERRCODE_INVALID_PARAMETER_VALUE,
        ErrorKind::ArraySubscriptError => ERRCODE_ARRAY_ELEMENT_ERROR,
        ErrorKind::ProgramLimitExceeded => ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        ErrorKind::DataCorrupted => ERRCODE_DATA_CORRUPTED,
        ErrorKind::UndefinedTable => ERRCODE_UNDEFINED_TABLE,
        ErrorKind::UndefinedColumn => ERRCODE_UNDEFINED_COLUMN,
        ErrorKind::DatatypeMismatch => ERRCODE_DATATYPE_MISMATCH,
        ErrorKind::UndefinedObject => ERRCODE_UNDEFINED_OBJECT,
        ErrorKind::UndefinedFile => ERRCODE_UNDEFINED_FILE,
        ErrorKind::IoError => ERRCODE_IO_ERROR,
        ErrorKind::InsufficientPrivilege => ERRCODE_INSUFFICIENT_PRIVILEGE,
        ErrorKind::FeatureNotSupported => ERRCODE_FEATURE_NOT_SUPPORTED,
        ErrorKind::ObjectNotInPrerequisiteState => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        ErrorKind::Internal => ERRCODE_INTERNAL_ERROR,
    }
}

/// Raises `e` as a Postgres ERROR; control does not come back.
#[track_caller]
pub fn raise(e: Error) -> ! {
    let mut report = ErrorReport::new(code(e.kind), e.message, "pgrec");
    if let Some(h) = e.hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    // `report` at ERROR level unwinds to Postgres' error handler and never returns.
    unreachable!("ERROR-level report returned")
}

/// `result.or_raise()` turns an `Err` into a Postgres ERROR at the SQL boundary.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for crate::error::Result<T> {
    #[track_caller]
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => raise(e),
        }
    }
}
