//! `[auth]`: the admin token.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    pub admin_token: String,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Empty: generated at first start and persisted in the store.
    pub admin_token: String,
}

impl RawAuth {
    /// Any string is a token; empty means "generate one".
    pub(super) fn validate(self) -> AuthConfig {
        AuthConfig {
            admin_token: self.admin_token,
        }
    }
}
