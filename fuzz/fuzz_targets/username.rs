//! The SSH username grammar (`USER`, `USER+TARGET`, `USER+LOGIN+TARGET`) is
//! the first thing parsed from an unauthenticated client. It must never
//! panic, and must refuse anything outside `[A-Za-z0-9._-]` (plus the `+`
//! separators) or over the length cap before any lookup, and what it accepts
//! prints back as the same string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::names::{MAX_TOTAL, parse_login};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(req) = parse_login(s) {
        assert_eq!(req.to_string(), s, "does not round-trip");
        assert!(!s.is_empty() && s.len() <= MAX_TOTAL, "accepted {s:?}");
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+')),
            "accepted a character outside the strict set: {s:?}"
        );
    }
});
