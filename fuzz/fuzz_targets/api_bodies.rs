//! Admin API request bodies: any bytes, as any body type (the first byte
//! picks which), parse to a typed body or a 400 message, never a panic; a
//! grant body that parses is also run through the grant validator. An error
//! message never carries more than 300 characters of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::admin::bodies::parse_any;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    if let Err(msg) = parse_any(kind, body) {
        assert!(msg.chars().count() <= 300);
    }
});
