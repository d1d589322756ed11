//! PROXY protocol v2 headers from a load balancer (`[ssh]
//! proxy_protocol_from`): any bytes parse to a client address, the
//! balancer itself, or an error — never a panic; nothing longer than
//! `MAX_HEADER` is accepted, and an accepted header's length is the one
//! its fixed part declares.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::gateway::proxy::{MAX_HEADER, Said, header_len, parse};

/// The v2 signature, put in front of half the inputs so the fuzzer starts
/// past it (random bytes almost never match 12 fixed ones).
const SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut signed = SIGNATURE.to_vec();
    signed.extend_from_slice(data);
    check(&signed);
});

fn check(data: &[u8]) {
    if let Ok(said) = parse(data) {
        assert!(data.len() <= MAX_HEADER);
        let fixed: &[u8; 16] = data[..16].try_into().unwrap();
        assert_eq!(header_len(fixed), Ok(data.len()));
        if let Said::Client(a) = said {
            // Canonical, like an accepted address.
            assert_eq!(a.ip(), a.ip().to_canonical());
        }
    }
}
