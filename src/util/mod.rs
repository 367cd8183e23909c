//! Small shared helpers: atomic files, locks, ids. Everything that writes state goes through
//! [`fs::write_atomic`] and takes a [`lock::FileLock`] where two processes may race.

pub mod fs;
pub mod id;
pub mod lock;
