//! Signing, per the wire contract: `X-RELURL-Signature: sha256=<hex>` keyed by
//! the secret string itself, and Standard Webhooks `webhook-signature:
//! v1,<base64>` over `{id}.{timestamp}.{body}` keyed by the base64 part of the
//! secret. One value per secret that still signs (rotation overlap). Also the
//! other headers every attempt carries, and the crate's one hex codec.

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use rand::RngCore;
use sha2::Sha256;

use crate::domain::Delivery;

type HmacSha256 = Hmac<Sha256>;

pub const SECRET_PREFIX: &str = "whsec_";

/// `whsec_` + base64 of 24 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Lowercase hex, the one encoder the crate uses (signatures, token digests).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// The inverse of [`hex`] for exactly `N` bytes; `None` for any other text.
pub fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    if text.len() != 2 * N {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Every header attempt number `attempt` of `delivery` carries, signed with
/// each of `secrets` as of `now`.
pub fn headers(
    delivery: &Delivery,
    attempt: u32,
    secrets: &[impl AsRef<str>],
    now: DateTime<Utc>,
) -> HeaderMap {
    let id = delivery.event_id.to_string();
    let timestamp = now.timestamp();
    let body = delivery.body.as_bytes();
    let mut headers = HeaderMap::with_capacity(10);
    let mut put = |name: &'static str, value: String| {
        // Our values are ASCII (hex, base64, digits, event type names).
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    put("content-type", "application/json".into());
    put(
        "user-agent",
        concat!("relurl-webhooks/", env!("CARGO_PKG_VERSION")).into(),
    );
    put("x-relurl-signature", relurl_signature(secrets, body));
    put("x-relurl-event", delivery.event_type.clone());
    put("x-relurl-event-id", id.clone());
    put("x-relurl-delivery-attempt", attempt.to_string());
    put("webhook-id", id.clone());
    put("webhook-timestamp", timestamp.to_string());
    put(
        "webhook-signature",
        standard_signature(secrets, &id, timestamp, body),
    );
    headers
}

/// The `X-RELURL-Signature` value: `sha256=<hex>` per secret, comma-separated.
pub fn relurl_signature(secrets: &[impl AsRef<str>], body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| {
            let mac = hmac(secret.as_ref().as_bytes(), &[body]);
            format!("sha256={}", hex(&mac))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The Standard Webhooks `webhook-signature` value: `v1,<base64>` per secret,
/// space-separated.
pub fn standard_signature(
    secrets: &[impl AsRef<str>],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let timestamp = timestamp.to_string();
    secrets
        .iter()
        .map(|secret| {
            let secret = secret.as_ref();
            let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
            // Our secrets always decode; a foreign one signs with its raw bytes.
            let key = STANDARD
                .decode(encoded)
                .unwrap_or_else(|_| encoded.as_bytes().to_vec());
            let mac = hmac(
                &key,
                &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
            );
            format!("v1,{}", STANDARD.encode(mac))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_contract_shape() {
        let secret = new_secret();
        let encoded = secret.strip_prefix("whsec_").expect("prefix");
        assert_eq!(STANDARD.decode(encoded).expect("base64").len(), 24);
        assert_ne!(new_secret(), secret);
    }

    #[test]
    fn relurl_signature_matches_a_known_vector() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        assert_eq!(
            relurl_signature(&["key"], b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        let two = relurl_signature(&["a", "b"], b"x");
        assert_eq!(two.split(',').count(), 2);
    }

    #[test]
    fn hex_round_trips_and_refuses_other_lengths() {
        let bytes = [0x00, 0x7f, 0xab, 0xff];
        assert_eq!(hex(&bytes), "007fabff");
        assert_eq!(unhex::<4>("007fabff"), Some(bytes));
        assert_eq!(unhex::<4>("007fab"), None);
        assert_eq!(unhex::<2>("zz00"), None);
    }

    #[test]
    fn standard_signature_matches_the_spec_example() {
        // The Standard Webhooks specification's published example.
        let sig = standard_signature(
            &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
