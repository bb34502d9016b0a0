//! Bearer tokens: the admin token (may only create accounts) and account API
//! keys. Only SHA-256 digests are stored; comparisons are constant-time.

use axum::extract::FromRequestParts;
use http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{SharedState, error::ApiError};
use crate::domain::AccountId;

pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("Authorization header is not valid text"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("Authorization must be \"Bearer <token>\""))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized(
            "Authorization must be \"Bearer <token>\"",
        ));
    }
    Ok(token.trim())
}

fn is_admin(state: &SharedState, token: &str) -> bool {
    token_hash(token).ct_eq(&state.admin_token_hash).into()
}

/// The caller is the admin.
pub struct Admin;

impl FromRequestParts<SharedState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if is_admin(state, token) {
            return Ok(Admin);
        }
        // A valid API key is known but not allowed here; anything else is unknown.
        match state.store.account_by_key_hash(token_hash(token)).await? {
            Some(_) => Err(ApiError::forbidden(
                "only the admin token may create accounts",
            )),
            None => Err(ApiError::unauthorized("invalid token")),
        }
    }
}

/// The caller is this account; every handler an account calls also needs the state.
pub struct Caller {
    pub account: AccountId,
    pub state: SharedState,
}

impl FromRequestParts<SharedState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        // The lookup is by digest: timing can reveal nothing about the key itself.
        if let Some(account) = state.store.account_by_key_hash(token_hash(token)).await? {
            return Ok(Caller {
                account,
                state: state.clone(),
            });
        }
        if is_admin(state, token) {
            return Err(ApiError::forbidden(
                "the admin token may only create accounts; use an account API key",
            ));
        }
        Err(ApiError::unauthorized("invalid API key"))
    }
}
