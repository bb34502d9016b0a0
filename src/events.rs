//! The typed event bus: what happened to a link, in the shape receivers get.
//! Every event is serialised once, at birth, into its wire body; webhook
//! deliveries carry those exact bytes. Producers (API, click shards, fraud
//! detector, expiry) publish after the event is durable; in-process observers
//! subscribe. `link.clicked` is published only after its batch is durable.

use std::{net::IpAddr, sync::Arc};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json, value::RawValue};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::{
    domain::{AccountId, Click, Link, Location},
    metrics::EventBusMetrics,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    LinkClicked,
    LinkCreated,
    LinkUpdated,
    LinkExpired,
    LinkDeleted,
    WebhookTest,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::LinkClicked,
        EventType::LinkCreated,
        EventType::LinkUpdated,
        EventType::LinkExpired,
        EventType::LinkDeleted,
        EventType::WebhookTest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::LinkClicked => "link.clicked",
            EventType::LinkCreated => "link.created",
            EventType::LinkUpdated => "link.updated",
            EventType::LinkExpired => "link.expired",
            EventType::LinkDeleted => "link.deleted",
            EventType::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One event with its wire body `{"type","event_id","timestamp","data"}`.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: Uuid,
    pub event_type: EventType,
    pub account_id: AccountId,
    pub timestamp: DateTime<Utc>,
    pub body: Bytes,
}

/// One field a change touched, as shown in `link.updated`.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub field: &'static str,
    pub old: Value,
    pub new: Value,
}

#[derive(Serialize)]
struct Wire<'a, D: Serialize> {
    #[serde(rename = "type")]
    event_type: &'static str,
    event_id: &'a Uuid,
    timestamp: &'a str,
    data: D,
}

#[derive(Serialize)]
struct LinkSummary<'a> {
    code: &'a str,
    short_url: String,
    destination: &'a str,
    tags: &'a [String],
}

/// `data.link` of every link event, serialised (kept pre-built in the cache).
pub fn link_summary_json(
    code: &str,
    destination: &str,
    tags: &[String],
    public_base_url: &str,
) -> Box<RawValue> {
    let summary = LinkSummary {
        code,
        short_url: format!("{public_base_url}/{code}"),
        destination,
        tags,
    };
    // Plain strings and a string list always serialise.
    serde_json::value::to_raw_value(&summary)
        .unwrap_or_else(|_| RawValue::from_string("{}".into()).unwrap_or_default())
}

#[derive(Serialize)]
struct ClickedData<'a> {
    link: &'a RawValue,
    click: ClickPayload<'a>,
}

#[derive(Serialize)]
struct ClickPayload<'a> {
    /// The click's id, as `/v1/links/{code}/clicks` shows it.
    id: &'a Uuid,
    ip: &'a IpAddr,
    user_agent: &'a str,
    referrer: &'a str,
    referrer_host: &'a Option<String>,
    location: &'a Location,
    device: &'a str,
    browser: &'a str,
    os: &'a str,
    is_bot: bool,
}

impl Event {
    fn build<D: Serialize>(event_type: EventType, account_id: AccountId, data: D) -> Self {
        Self::build_at(Utc::now(), event_type, account_id, data)
    }

    fn build_at<D: Serialize>(
        timestamp: DateTime<Utc>,
        event_type: EventType,
        account_id: AccountId,
        data: D,
    ) -> Self {
        let id = Uuid::now_v7();
        let stamp = timestamp.to_rfc3339_opts(SecondsFormat::Millis, true);
        let wire = Wire {
            event_type: event_type.as_str(),
            event_id: &id,
            timestamp: &stamp,
            data,
        };
        // Our own types with string keys: serialisation cannot fail.
        let body = serde_json::to_vec(&wire).unwrap_or_default();
        Self {
            id,
            event_type,
            account_id,
            timestamp,
            body: Bytes::from(body),
        }
    }

    fn link_data(link: &Link, base: &str) -> Box<RawValue> {
        link_summary_json(&link.code, &link.destination, &link.tags, base)
    }

    /// An event whose data is the link alone.
    fn of_link(event_type: EventType, link: &Link, base: &str) -> Self {
        Self::build(
            event_type,
            link.account_id,
            json!({ "link": Self::link_data(link, base) }),
        )
    }

    pub fn link_created(link: &Link, base: &str) -> Self {
        Self::of_link(EventType::LinkCreated, link, base)
    }

    pub fn link_expired(link: &Link, base: &str) -> Self {
        Self::of_link(EventType::LinkExpired, link, base)
    }

    pub fn link_deleted(link: &Link, base: &str) -> Self {
        Self::of_link(EventType::LinkDeleted, link, base)
    }

    pub fn link_updated(link: &Link, base: &str, changes: &[Change], reason: Option<&str>) -> Self {
        let changes: Vec<Value> = changes
            .iter()
            .map(|c| json!({"field": c.field, "old": c.old, "new": c.new}))
            .collect();
        let mut data = json!({ "link": Self::link_data(link, base), "changes": changes });
        if let Some(reason) = reason {
            data["reason"] = Value::from(reason);
        }
        Self::build(EventType::LinkUpdated, link.account_id, data)
    }

    pub fn link_clicked(account_id: AccountId, link: &RawValue, click: &Click) -> Self {
        let data = ClickedData {
            link,
            click: ClickPayload {
                id: &click.id,
                ip: &click.ip,
                user_agent: &click.user_agent,
                referrer: &click.referrer,
                referrer_host: &click.referrer_host,
                location: &click.location,
                device: &click.device,
                browser: &click.browser,
                os: &click.os,
                is_bot: click.is_bot,
            },
        };
        // A click event is stamped with the moment of the click, not of its batch.
        Self::build_at(click.at, EventType::LinkClicked, account_id, data)
    }

    pub fn webhook_test(account_id: AccountId, endpoint_id: Uuid) -> Self {
        Self::build(
            EventType::WebhookTest,
            account_id,
            json!({ "endpoint_id": endpoint_id, "message": "a test event from relurl" }),
        )
    }

    /// The body parsed back (for observers and tests).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body's `data` object.
    pub fn data(&self) -> Value {
        self.json()["data"].take()
    }
}

/// Fan-out of events to observers inside the process.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
    metrics: EventBusMetrics,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity).0,
            metrics: EventBusMetrics::new(),
        }
    }

    /// Whether anyone in the process listens (producers may skip building events).
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    pub fn publish(&self, event: Event) {
        self.metrics.published.count(event.event_type);
        // Nobody listening is not an error; skip the allocation then.
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(Arc::new(event));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}
