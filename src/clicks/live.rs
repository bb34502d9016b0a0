//! Live clicks: stored clicks fanned out to the open click streams of their
//! account (`GET /v1/clicks/stream`), the per-account cap on open streams, and
//! the short-lived stream tokens that open them without a header.
//!
//! Shards publish after their batch is durable, with a non-blocking send on a
//! bounded broadcast channel; when nobody listens, nothing is copied.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeZone, Utc};
use subtle::ConstantTimeEq;
use tokio::sync::{OnceCell, broadcast, watch};

use crate::{
    domain::{AccountId, Click},
    store::{SharedStore, StoreResult},
    webhooks::signer::hmac,
};

/// Batches the channel keeps for its slowest forwarder.
const CHANNEL_BATCHES: usize = 1024;
/// Streams one account may have open at once.
pub const MAX_STREAMS_PER_ACCOUNT: usize = 16;
/// How long a stream token opens streams.
pub const TOKEN_TTL_SECS: i64 = 60;
const TOKEN_PREFIX: &str = "cst_";
/// Meta key of the random value every node derives the token key from.
const TOKEN_KEY_META: &str = "live_stream_token_key";

/// A stored click and the account of its link.
#[derive(Debug, Clone)]
pub struct LiveClick {
    pub account: AccountId,
    pub click: Click,
}

pub type LiveBatch = Arc<[LiveClick]>;

pub struct LiveClicks {
    tx: broadcast::Sender<LiveBatch>,
    /// Open streams per account; an account leaves the map at zero.
    open: Mutex<HashMap<AccountId, usize>>,
    key: OnceCell<[u8; 32]>,
    /// Set at shutdown: streams end, so their connections can close.
    closing: watch::Sender<bool>,
}

impl Default for LiveClicks {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CHANNEL_BATCHES).0,
            open: Mutex::default(),
            key: OnceCell::new(),
            closing: watch::Sender::new(false),
        }
    }
}

/// An open stream's place under the per-account cap, given back on drop.
pub struct StreamSlot {
    live: Arc<LiveClicks>,
    account: AccountId,
    pub clicks: broadcast::Receiver<LiveBatch>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.live.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.account) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.account);
            }
        }
    }
}

impl LiveClicks {
    /// Sends a durable batch to the streams; `build` runs only if one is open.
    pub fn publish(&self, build: impl FnOnce() -> Vec<LiveClick>) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let batch = build();
        if !batch.is_empty() {
            // Err only when the last stream closed meanwhile.
            let _ = self.tx.send(batch.into());
        }
    }

    /// A place for one more stream of `account`, or `None` at the cap.
    pub fn open(self: &Arc<Self>, account: AccountId) -> Option<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(account).or_default();
        if *n >= MAX_STREAMS_PER_ACCOUNT {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            live: self.clone(),
            account,
            clicks: self.tx.subscribe(),
        })
    }

    /// Ends every stream (graceful shutdown).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`LiveClicks::close`] was called.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut closing = self.closing.subscribe();
        async move {
            let _ = closing.wait_for(|closed| *closed).await;
        }
    }

    /// The token key: random, made once per store, so every node shares it.
    pub async fn key(&self, store: &SharedStore) -> StoreResult<[u8; 32]> {
        let key = self
            .key
            .get_or_try_init(|| async {
                let fresh: [u8; 32] = rand::random();
                let kept = store
                    .meta_get_or_insert(TOKEN_KEY_META, &URL_SAFE_NO_PAD.encode(fresh))
                    .await?;
                let raw = URL_SAFE_NO_PAD.decode(&kept).unwrap_or_default();
                // Anything but 32 bytes is used hashed: still shared by every node.
                let key: [u8; 32] = raw
                    .try_into()
                    .unwrap_or_else(|_| crate::http::auth::token_hash(&kept));
                Ok::<_, crate::store::StoreError>(key)
            })
            .await?;
        Ok(*key)
    }
}

/// A stream token for `account`, valid until `expires_at` (whole seconds):
/// `cst_` + base64url(account id, expiry, HMAC-SHA256 of both).
pub fn issue_token(key: &[u8; 32], account: AccountId, expires_at: DateTime<Utc>) -> String {
    let mut raw = account.as_bytes().to_vec();
    raw.extend_from_slice(&expires_at.timestamp().to_be_bytes());
    let tag = hmac(key, &[&raw]);
    raw.extend_from_slice(&tag);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
}

/// The account a token opens streams for, if it is genuine and not expired at `now`.
pub fn verify_token(key: &[u8; 32], token: &str, now: DateTime<Utc>) -> Option<AccountId> {
    let raw = URL_SAFE_NO_PAD
        .decode(token.strip_prefix(TOKEN_PREFIX)?)
        .ok()?;
    if raw.len() != 16 + 8 + 32 {
        return None;
    }
    let (payload, tag) = raw.split_at(24);
    if !bool::from(hmac(key, &[payload]).ct_eq(tag)) {
        return None;
    }
    let expires = i64::from_be_bytes(payload[16..24].try_into().ok()?);
    let expires_at = Utc.timestamp_opt(expires, 0).single()?;
    (now < expires_at).then(|| AccountId::from_slice(&payload[..16]).ok())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn tokens_open_streams_for_their_account_until_they_expire() {
        let key = [7u8; 32];
        let account = AccountId::now_v7();
        let now = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let token = issue_token(&key, account, now + Duration::seconds(TOKEN_TTL_SECS));
        assert!(token.starts_with("cst_"));
        assert_eq!(verify_token(&key, &token, now), Some(account));
        let later = now + Duration::seconds(TOKEN_TTL_SECS);
        assert_eq!(verify_token(&key, &token, later), None);
        assert_eq!(verify_token(&[8u8; 32], &token, now), None);
        // One flipped character of the signature, or of the account.
        let mut forged = token.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            verify_token(&key, &String::from_utf8(forged).unwrap(), now),
            None
        );
        for bad in ["", "cst_", "cst_!!", "key_abc", &token[..token.len() - 4]] {
            assert_eq!(verify_token(&key, bad, now), None, "{bad}");
        }
    }

    #[test]
    fn an_account_has_at_most_sixteen_streams_open() {
        let live = Arc::new(LiveClicks::default());
        let (a, b) = (AccountId::now_v7(), AccountId::now_v7());
        let slots: Vec<_> = (0..MAX_STREAMS_PER_ACCOUNT)
            .map(|_| live.open(a).unwrap())
            .collect();
        assert!(live.open(a).is_none());
        assert!(live.open(b).is_some());
        drop(slots);
        assert!(live.open(a).is_some());
        assert!(live.open.lock().unwrap().get(&a).is_none());
    }
}
