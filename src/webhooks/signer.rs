//! Signing, per the wire contract: `X-RELURL-Signature: sha256=<hex>` keyed by
//! the secret string itself, and Standard Webhooks `webhook-signature:
//! v1,<base64>` over `{id}.{timestamp}.{body}` keyed by the base64 part of the
//! secret. One value per secret that still signs (rotation overlap).

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const SECRET_PREFIX: &str = "whsec_";

/// `whsec_` + base64 of 24 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
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

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// The `X-RELURL-Signature` value: `sha256=<hex>` per secret, comma-separated.
pub fn relurl_signature(secrets: &[&str], body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| format!("sha256={}", hex(&hmac(secret.as_bytes(), &[body]))))
        .collect::<Vec<_>>()
        .join(",")
}

/// The Standard Webhooks `webhook-signature` value: `v1,<base64>` per secret,
/// space-separated.
pub fn standard_signature(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    secrets
        .iter()
        .map(|secret| {
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
