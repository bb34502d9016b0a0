//! A link as customers' code sends it: the JSON body of `POST /v1/links`, then
//! every check its strings go through, then the query appended at redirect.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relurl::{
    domain::{
        Rfc3339, destination_with_query, normalize_tags, validate_code, validate_destination,
        validate_text,
    },
    http::{links::NewLink, parse_json},
};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // The typed parse must answer an error, never panic.
    let _ = parse_json::<NewLink>(data);
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Some(Value::String(code)) = body.get("code") {
        let _ = validate_code(code);
    }
    if let Some(Value::Array(tags)) = body.get("tags") {
        let tags: Vec<String> = tags
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
        if let Ok(tags) = normalize_tags(tags) {
            for (i, tag) in tags.iter().enumerate() {
                assert!(validate_text(tag).is_ok(), "kept tag {tag:?}");
                assert!(!tags[..i].contains(tag), "duplicate tag kept: {tag:?}");
            }
        }
    }
    if let Some(Value::String(at)) = body.get("expires_at")
        && let Ok(Rfc3339(at)) = Rfc3339::parse(at)
    {
        use chrono::Datelike;
        // Only what every reader can read back: four-digit years.
        assert!((0..=9999).contains(&at.year()), "accepted {at:?}");
    }
    if let Some(Value::String(destination)) = body.get("destination")
        && validate_destination(destination).is_ok()
    {
        let query = body.get("query").and_then(Value::as_str).unwrap_or("a=1");
        let location = destination_with_query(destination, query);
        // What reaches the Location header must be a URI: ASCII, encoded where needed.
        assert!(
            location.parse::<http::Uri>().is_ok(),
            "Location is not a URI: {location:?}"
        );
    }
});
