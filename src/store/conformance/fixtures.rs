//! What the cases build: links, clicks, endpoints, deliveries and attempts.

use std::future::Future;

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use crate::domain::{
    Attempt, AttemptStatus, Click, Delivery, DeliveryStatus, DeliveryUpdate, Endpoint, Link,
    Location, Secret,
};
use crate::store::{Page, Paging, StoreResult};

/// Every page of a listing, `limit` items at a time from the first page until
/// one has no next cursor.
pub(super) async fn pages<T, F: Future<Output = StoreResult<Page<T>>>>(
    limit: usize,
    mut read: impl FnMut(Paging) -> F,
) -> Vec<Vec<T>> {
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = read(Paging { limit, cursor })
            .await
            .expect("listing a page");
        pages.push(page.items);
        cursor = page.next_cursor;
        // A cursor that never runs out would loop here forever.
        assert!(pages.len() <= 1000, "the listing never ends");
        if cursor.is_none() {
            return pages;
        }
    }
}

pub(super) fn link(code: &str, account: Uuid, created_ms: i64) -> Link {
    let at = Utc
        .timestamp_millis_opt(created_ms)
        .single()
        .unwrap_or_default();
    Link {
        code: code.into(),
        account_id: account,
        destination: format!("https://example.com/{code}"),
        redirect_status: 302,
        created_at: at,
        updated_at: at,
        expires_at: None,
        disabled: false,
        disabled_reason: None,
        tags: vec!["t".into()],
        fraud_policy: None,
    }
}

pub(super) fn click(code: &str, n: u32) -> Click {
    Click {
        id: Uuid::now_v7(),
        code: code.into(),
        at: Utc::now(),
        ip: format!("203.0.113.{n}")
            .parse()
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
        user_agent: "ua".into(),
        referrer: String::new(),
        referrer_host: None,
        location: Location {
            country: Some("US".into()),
            ..Location::default()
        },
        device: "desktop".into(),
        browser: "Firefox".into(),
        os: "Linux".into(),
        is_bot: false,
    }
}

/// A UUIDv7 for a moment in the past (ids order logs; their time picks day buckets).
pub(super) fn id_at(at: DateTime<Utc>) -> Uuid {
    let ms = at.timestamp_millis().max(0) as u64;
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        ms / 1000,
        (ms % 1000) as u32 * 1_000_000,
    ))
}

pub(super) fn click_at(code: &str, n: u32, at: DateTime<Utc>) -> Click {
    Click {
        id: id_at(at),
        at,
        ..click(code, n)
    }
}

pub(super) fn endpoint(account: Uuid, url: &str) -> Endpoint {
    let now = Utc::now();
    Endpoint {
        id: Uuid::now_v7(),
        account_id: account,
        url: url.into(),
        events: vec!["*".into()],
        enabled: true,
        disabled_reason: None,
        rate_limit_per_sec: 50,
        description: String::new(),
        secrets: vec![Secret {
            value: "whsec_c2VjcmV0".into(),
            expires_at: None,
        }],
        created_at: now,
        updated_at: now,
        failed_streak: 0,
        version: 0,
    }
}

pub(super) fn delivery(endpoint: Uuid, due: DateTime<Utc>, status: DeliveryStatus) -> Delivery {
    Delivery {
        endpoint_id: endpoint,
        event_id: Uuid::now_v7(),
        event_type: "link.clicked".into(),
        body: format!("{{\"due\":{}}}", due.timestamp_millis()),
        created_at: Utc::now(),
        attempts: 0,
        first_attempt_at: None,
        next_attempt_at: due,
        status,
    }
}

pub(super) fn attempt(
    endpoint: Uuid,
    event: Uuid,
    at: DateTime<Utc>,
    status: AttemptStatus,
) -> Attempt {
    Attempt {
        id: id_at(at),
        endpoint_id: endpoint,
        event_id: event,
        event_type: "link.clicked".into(),
        attempt: 1,
        at,
        status,
        status_code: Some(500),
        error: None,
        duration_ms: 12,
        next_attempt_at: None,
        response_body: None,
    }
}

pub(super) fn codes(links: &[Link]) -> Vec<&str> {
    links.iter().map(|l| l.code.as_str()).collect()
}

/// The outcome of a delivered attempt: its outbox row goes.
pub(super) fn delivered(endpoint_id: Uuid, event_id: Uuid) -> DeliveryUpdate {
    DeliveryUpdate::Delivered {
        endpoint_id,
        event_id,
    }
}
