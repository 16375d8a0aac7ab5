//! What every pure core of pgrec shares, with no dependency at all: the error
//! type the SQL boundary maps to SQLSTATEs, the one seedable random generator,
//! and the distance kernels chosen for this CPU at run time.

pub mod error;
pub mod kernels;
pub mod rng;
