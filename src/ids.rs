//! Identifiers for rows, sessions, locks and probes. A leaf: anything may
//! import it, it imports nothing of ours.

/// A random 128-bit identifier in hex, from the operating system's generator.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    hex::encode(b)
}
