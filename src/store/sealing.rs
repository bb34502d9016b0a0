//! Webhook secrets at rest: both backends store each secret value sealed with
//! AES-256-GCM (aws-lc-rs) under the current key, bound to its endpoint's id,
//! and open them on read. Earlier keys (`auth.previous_encryption_keys`) still
//! open what they sealed, and start-up re-seals those under the current key,
//! so keys rotate without downtime.
//!
//! A stored value reads `sealed:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`;
//! the key id (8 hex digits of the key's SHA-256) names the key without giving it away.

use std::{path::Path, sync::Arc};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{StoreError, StoreResult};
use crate::{config::EncryptionKeys, domain::Endpoint};

const PREFIX: &str = "sealed:v1:";
/// The key file generated next to the embedded store when no key is configured.
pub const KEY_FILE: &str = "secrets.key";

struct Key {
    id: String,
    key: RandomizedNonceKey,
}

impl Key {
    fn new(bytes: &[u8; 32]) -> Self {
        let digest = Sha256::digest(bytes);
        Self {
            id: digest[..4].iter().map(|b| format!("{b:02x}")).collect(),
            // A 32-byte key is always a valid AES-256 key.
            key: RandomizedNonceKey::new(&AES_256_GCM, bytes).expect("32-byte AES-256 key"),
        }
    }
}

/// The current key (seals) and earlier ones (only open).
pub struct SecretKeys {
    keys: Vec<Key>,
}

impl SecretKeys {
    pub fn new(current: &[u8; 32], previous: &[[u8; 32]]) -> Self {
        let keys = std::iter::once(current).chain(previous).map(Key::new);
        Self {
            keys: keys.collect(),
        }
    }

    fn seal(&self, endpoint: Uuid, value: &str) -> String {
        let key = &self.keys[0];
        let mut data = value.as_bytes().to_vec();
        let aad = Aad::from(endpoint.as_bytes());
        // Sealing a few bytes with a valid key cannot fail.
        let nonce = key
            .key
            .seal_in_place_append_tag(aad, &mut data)
            .expect("AES-GCM seal");
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&data);
        format!("{PREFIX}{}:{}", key.id, URL_SAFE_NO_PAD.encode(out))
    }

    fn open(&self, endpoint: Uuid, sealed: &str) -> StoreResult<String> {
        let bad = |why: &str| {
            StoreError::Corrupt(format!(
                "webhook secret of endpoint {endpoint} cannot be opened: {why}"
            ))
        };
        let (id, data) = sealed
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .ok_or_else(|| bad("not a sealed value"))?;
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| {
            bad(&format!(
                "it was sealed with key {id}, which is neither auth.encryption_key nor in \
                 auth.previous_encryption_keys"
            ))
        })?;
        let mut data = URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| bad("not base64"))?;
        if data.len() < NONCE_LEN {
            return Err(bad("too short"));
        }
        let mut body = data.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&data).map_err(|_| bad("bad nonce"))?;
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(endpoint.as_bytes()), &mut body)
            .map_err(|_| {
                bad(&format!(
                    "key {id} does not open it (wrong key, or altered)"
                ))
            })?;
        String::from_utf8(plain.to_vec()).map_err(|_| bad("not UTF-8"))
    }
}

/// What a backend does to an endpoint's secrets on the way in and out.
/// Without keys (a scylla store with no key configured, and tests) values
/// stay as given, and a sealed one found on read stops with a message naming
/// the key to set.
#[derive(Clone, Default)]
pub struct Sealer(Option<Arc<SecretKeys>>);

impl Sealer {
    pub fn new(keys: Option<Arc<SecretKeys>>) -> Self {
        Self(keys)
    }

    /// The endpoint as stored: secret values sealed.
    pub fn seal(&self, endpoint: &Endpoint) -> Endpoint {
        let mut stored = endpoint.clone();
        if let Some(keys) = &self.0 {
            for secret in &mut stored.secrets {
                secret.value = keys.seal(endpoint.id, &secret.value);
            }
        }
        stored
    }

    /// The endpoint as read: secret values opened. Values stored before
    /// sealing existed read as they are (start-up re-seals them).
    pub fn open(&self, mut endpoint: Endpoint) -> StoreResult<Endpoint> {
        for secret in &mut endpoint.secrets {
            if !secret.value.starts_with(PREFIX) {
                continue;
            }
            secret.value = match &self.0 {
                Some(keys) => keys.open(endpoint.id, &secret.value)?,
                None => {
                    return Err(StoreError::Corrupt(
                        "webhook secrets in the store are encrypted, and no key is configured: \
                         set auth.encryption_key (or auth.encryption_key_file) to the key they \
                         were sealed with"
                            .into(),
                    ));
                }
            };
        }
        Ok(endpoint)
    }

    /// Whether `stored` (as read raw) needs sealing again under the current key.
    pub fn stale(&self, stored: &Endpoint) -> bool {
        let Some(keys) = &self.0 else {
            return false;
        };
        let current = format!("{PREFIX}{}:", keys.keys[0].id);
        stored
            .secrets
            .iter()
            .any(|s| !s.value.starts_with(&current))
    }
}

/// The keys to seal with (if any), and a generated key still to be written.
pub type LoadedKeys = (Option<Arc<SecretKeys>>, Option<[u8; 32]>);

/// The keys to seal with, from `[auth]`. `generated_in`: a directory where a
/// key file is read, or generated when missing (the embedded store's); the new
/// key is returned to be written once the store has proven it holds nothing
/// sealed under another key. `None`: no key configured and nowhere to keep one.
pub fn load_keys(
    config: &EncryptionKeys,
    generated_in: Option<&Path>,
) -> Result<LoadedKeys, String> {
    let mut new_key = None;
    let current = if !config.key.is_empty() {
        decode_key("auth.encryption_key", &config.key)?
    } else if let Some(file) = &config.key_file {
        read_key_file("auth.encryption_key_file", file)?
    } else if let Some(file) = generated_in.map(|dir| dir.join(KEY_FILE)) {
        if file.exists() {
            read_key_file("the generated key file", &file)?
        } else {
            let mut key = [0u8; 32];
            aws_lc_rs::rand::fill(&mut key).map_err(|_| "no randomness for a new key")?;
            new_key = Some(key);
            key
        }
    } else {
        return Ok((None, None));
    };
    let previous = config
        .previous
        .iter()
        .enumerate()
        .map(|(i, k)| decode_key(&format!("auth.previous_encryption_keys[{i}]"), k))
        .collect::<Result<Vec<_>, _>>()?;
    let keys = SecretKeys::new(&current, &previous);
    Ok((Some(Arc::new(keys)), new_key))
}

/// Start-up, with the store opened under the loaded keys: refuses when the
/// store holds secrets those keys cannot open (the error names the key), then
/// writes a generated key file and seals every secret under the current key.
pub async fn check_and_reseal(
    store: &dyn super::Store,
    generated: Option<(&Path, [u8; 32])>,
) -> Result<(), String> {
    store
        .all_endpoints()
        .await
        .map_err(|e| format!("reading the webhook endpoints at start-up: {e}"))?;
    if let Some((dir, key)) = generated {
        let path = write_key_file(dir, &key)
            .map_err(|e| format!("writing the generated key file in {}: {e}", dir.display()))?;
        tracing::warn!(
            path = %path.display(),
            "auth.encryption_key is not set: webhook secrets are sealed with a key generated in this file; back it up apart from the store"
        );
    }
    let resealed = store
        .reseal_endpoints()
        .await
        .map_err(|e| format!("sealing webhook secrets under the current key: {e}"))?;
    if resealed > 0 {
        tracing::info!(
            endpoints = resealed,
            "webhook secrets sealed under the current key"
        );
    }
    Ok(())
}

/// Writes a generated key where [`load_keys`] looks for it, readable by the owner only.
pub fn write_key_file(dir: &Path, key: &[u8; 32]) -> std::io::Result<std::path::PathBuf> {
    use std::io::Write;
    let path = dir.join(KEY_FILE);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path)?;
    file.write_all(STANDARD.encode(key).as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(path)
}

fn read_key_file(name: &str, path: &Path) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{name} {}: cannot read: {e}", path.display()))?;
    decode_key(&format!("{name} {}", path.display()), text.trim())
}

fn decode_key(name: &str, text: &str) -> Result<[u8; 32], String> {
    STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| {
            format!(
                "{name}: expected the base64 of 32 random bytes (e.g. from `openssl rand -base64 32`)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Secret;

    fn endpoint(secret: &str) -> Endpoint {
        let now = chrono::Utc::now();
        Endpoint {
            id: Uuid::now_v7(),
            account_id: Uuid::now_v7(),
            url: "https://example.com/".into(),
            events: vec!["*".into()],
            enabled: true,
            disabled_reason: None,
            rate_limit_per_sec: 1,
            description: String::new(),
            secrets: vec![Secret {
                value: secret.into(),
                expires_at: None,
            }],
            created_at: now,
            updated_at: now,
            failed_streak: 0,
            version: 0,
        }
    }

    fn sealer(current: u8, previous: &[u8]) -> Sealer {
        let previous: Vec<[u8; 32]> = previous.iter().map(|b| [*b; 32]).collect();
        Sealer::new(Some(Arc::new(SecretKeys::new(&[current; 32], &previous))))
    }

    #[test]
    fn sealed_secrets_open_with_the_key_or_a_previous_one_only() {
        let e = endpoint("whsec_c2VjcmV0");
        let stored = sealer(1, &[]).seal(&e);
        assert!(!stored.secrets[0].value.contains("whsec_c2VjcmV0"));
        assert_eq!(sealer(1, &[]).open(stored.clone()).unwrap(), e);
        assert_eq!(sealer(2, &[1]).open(stored.clone()).unwrap(), e);
        assert!(sealer(2, &[1]).stale(&stored));
        assert!(!sealer(1, &[]).stale(&stored));
        let wrong = sealer(2, &[]).open(stored.clone()).unwrap_err().to_string();
        assert!(wrong.contains("auth.encryption_key"), "{wrong}");
        let none = Sealer::default()
            .open(stored.clone())
            .unwrap_err()
            .to_string();
        assert!(none.contains("auth.encryption_key"), "{none}");
        // Bound to its endpoint: moved to another, it does not open.
        let mut moved = stored;
        moved.id = Uuid::now_v7();
        assert!(sealer(1, &[]).open(moved).is_err());
    }

    #[test]
    fn keys_are_base64_of_32_bytes() {
        let config = |key: &str| EncryptionKeys {
            key: key.into(),
            ..Default::default()
        };
        let err = load_keys(&config("c2hvcnQ="), None).err().unwrap();
        assert!(err.starts_with("auth.encryption_key:"), "{err}");
        let (keys, new) = load_keys(&config(&STANDARD.encode([7u8; 32])), None).unwrap();
        assert!(keys.is_some() && new.is_none());
        assert!(matches!(load_keys(&config(""), None), Ok((None, None))));
    }
}
