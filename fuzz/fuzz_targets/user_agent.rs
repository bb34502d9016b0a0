//! Enrichment of the headers any visitor sends: user agent and referrer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relurl::clicks::enrich::{classify_agent, referrer_host};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let agent = classify_agent(&text);
    assert!(!agent.device.is_empty());
    if let Some(host) = referrer_host(&text) {
        assert!(!host.is_empty());
        assert_eq!(host, host.to_ascii_lowercase());
    }
});
