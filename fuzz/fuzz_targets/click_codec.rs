//! Stored click bytes (both backends): decoding anything never panics, and a
//! decoded click encodes back to bytes that decode to the same click.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relurl::store::click_codec::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Some(click) = decode(data) {
        assert_eq!(decode(&encode(&click)), Some(click));
    }
});
