//! Plain types shared by every stage: accounts, links, clicks, and the rules
//! that say what a valid code or destination is.

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod input;
pub use input::{
    MAX_WEBHOOK_URL_BYTES, PortError, Rfc3339, TextError, TimeError, WebhookUrlError,
    dedup_keep_order, url_port, validate_text, validate_webhook_url,
};

pub type AccountId = Uuid;

pub const GENERATED_CODE_LEN: usize = 7;
pub const MAX_CODE_LEN: usize = 64;
pub const MAX_DESTINATION_BYTES: usize = 8 * 1024;
pub const RESERVED_CODES: [&str; 5] = ["v1", "healthz", "readyz", "metrics", "ui"];
pub const REDIRECT_STATUSES: [u16; 4] = [301, 302, 307, 308];

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// Characters of an API key shown in listings (`rl_` and 8 more): enough to
/// tell keys apart, far too few to guess the rest.
pub const KEY_PREFIX_LEN: usize = 11;

/// An account's API key as listed: never the key itself (only its digest is stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: Uuid,
    pub account_id: AccountId,
    /// The key's first [`KEY_PREFIX_LEN`] characters; `None` for keys made
    /// before keys were listed (only their digest was kept).
    pub prefix: Option<String>,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Whose a presented API key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyOwner {
    pub account: AccountId,
    pub key: Uuid,
}

impl ApiKey {
    /// A key record for `key` (the whole key, seen only here).
    pub fn new(account: AccountId, key: &str, name: Option<String>, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            account_id: account,
            prefix: Some(key.chars().take(KEY_PREFIX_LEN).collect()),
            name,
            created_at: now,
            last_used_at: None,
        }
    }

    /// The record of a key stored before keys had records: its id is derived
    /// from the digest, so every node (and every retry) makes the same one.
    pub fn legacy(account: &Account, key_hash: [u8; 32]) -> Self {
        let millis = account.created_at.timestamp_millis().max(0) as u64;
        // A digest of the digest: the id reveals nothing about the stored one.
        let seed = <sha2::Sha256 as sha2::Digest>::digest(key_hash);
        let mut random = [0u8; 10];
        random.copy_from_slice(&seed[..10]);
        Self {
            id: uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid(),
            account_id: account.id,
            prefix: None,
            name: None,
            created_at: account.created_at,
            last_used_at: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub code: String,
    pub account_id: AccountId,
    pub destination: String,
    pub redirect_status: u16,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub tags: Vec<String>,
    /// What a click flood does to this link; `None`: the server's `fraud.policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraud_policy: Option<FraudAction>,
}

/// What the fraud detector does when one IP range floods a link: a link's
/// policy, and what an incident records it did. Parsing is the validation
/// (API input and config alike).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FraudAction {
    /// Stop storing, counting and forwarding that range's clicks on the link
    /// for a while; everyone else is unaffected.
    #[default]
    BlockRange,
    /// Disable the link for every visitor.
    DisableLink,
}

impl FraudAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FraudAction::BlockRange => "block_range",
            FraudAction::DisableLink => "disable_link",
        }
    }
}

impl Link {
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A click as stored and as shown by `/v1/links/{code}/clicks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Click {
    pub id: Uuid,
    pub code: String,
    pub at: DateTime<Utc>,
    pub ip: std::net::IpAddr,
    pub user_agent: String,
    pub referrer: String,
    pub referrer_host: Option<String>,
    pub location: Location,
    pub device: String,
    pub browser: String,
    pub os: String,
    pub is_bot: bool,
}

/// A subscriber: where events of an account go, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: Uuid,
    pub account_id: AccountId,
    pub url: String,
    /// `["*"]` or event type names.
    pub events: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub rate_limit_per_sec: u32,
    pub description: String,
    /// Newest first; a rotated-out secret keeps signing until `expires_at`.
    pub secrets: Vec<Secret>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Deliveries that failed for good in a row (reset by any success).
    pub failed_streak: u32,
    /// Bumped by every write, so writes are compare-and-set (0 on records
    /// written before versions existed).
    #[serde(default)]
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    pub value: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Whether an endpoint's `events` filter (`["*"]` or type names) takes this type.
pub fn filter_takes(events: &[String], event_type: &str) -> bool {
    events.iter().any(|e| e == "*" || e == event_type)
}

impl Endpoint {
    /// Secrets that still sign at `now`: the current one and at most two
    /// rotated-out ones (endpoints rotated before that limit may store more).
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|at| at > now))
            .take(3)
            .map(|s| s.value.as_str())
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Failed,
}

/// One event owed to one endpoint: the outbox row. Written durably before the
/// first attempt; removed on success; kept as `failed` after the last retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    /// The exact body sent on every attempt.
    pub body: String,
    pub created_at: DateTime<Utc>,
    /// Attempts made so far.
    pub attempts: u32,
    pub first_attempt_at: Option<DateTime<Utc>>,
    pub next_attempt_at: DateTime<Utc>,
    pub status: DeliveryStatus,
}

impl Delivery {
    /// A failed delivery sent again: pending, due `now` (retry and recover).
    pub fn due_again(&mut self, now: DateTime<Utc>) {
        self.status = DeliveryStatus::Pending;
        self.next_attempt_at = now;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// 2xx: delivered.
    Succeeded,
    /// Failed, another attempt is scheduled.
    Pending,
    /// Failed, and it was the last one.
    Failed,
}

impl AttemptStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "succeeded" => Some(Self::Succeeded),
            "pending" => Some(Self::Pending),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One try at delivering, as the attempts log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    pub status: AttemptStatus,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's answer, truncated.
    pub response_body: Option<String>,
}

/// What an attempt did to its outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryUpdate {
    /// Delivered: the row goes.
    Delivered { endpoint_id: Uuid, event_id: Uuid },
    /// Stays pending (retry scheduled) or becomes failed.
    Save(Delivery),
}

/// A link the fraud detector acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: Uuid,
    pub account_id: AccountId,
    pub code: String,
    pub ip_range: String,
    pub clicks: u32,
    pub window_secs: u64,
    pub at: DateTime<Utc>,
    /// Incidents recorded before ranges could be blocked all disabled the link.
    #[serde(default = "disabled_link")]
    pub action: FraudAction,
}

fn disabled_link() -> FraudAction {
    FraudAction::DisableLink
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
}

/// Why a code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("code must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'")]
    Pattern,
    #[error("code {0:?} is reserved")]
    Reserved(String),
}

pub fn validate_code(code: &str) -> Result<(), CodeError> {
    if !is_code_shaped(code) {
        return Err(CodeError::Pattern);
    }
    if RESERVED_CODES.contains(&code) {
        return Err(CodeError::Reserved(code.to_string()));
    }
    Ok(())
}

/// Whether `code` matches `[A-Za-z0-9_-]{1,64}`; the redirect path's cheap filter.
pub fn is_code_shaped(code: &str) -> bool {
    (1..=MAX_CODE_LEN).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub fn generate_code() -> String {
    let mut rng = rand::rng();
    (0..GENERATED_CODE_LEN)
        .map(|_| BASE62[rng.random_range(0..BASE62.len())] as char)
        .collect()
}

/// A random base62 secret of `len` characters, prefixed (API keys, admin tokens).
pub fn random_token(prefix: &str, len: usize) -> String {
    let mut rng = rand::rng();
    let mut token = String::with_capacity(prefix.len() + len);
    token.push_str(prefix);
    token.extend((0..len).map(|_| BASE62[rng.random_range(0..BASE62.len())] as char));
    token
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("destination must be at most 8 KiB")]
    TooLong,
    #[error("destination must be an absolute http or https URL")]
    NotHttp,
    #[error("destination {0}")]
    Port(PortError),
}

/// Absolute `http`/`https` URL with a host, at most 8 KiB, usable as a header value.
pub fn validate_destination(url: &str) -> Result<(), DestinationError> {
    if url.len() > MAX_DESTINATION_BYTES {
        return Err(DestinationError::TooLong);
    }
    let rest = if let Some(rest) = strip_prefix_ignore_case(url, "https://") {
        rest
    } else if let Some(rest) = strip_prefix_ignore_case(url, "http://") {
        rest
    } else {
        return Err(DestinationError::NotHttp);
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let visible_and_no_space = url.bytes().all(|b| (0x21..0x7f).contains(&b));
    if host.is_empty() || host.starts_with(':') || !visible_and_no_space {
        return Err(DestinationError::NotHttp);
    }
    if http::Uri::try_from(url).is_err() {
        return Err(DestinationError::NotHttp);
    }
    url_port(url).map_err(DestinationError::Port)?;
    Ok(())
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("at most 32 tags")]
    TooMany,
    #[error("tags must be 1 to 64 characters")]
    Length,
    #[error("tags {0}")]
    Text(TextError),
}

/// The tags to store: repeats dropped (first kept, in order), then checked.
pub fn normalize_tags(tags: Vec<String>) -> Result<Vec<String>, TagError> {
    let tags = dedup_keep_order(tags);
    if tags.len() > 32 {
        return Err(TagError::TooMany);
    }
    if tags.iter().any(|t| t.is_empty() || t.chars().count() > 64) {
        return Err(TagError::Length);
    }
    for tag in &tags {
        validate_text(tag).map_err(TagError::Text)?;
    }
    Ok(tags)
}

/// Appends the incoming query string to a destination, merging with its own;
/// bytes a URI query may not hold (non-ASCII, `{}|^` and the like, a `%` not
/// starting an escape) are percent-encoded.
pub fn destination_with_query(destination: &str, query: &str) -> String {
    if query.is_empty() {
        return destination.to_string();
    }
    let (base, fragment) = match destination.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (destination, None),
    };
    let mut out = String::with_capacity(destination.len() + query.len() + 2);
    out.push_str(base);
    if base.contains('?') {
        if !base.ends_with('?') && !base.ends_with('&') {
            out.push('&');
        }
    } else {
        out.push('?');
    }
    push_query_encoded(&mut out, query);
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

fn push_query_encoded(out: &mut String, query: &str) {
    let bytes = query.as_bytes();
    let escape_at = |i: usize| {
        bytes
            .get(i + 1..i + 3)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    };
    for (i, &b) in bytes.iter().enumerate() {
        // RFC 3986 query: unreserved, sub-delims, ":@/?", and "%" HEXDIG HEXDIG.
        let allowed = b.is_ascii_alphanumeric()
            || b"-._~!$&'()*+,;=:@/?".contains(&b)
            || (b == b'%' && escape_at(i));
        if allowed {
            out.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert!(validate_code("abc_-09XYZ").is_ok());
        assert_eq!(validate_code(""), Err(CodeError::Pattern));
        assert_eq!(validate_code("a/b"), Err(CodeError::Pattern));
        assert_eq!(validate_code(&"a".repeat(65)), Err(CodeError::Pattern));
        assert!(validate_code(&"a".repeat(64)).is_ok());
        assert_eq!(
            validate_code("healthz"),
            Err(CodeError::Reserved("healthz".into()))
        );
        let generated = generate_code();
        assert_eq!(generated.len(), 7);
        assert!(validate_code(&generated).is_ok());
    }

    #[test]
    fn destinations() {
        assert!(validate_destination("https://example.com/a?b=c#d").is_ok());
        assert!(validate_destination("HTTP://example.com").is_ok());
        assert_eq!(
            validate_destination("ftp://example.com"),
            Err(DestinationError::NotHttp)
        );
        assert_eq!(
            validate_destination("/relative"),
            Err(DestinationError::NotHttp)
        );
        assert_eq!(
            validate_destination("https://"),
            Err(DestinationError::NotHttp)
        );
        assert_eq!(
            validate_destination("https://exa mple.com"),
            Err(DestinationError::NotHttp)
        );
        let long = format!("https://example.com/{}", "a".repeat(8200));
        assert_eq!(validate_destination(&long), Err(DestinationError::TooLong));
        assert!(validate_destination("https://a.example:65535/").is_ok());
        for port in ["99999999999", "65536", "70000", "0"] {
            let url = format!("https://a.example:{port}/");
            assert_eq!(
                validate_destination(&url),
                Err(DestinationError::Port(PortError)),
                "{url}"
            );
        }
    }

    #[test]
    fn tags_are_deduplicated_and_plain() {
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            normalize_tags(tags(&["b", "a", "b"])),
            Ok(tags(&["b", "a"]))
        );
        // 40 copies of one tag are one tag, not too many.
        assert_eq!(normalize_tags(tags(&["x"; 40])), Ok(tags(&["x"])));
        assert_eq!(
            normalize_tags(tags(&["a\0"])),
            Err(TagError::Text(TextError::Control))
        );
        assert_eq!(
            normalize_tags(tags(&["a\nb"])),
            Err(TagError::Text(TextError::Control))
        );
        assert_eq!(
            normalize_tags(tags(&["\u{202E}txt"])),
            Err(TagError::Text(TextError::Bidi))
        );
        assert_eq!(normalize_tags(tags(&[""])), Err(TagError::Length));
    }

    #[test]
    fn query_merging() {
        assert_eq!(
            destination_with_query("https://e.com/p", "a=1"),
            "https://e.com/p?a=1"
        );
        assert_eq!(
            destination_with_query("https://e.com/p?x=2", "a=1"),
            "https://e.com/p?x=2&a=1"
        );
        assert_eq!(
            destination_with_query("https://e.com/p?x=2#frag", "a=1"),
            "https://e.com/p?x=2&a=1#frag"
        );
        assert_eq!(
            destination_with_query("https://e.com/", ""),
            "https://e.com/"
        );
    }

    #[test]
    fn appended_queries_are_percent_encoded() {
        let with = |q| destination_with_query("https://e.com/p", q);
        assert_eq!(with("q=é✓"), "https://e.com/p?q=%C3%A9%E2%9C%93");
        assert_eq!(with("a=%"), "https://e.com/p?a=%25");
        assert_eq!(with("a={}|^`"), "https://e.com/p?a=%7B%7D%7C%5E%60");
        assert_eq!(with("a=%41&b=%zz"), "https://e.com/p?a=%41&b=%25zz");
        assert_eq!(with("a=1/2?x:y@z&c=d"), "https://e.com/p?a=1/2?x:y@z&c=d");
    }
}
