//! The TOML config parser and validator: any document, however malformed,
//! yields a `Config` or a list of problems, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Config::parse(s, None);
});
