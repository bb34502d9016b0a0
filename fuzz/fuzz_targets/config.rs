//! The configuration file: any text is either a config or a list of errors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relurl::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::from_toml(text) {
        assert!(!e.0.is_empty(), "a refused config must say why");
    }
});
