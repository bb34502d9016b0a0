//! The typed event bus: what happened to a link, in the shape receivers get.
//! Producers (API, click shards, fraud detector, expiry) publish; the webhook
//! engine subscribes. `link.clicked` is published only after its batch is durable.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::domain::{AccountId, Click, Link};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    LinkClicked,
    LinkCreated,
    LinkUpdated,
    LinkExpired,
    WebhookTest,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::LinkClicked,
        EventType::LinkCreated,
        EventType::LinkUpdated,
        EventType::LinkExpired,
        EventType::WebhookTest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::LinkClicked => "link.clicked",
            EventType::LinkCreated => "link.created",
            EventType::LinkUpdated => "link.updated",
            EventType::LinkExpired => "link.expired",
            EventType::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One event; `data` is the wire format's `data` object.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: Uuid,
    pub event_type: EventType,
    pub account_id: AccountId,
    pub timestamp: DateTime<Utc>,
    pub data: Value,
}

/// One field a change touched, as shown in `link.updated`.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub field: &'static str,
    pub old: Value,
    pub new: Value,
}

pub fn link_summary(link: &Link, public_base_url: &str) -> Value {
    json!({
        "code": link.code,
        "short_url": format!("{public_base_url}/{}", link.code),
        "destination": link.destination,
        "tags": link.tags,
    })
}

impl Event {
    fn new(event_type: EventType, account_id: AccountId, data: Value) -> Self {
        Self {
            id: Uuid::now_v7(),
            event_type,
            account_id,
            timestamp: Utc::now(),
            data,
        }
    }

    pub fn link_created(link: &Link, base: &str) -> Self {
        Self::new(
            EventType::LinkCreated,
            link.account_id,
            json!({ "link": link_summary(link, base) }),
        )
    }

    pub fn link_expired(link: &Link, base: &str) -> Self {
        Self::new(
            EventType::LinkExpired,
            link.account_id,
            json!({ "link": link_summary(link, base) }),
        )
    }

    pub fn link_updated(link: &Link, base: &str, changes: &[Change], reason: Option<&str>) -> Self {
        let changes: Vec<Value> = changes
            .iter()
            .map(|c| json!({"field": c.field, "old": c.old, "new": c.new}))
            .collect();
        let mut data = json!({ "link": link_summary(link, base), "changes": changes });
        if let Some(reason) = reason {
            data["reason"] = Value::from(reason);
        }
        Self::new(EventType::LinkUpdated, link.account_id, data)
    }

    pub fn link_clicked(account_id: AccountId, link: Value, click: &Click) -> Self {
        let click = json!({
            "ip": click.ip,
            "user_agent": click.user_agent,
            "referrer": click.referrer,
            "referrer_host": click.referrer_host,
            "location": click.location,
            "device": click.device,
            "browser": click.browser,
            "os": click.os,
            "is_bot": click.is_bot,
        });
        Self::new(
            EventType::LinkClicked,
            account_id,
            json!({ "link": link, "click": click }),
        )
    }

    /// The wire body: `{"type","event_id","timestamp","data"}`.
    pub fn to_body(&self) -> Value {
        json!({
            "type": self.event_type.as_str(),
            "event_id": self.id.to_string(),
            "timestamp": self.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
            "data": self.data,
        })
    }
}

/// Fan-out of events to subscribers inside the process.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity).0,
        }
    }

    pub fn publish(&self, event: Event) {
        metrics::counter!(crate::metrics::EVENTS_PUBLISHED, "type" => event.event_type.as_str())
            .increment(1);
        // No subscriber is not an error: nobody asked for these events.
        let _ = self.tx.send(Arc::new(event));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}
