//! Small shared helpers, below everything else (they import nothing of berth's): atomic files,
//! locks, ids, Docker's units (durations, byte sizes, command lines), one-line error text, the
//! timing probe, and [`sys`], the one module that makes raw system calls. Everything that writes
//! state goes through [`fs::write_atomic`] and takes a [`lock::FileLock`] where two processes may race.

pub mod error;
pub mod fs;
pub mod id;
pub mod lock;
pub mod sys;
pub mod timing;
pub mod units;
