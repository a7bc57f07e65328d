//! Secure random bytes from the proxy's operating system. (Clocks need no helper:
//! `std::time::SystemTime` and `Instant` work in filters.) In native tests the bytes come
//! from the standard library's randomly keyed hasher.

/// `len` random bytes (at most 65536).
///
/// ```
/// let nonce = weir_sdk::random::bytes(16);
/// assert_eq!(nonce.len(), 16);
/// ```
pub fn bytes(len: usize) -> Vec<u8> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::weir::filter::host::random_bytes(len.min(65536) as u32);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::random_bytes(len.min(65536))
}

/// A random `u64`.
///
/// ```
/// let jitter_ms = weir_sdk::random::u64() % 100;
/// assert!(jitter_ms < 100);
/// ```
pub fn u64() -> u64 {
    let b = bytes(8);
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// A random token of `len` bytes as lower-case hex (e.g. for request ids).
///
/// ```
/// let id = weir_sdk::random::hex_token(8);
/// assert_eq!(id.len(), 16);
/// assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
/// ```
pub fn hex_token(len: usize) -> String {
    bytes(len).iter().map(|b| format!("{b:02x}")).collect()
}
