//! Rules for values taken from users that several routes share: free text
//! (tags, names, descriptions), URL ports, webhook URL size and timestamps.

use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Deserializer};

/// Webhook URLs longer than this are refused (they go in every delivery's log line).
pub const MAX_WEBHOOK_URL_BYTES: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must not contain control characters (such as NUL, tab or newline)")]
    Control,
    #[error("must not contain bidirectional formatting characters")]
    Bidi,
}

/// Text shown to people elsewhere (dashboards, receivers' logs): no control
/// characters, and no bidi controls that could make it read as something else.
pub fn validate_text(text: &str) -> Result<(), TextError> {
    for c in text.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            return Err(TextError::Control);
        }
        if is_bidi_control(c) {
            return Err(TextError::Bidi);
        }
    }
    Ok(())
}

/// Unicode's explicit directional formatting characters (UAX #9, table 4) and marks.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("port must be a number from 1 to 65535")]
pub struct PortError;

/// The port of an absolute URL's authority, if it names one; a port that is not
/// a number from 1 to 65535 is an error (`http::Uri` takes any digits).
pub fn url_port(url: &str) -> Result<Option<u16>, PortError> {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let port = match host_port.strip_prefix('[') {
        // "[v6]" or "[v6]:port"
        Some(v6) => match v6.split_once(']') {
            Some((_, rest)) => rest.strip_prefix(':'),
            None => None,
        },
        None => host_port.split_once(':').map(|(_, port)| port),
    };
    match port {
        None => Ok(None),
        Some(digits) => match digits.parse::<u16>() {
            Ok(port) if port != 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(port)),
            _ => Err(PortError),
        },
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookUrlError {
    #[error("url is too long: at most {MAX_WEBHOOK_URL_BYTES} bytes")]
    TooLong,
    #[error("url {0}")]
    Port(PortError),
    #[error("url must be an absolute http or https URL with a host")]
    NotHttp,
}

/// What can be said about a webhook URL without resolving it: the URI to call.
pub fn validate_webhook_url(url: &str) -> Result<http::Uri, WebhookUrlError> {
    if url.len() > MAX_WEBHOOK_URL_BYTES {
        return Err(WebhookUrlError::TooLong);
    }
    url_port(url).map_err(WebhookUrlError::Port)?;
    let uri: http::Uri = url.parse().map_err(|_| WebhookUrlError::NotHttp)?;
    let has_host = uri.host().is_some_and(|h| !h.is_empty());
    if !matches!(uri.scheme_str(), Some("https" | "http")) || !has_host {
        return Err(WebhookUrlError::NotHttp);
    }
    Ok(uri)
}

/// A timestamp that is strictly RFC 3339: a four-digit year, `T`, seconds
/// 00-59 (no leap second), an offset. Serde's default for `DateTime` also takes
/// `+10000-…` and `-0001-…`, which nothing else reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339(pub DateTime<Utc>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("must be an RFC 3339 timestamp such as 2030-01-31T12:00:00Z (year 0000 to 9999)")]
    Format,
    #[error("must be in the future")]
    Past,
}

impl Rfc3339 {
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        let at = DateTime::parse_from_rfc3339(text).map_err(|_| TimeError::Format)?;
        // chrono keeps a leap second as nanoseconds past 1e9.
        if at.nanosecond() >= 1_000_000_000 {
            return Err(TimeError::Format);
        }
        Ok(Rfc3339(at.with_timezone(&Utc)))
    }

    /// The time, if it is still ahead of `now` (an expiry in the past would
    /// make a link that is dead on arrival).
    pub fn future(self, now: DateTime<Utc>) -> Result<DateTime<Utc>, TimeError> {
        if self.0 > now {
            Ok(self.0)
        } else {
            Err(TimeError::Past)
        }
    }
}

impl<'de> Deserialize<'de> for Rfc3339 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Rfc3339::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Drops repeated entries, keeping the first of each in order.
pub fn dedup_keep_order(items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_refuses_control_and_bidi_characters() {
        assert_eq!(validate_text("plain, ünïcode ✓ 日本"), Ok(()));
        for bad in [
            "a\0b",
            "a\nb",
            "a\rb",
            "a\tb",
            "\u{7f}",
            "\u{85}",
            "a\u{2028}",
        ] {
            assert_eq!(validate_text(bad), Err(TextError::Control), "{bad:?}");
        }
        for bad in ["\u{202E}gnp.exe", "\u{2066}x", "\u{200F}", "\u{061C}"] {
            assert_eq!(validate_text(bad), Err(TextError::Bidi), "{bad:?}");
        }
    }

    #[test]
    fn ports_must_fit_and_not_be_zero() {
        assert_eq!(url_port("https://a.example/"), Ok(None));
        assert_eq!(url_port("https://a.example:8443/x"), Ok(Some(8443)));
        assert_eq!(url_port("https://u:p@a.example:65535"), Ok(Some(65535)));
        assert_eq!(url_port("http://[2001:db8::1]:8080/"), Ok(Some(8080)));
        assert_eq!(url_port("http://[2001:db8::1]/a:b"), Ok(None));
        for bad in [
            "https://a.example:99999999999/",
            "https://a.example:65536/",
            "https://a.example:70000",
            "http://8.8.8.8:0/",
            "http://[2001:db8::1]:65536/",
            "https://a.example:+80/",
        ] {
            assert_eq!(url_port(bad), Err(PortError), "{bad}");
        }
    }

    #[test]
    fn webhook_urls_over_the_limit_say_so() {
        let long = format!("https://a.example/{}", "a".repeat(MAX_WEBHOOK_URL_BYTES));
        let err = validate_webhook_url(&long).unwrap_err();
        assert_eq!(err, WebhookUrlError::TooLong);
        assert!(err.to_string().contains("too long") && err.to_string().contains("2048"));
        assert!(validate_webhook_url("http://8.8.8.8:65536/").is_err());
        assert!(validate_webhook_url("https://a.example:443/hook").is_ok());
        // Found by the webhook_input fuzz target: not a URI at all.
        assert_eq!(
            validate_webhook_url("https://hoo{s.example.com/in"),
            Err(WebhookUrlError::NotHttp)
        );
    }

    #[test]
    fn timestamps_are_strict_rfc3339() {
        let ok = Rfc3339::parse("2030-01-31T12:00:00.5+02:00").unwrap();
        assert_eq!(ok.0.to_rfc3339(), "2030-01-31T10:00:00.500+00:00");
        assert!(Rfc3339::parse("9999-12-31T23:59:59Z").is_ok());
        for bad in [
            "+10000-01-01T00:00:00Z",
            "10000-01-01T00:00:00Z",
            "-0001-01-01T00:00:00Z",
            "2030-06-30T23:59:60Z",
            "2030-01-01",
            "2030-01-01T00:00:00",
            "2030-13-01T00:00:00Z",
        ] {
            assert_eq!(Rfc3339::parse(bad), Err(TimeError::Format), "{bad}");
        }
    }

    #[test]
    fn expiry_must_be_ahead_of_now() {
        let now = Rfc3339::parse("2030-01-01T00:00:00Z").unwrap().0;
        let later = Rfc3339::parse("2030-01-01T00:00:01Z").unwrap();
        assert_eq!(later.future(now), Ok(later.0));
        assert_eq!(Rfc3339(now).future(now), Err(TimeError::Past));
        let earlier = Rfc3339::parse("2029-12-31T23:59:59Z").unwrap();
        assert_eq!(earlier.future(now), Err(TimeError::Past));
    }

    #[test]
    fn dedup_keeps_first_occurrence_order() {
        let items = ["b", "a", "b", "c", "a"].map(String::from).to_vec();
        assert_eq!(dedup_keep_order(items), ["b", "a", "c"]);
    }
}
