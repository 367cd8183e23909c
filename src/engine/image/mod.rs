pub mod digest;
pub mod error;
pub mod platform;
pub mod reference;
pub mod unpack;
