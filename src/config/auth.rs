//! `[auth]`: the admin token, and the keys that seal webhook secrets at rest.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    pub admin_token: String,
    pub encryption_key: String,
    pub encryption_key_file: String,
    pub previous_encryption_keys: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Empty: generated at first start and persisted in the store.
    pub admin_token: String,
    /// The keys sealing webhook secrets; decoded and checked at start-up
    /// (`store::sealing`), where a key file is read too.
    pub encryption: EncryptionKeys,
}

/// Webhook-secret keys as configured: base64 of 32 bytes each.
#[derive(Clone, Default)]
pub struct EncryptionKeys {
    /// `auth.encryption_key`: seals new secrets. Empty: see `encryption_key_file`.
    pub key: String,
    /// `auth.encryption_key_file`: a file holding the key instead.
    pub key_file: Option<PathBuf>,
    /// `auth.previous_encryption_keys`: still open secrets they sealed (rotation).
    pub previous: Vec<String>,
}

impl RawAuth {
    /// Any string is a token; empty means "generate one".
    pub(super) fn validate(self) -> AuthConfig {
        AuthConfig {
            admin_token: self.admin_token,
            encryption: EncryptionKeys {
                key: self.encryption_key,
                key_file: (!self.encryption_key_file.is_empty())
                    .then(|| PathBuf::from(self.encryption_key_file)),
                previous: self.previous_encryption_keys,
            },
        }
    }
}

impl std::fmt::Debug for EncryptionKeys {
    // Key material never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionKeys")
            .field("key", &(!self.key.is_empty()).then_some("<redacted>"))
            .field("key_file", &self.key_file)
            .field("previous", &self.previous.len())
            .finish()
    }
}
