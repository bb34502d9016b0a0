//! An endpoint as customers' code sends it: the JSON body of `POST /v1/webhooks`
//! and the event filter it sets up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relurl::{
    domain::{filter_takes, validate_webhook_url},
    http::{parse_json, webhooks::NewEndpoint},
};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let _ = parse_json::<NewEndpoint>(data);
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Some(Value::String(url)) = body.get("url")
        && validate_webhook_url(url).is_ok()
    {
        // What is accepted must be a URI the client can connect to.
        let uri: http::Uri = url.parse().expect("accepted url parses");
        assert!(
            uri.host().is_some_and(|h| !h.is_empty()),
            "no host in {url:?}"
        );
        assert_ne!(uri.port_u16(), Some(0), "port 0 in {url:?}");
    }
    if let Some(Value::Array(events)) = body.get("events") {
        let events: Vec<String> = events
            .iter()
            .filter_map(|e| e.as_str().map(str::to_owned))
            .collect();
        for event_type in ["link.clicked", "link.created", "webhook.test"] {
            let taken = filter_takes(&events, event_type);
            // A filter naming the type or "*" must take it.
            if events.iter().any(|e| e == event_type || e == "*") {
                assert!(taken, "{events:?} refused {event_type}");
            }
        }
    }
});
