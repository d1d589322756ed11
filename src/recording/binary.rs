//! Binary output of non-interactive exec channels (`ssh host 'tar c /etc' >
//! etc.tar`, `pg_dump -Fc`, `cat disk.img`): a file transfer in all but name.
//! Its bytes are not terminal text (asciicast would store a NUL as six bytes
//! and no player can show it), so like an SFTP transfer it is logged as an
//! operation: a marker where the stream turns binary, and at the end its
//! size and checksum (BLAKE3, see `checksum`), which the signed trailer then
//! covers.

use super::checksum::Checksum;

/// Whether a chunk of output is not text: a NUL byte, or bytes that are not
/// UTF-8 (an incomplete character at the very end is still text).
pub fn looks_binary(chunk: &[u8]) -> bool {
    // The memchr crate's SIMD search: `<[u8]>::contains` is word-at-a-time,
    // and this runs on every chunk of exec output.
    if memchr::memchr(0, chunk).is_some() {
        return true;
    }
    match std::str::from_utf8(chunk) {
        Ok(_) => false,
        Err(e) => e.error_len().is_some(),
    }
}

/// Counts and hashes a binary stream.
#[derive(Default)]
pub struct BinaryStream {
    bytes: u64,
    sum: Checksum,
}

impl BinaryStream {
    pub const STARTED: &'static str =
        "binary output from here on: counted and hashed, not shown (like a file transfer)";

    pub fn push(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        self.sum.update(chunk);
    }

    /// The closing marker's text.
    pub fn summary(self) -> String {
        format!("binary output: {} bytes {}", self.bytes, self.sum.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_with_a_split_character_is_not_binary() {
        assert!(!looks_binary(b"plain \x1b[1mtext\x1b[0m\r\n"));
        assert!(!looks_binary("caf\u{e9}".as_bytes()));
        assert!(!looks_binary(&"✓".as_bytes()[..2]));
        assert!(looks_binary(b"a\0b"));
        assert!(looks_binary(b"\xff\xfe tar header"));
    }

    #[test]
    fn summary_counts_and_hashes_every_chunk() {
        let mut s = BinaryStream::default();
        s.push(b"ab");
        s.push(b"c");
        assert_eq!(
            s.summary(),
            "binary output: 3 bytes blake3 \
             6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
    }
}
