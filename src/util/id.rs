//! Identifiers: 64 hex digits, as Docker's container and image ids.

/// A new random 64-hex-digit id.
pub fn new_id() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// The 12-digit short form shown in tables.
pub fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_hex_and_distinct() {
        let a = super::new_id();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, super::new_id());
        assert_eq!(super::short("sha256:0123456789abcdef"), "0123456789ab");
    }
}
