//! Small shared helpers: atomic files, locks, ids, and Docker's units (durations, byte sizes,
//! command lines). Everything that writes state goes through [`fs::write_atomic`] and takes a
//! [`lock::FileLock`] where two processes may race. `util` is the bottom layer: it imports
//! nothing else of berth.

pub mod fs;
pub mod id;
pub mod lock;
pub mod units;
