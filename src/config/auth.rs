//! `[auth]`: the admin token, the `/v1` rate limits, and the keys that seal
//! webhook secrets at rest.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Errors;

/// A shorter configured admin token is refused: it would be guessable.
pub const MIN_ADMIN_TOKEN_LEN: usize = 24;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    pub admin_token: String,
    pub requests_per_sec: u32,
    pub burst: u32,
    pub expensive_writes_per_sec: u32,
    pub expensive_writes_burst: u32,
    pub failed_auth_per_min: u32,
    pub max_tracked_clients: u32,
    pub encryption_key: String,
    pub encryption_key_file: String,
    pub previous_encryption_keys: Vec<String>,
}

impl Default for RawAuth {
    fn default() -> Self {
        Self {
            admin_token: String::new(),
            requests_per_sec: 100,
            burst: 200,
            expensive_writes_per_sec: 10,
            expensive_writes_burst: 50,
            failed_auth_per_min: 30,
            max_tracked_clients: 100_000,
            encryption_key: String::new(),
            encryption_key_file: String::new(),
            previous_encryption_keys: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Empty: generated at first start and persisted in the store.
    pub admin_token: String,
    pub limits: LimitsConfig,
    /// The keys sealing webhook secrets; decoded and checked at start-up
    /// (`store::sealing`), where a key file is read too.
    pub encryption: EncryptionKeys,
}

/// Every rate is at least 1 (checked), so each makes a governor quota.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Per account, every `/v1` request.
    pub requests_per_sec: u32,
    pub burst: u32,
    /// Per account, on top: link creation, webhook `test`, delivery `retry`, key creation.
    pub expensive_writes_per_sec: u32,
    pub expensive_writes_burst: u32,
    /// Per client address: requests without valid credentials, also the burst.
    pub failed_auth_per_min: u32,
    /// Keys each limiter remembers before idle ones are dropped.
    pub max_tracked_clients: usize,
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
    pub(super) fn validate(self, errors: &mut Errors) -> AuthConfig {
        let token = &self.admin_token;
        errors.check(
            token.is_empty() || token.chars().count() >= MIN_ADMIN_TOKEN_LEN,
            "auth.admin_token",
            format!("empty (generated) or at least {MIN_ADMIN_TOKEN_LEN} characters"),
        );
        for (key, value) in [
            ("auth.requests_per_sec", self.requests_per_sec),
            ("auth.burst", self.burst),
            (
                "auth.expensive_writes_per_sec",
                self.expensive_writes_per_sec,
            ),
            ("auth.expensive_writes_burst", self.expensive_writes_burst),
            ("auth.failed_auth_per_min", self.failed_auth_per_min),
            ("auth.max_tracked_clients", self.max_tracked_clients),
        ] {
            errors.check(value >= 1, key, "at least 1");
        }
        AuthConfig {
            admin_token: self.admin_token,
            limits: LimitsConfig {
                requests_per_sec: self.requests_per_sec.max(1),
                burst: self.burst.max(1),
                expensive_writes_per_sec: self.expensive_writes_per_sec.max(1),
                expensive_writes_burst: self.expensive_writes_burst.max(1),
                failed_auth_per_min: self.failed_auth_per_min.max(1),
                max_tracked_clients: self.max_tracked_clients.max(1) as usize,
            },
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
