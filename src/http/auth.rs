//! Bearer tokens: the admin token (may only create accounts) and account API
//! keys. Only SHA-256 digests are stored; comparisons are constant-time.
//! Every check goes through the rate limits ([`super::rate_limits`]): a client out
//! of failed-auth quota is refused before its token is looked up.

use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath};
use http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{SharedState, error::ApiError, rate_limits};
use crate::{domain::AccountId, net::Cidr};

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

/// The presented token, once the client is known not to be throttled; a
/// missing or malformed one counts as a failed attempt.
fn presented<'a>(parts: &'a Parts, state: &SharedState) -> Result<(&'a str, Cidr), ApiError> {
    let client = state.limits.client(parts);
    state.limits.gate(client, Instant::now())?;
    match bearer(parts) {
        Ok(token) => Ok((token, client)),
        Err(e) => Err(state.limits.failed(client, e, Instant::now())),
    }
}

async fn lookup(
    state: &SharedState,
    token: &str,
) -> Result<Option<crate::domain::KeyOwner>, ApiError> {
    let owner = state.store.account_by_key_hash(token_hash(token)).await?;
    crate::metrics::key_lookup(owner.is_some());
    Ok(owner)
}

/// The caller is the admin.
pub struct Admin;

impl FromRequestParts<SharedState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let (token, client) = presented(parts, state)?;
        if is_admin(state, token) {
            return Ok(Admin);
        }
        // A valid API key is known but not allowed here; anything else is unknown.
        match lookup(state, token).await? {
            Some(_) => Err(ApiError::forbidden(
                "only the admin token may create accounts",
            )),
            None => Err(state.limits.failed(
                client,
                ApiError::unauthorized("invalid token"),
                Instant::now(),
            )),
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
        let (token, client) = presented(parts, state)?;
        // The lookup is by digest: timing can reveal nothing about the key itself.
        // Never cached: a revoked key stops working at once.
        if let Some(owner) = lookup(state, token).await? {
            let route = parts
                .extensions
                .get::<MatchedPath>()
                .map(MatchedPath::as_str);
            let expensive = rate_limits::is_expensive(&parts.method, route);
            state.limits.account(owner.account, expensive)?;
            state.keys.used(state, owner);
            return Ok(Caller {
                account: owner.account,
                state: state.clone(),
            });
        }
        if is_admin(state, token) {
            return Err(ApiError::forbidden(
                "the admin token may only create accounts; use an account API key",
            ));
        }
        Err(state.limits.failed(
            client,
            ApiError::unauthorized("invalid API key"),
            Instant::now(),
        ))
    }
}
