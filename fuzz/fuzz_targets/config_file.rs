//! The config file parser (`config_file::parse`), up to building each route's authorizer.
//!
//! Input: file text (invalid UTF-8 is cut at the first bad byte, as a file read would
//! refuse it). Checks: no panic, and a refusal says something for every error.
#![no_main]

use std::path::Path;

use corelay::config_file::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = match std::str::from_utf8(data) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&data[..e.valid_up_to()]).unwrap(),
    };
    if let Err(errors) = parse(Path::new("fuzz.toml"), text) {
        assert!(!errors.is_empty());
        assert!(errors.iter().all(|e| !e.is_empty()));
    }
});
