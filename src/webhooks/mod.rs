//! Webhook delivery: every event becomes one outbox row per subscribed
//! endpoint, written in the same store batch as the change that caused it, then
//! handed to that endpoint's actor.
//!
//! - [`WebhookDirectory`]: which endpoints want which events; routes deliveries.
//! - [`endpoint`]: the per-endpoint actor, thin: mailbox, timer, spawned I/O.
//! - [`machine`]: what that actor decides (rate limit, in-flight cap, retries), pure.
//! - [`supervisor`]: starts, follows and restarts endpoint actors.
//! - [`policy`]: retry schedule and outcome rules, pure.
//! - [`signer`]: signatures, pure. [`client`]: outbound HTTP. [`target`]: SSRF rules.
//!   [`dns`]: async name resolution with a timeout and a bounded cache.
//!
//! Bounds, said out loud: an endpoint holds at most [`endpoint::MEMORY_CAP`]
//! deliveries in memory and its mailbox at most [`MAILBOX_CAP`]; past either,
//! deliveries stay only in the outbox (they are already durable there) and the
//! actor reloads them from the store when it has room.

pub mod client;
pub mod dns;
pub mod endpoint;
pub mod machine;
pub mod policy;
pub mod signer;
pub mod supervisor;
pub mod target;

use std::sync::{
    Arc, Mutex, RwLock,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use chrono::Utc;
use uuid::Uuid;

use crate::{
    domain::{AccountId, Delivery, DeliveryStatus, Endpoint, filter_takes},
    events::{Event, EventBus, EventType},
    metrics::events::DeliveriesSpilled,
    supervision::ActorSlot,
};
use endpoint::EndpointMsg;

/// Deliveries queued in one endpoint's mailbox before new ones are left in the outbox.
pub const MAILBOX_CAP: usize = 16_384;

/// What routing needs of an endpoint; shared by the directory and its actor.
pub struct EndpointHandle {
    pub id: Uuid,
    pub account_id: AccountId,
    subscription: RwLock<Subscription>,
    pub(crate) actor: ActorSlot<EndpointMsg>,
    /// Deliveries cast to the actor and not yet taken in.
    pub(crate) queued: AtomicUsize,
    /// Some deliveries live only in the outbox: the actor must reload.
    pub(crate) spilled: AtomicBool,
}

#[derive(Clone)]
struct Subscription {
    events: Vec<String>,
    enabled: bool,
}

impl EndpointHandle {
    fn wants(&self, event_type: &str) -> bool {
        let s = self
            .subscription
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        s.enabled && filter_takes(&s.events, event_type)
    }

    /// Asks the actor, if it runs here, to read its outbox: rows were written
    /// there behind its back (other nodes, the recover API).
    pub fn reload(&self) {
        if let Some(actor) = self.actor.get() {
            self.spilled.store(true, Ordering::Release);
            let _ = actor.cast(EndpointMsg::Pump);
        }
    }

    /// Hands durable deliveries to the actor, or leaves them in the outbox when
    /// its mailbox is full or it is not running. In cluster mode an endpoint
    /// without an actor here belongs to another node, whose outbox scan finds them.
    fn hand_over(&self, deliveries: Vec<Delivery>, cluster: bool) {
        let n = deliveries.len();
        let actor = self.actor.get();
        match actor {
            None if cluster => {}
            Some(actor) if self.queued.load(Ordering::Acquire) + n <= MAILBOX_CAP => {
                self.queued.fetch_add(n, Ordering::AcqRel);
                if actor.cast(EndpointMsg::Deliver(deliveries)).is_err() {
                    self.queued.fetch_sub(n, Ordering::AcqRel);
                    self.spilled.store(true, Ordering::Release);
                }
            }
            _ => {
                self.spilled.store(true, Ordering::Release);
                DeliveriesSpilled {
                    endpoint: self.id,
                    deliveries: n,
                }
                .emit();
                if let Some(actor) = self.actor.get() {
                    let _ = actor.cast(EndpointMsg::Pump);
                }
            }
        }
    }
}

/// Which endpoints exist, per account, and the way to their actors.
#[derive(Default)]
pub struct WebhookDirectory {
    by_account: papaya::HashMap<AccountId, Arc<[Arc<EndpointHandle>]>>,
    pub(crate) by_id: papaya::HashMap<Uuid, Arc<EndpointHandle>>,
    /// Writers (API changes) take turns; readers never wait.
    writer: Mutex<()>,
    /// Cluster mode: actors run only on each endpoint's lease owner.
    cluster: AtomicBool,
}

impl WebhookDirectory {
    pub fn handle(&self, account: AccountId, id: Uuid) -> Option<Arc<EndpointHandle>> {
        self.by_account
            .pin()
            .get(&account)?
            .iter()
            .find(|h| h.id == id)
            .cloned()
    }

    /// Adds the endpoint or updates what it subscribes to; returns its handle.
    pub fn upsert(&self, endpoint: &Endpoint) -> Arc<EndpointHandle> {
        let _turn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let subscription = Subscription {
            events: endpoint.events.clone(),
            enabled: endpoint.enabled,
        };
        if let Some(handle) = self.handle(endpoint.account_id, endpoint.id) {
            *handle
                .subscription
                .write()
                .unwrap_or_else(|p| p.into_inner()) = subscription;
            return handle;
        }
        let handle = Arc::new(EndpointHandle {
            id: endpoint.id,
            account_id: endpoint.account_id,
            subscription: RwLock::new(subscription),
            actor: ActorSlot::empty(),
            queued: AtomicUsize::new(0),
            spilled: AtomicBool::new(false),
        });
        let map = self.by_account.pin();
        let mut handles: Vec<_> = map
            .get(&endpoint.account_id)
            .map(|h| h.to_vec())
            .unwrap_or_default();
        handles.push(handle.clone());
        map.insert(endpoint.account_id, handles.into());
        self.by_id.pin().insert(endpoint.id, handle.clone());
        handle
    }

    /// Cluster mode: only lease owners run actors; deliveries for the others
    /// stay in the outbox for their owner.
    pub fn set_cluster(&self) {
        self.cluster.store(true, Ordering::Release);
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster.load(Ordering::Acquire)
    }

    /// Every endpoint known here (enabled or not).
    pub fn ids(&self) -> Vec<Uuid> {
        self.by_id.pin().keys().copied().collect()
    }

    /// Asks every local actor to read its outbox (rows other nodes wrote).
    pub fn rescan_outboxes(&self) {
        for handle in self.by_id.pin().values() {
            handle.reload();
        }
    }

    pub fn remove(&self, account: AccountId, id: Uuid) -> Option<Arc<EndpointHandle>> {
        let _turn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let map = self.by_account.pin();
        let handles = map.get(&account)?;
        let removed = handles.iter().find(|h| h.id == id).cloned();
        let rest: Vec<_> = handles.iter().filter(|h| h.id != id).cloned().collect();
        map.insert(account, rest.into());
        self.by_id.pin().remove(&id);
        removed
    }

    /// The enabled endpoints of the account that want this event type.
    pub fn subscribers(&self, account: AccountId, event_type: EventType) -> Vec<Uuid> {
        let map = self.by_account.pin();
        let Some(handles) = map.get(&account) else {
            return Vec::new();
        };
        handles
            .iter()
            .filter(|h| h.wants(event_type.as_str()))
            .map(|h| h.id)
            .collect()
    }

    /// Hands durable deliveries to their endpoints' actors.
    pub fn dispatch(&self, deliveries: Vec<Delivery>) {
        if deliveries.is_empty() {
            return;
        }
        let mut by_endpoint: std::collections::HashMap<Uuid, Vec<Delivery>> = Default::default();
        for d in deliveries {
            by_endpoint.entry(d.endpoint_id).or_default().push(d);
        }
        let by_id = self.by_id.pin();
        let cluster = self.cluster.load(Ordering::Acquire);
        for (endpoint, batch) in by_endpoint {
            // A deleted endpoint: its outbox went with it.
            if let Some(handle) = by_id.get(&endpoint) {
                handle.hand_over(batch, cluster);
            }
        }
    }
}

/// The outbox row for `event` owed to `endpoint`, due now.
pub fn delivery(endpoint: Uuid, event: &Event) -> Delivery {
    Delivery {
        endpoint_id: endpoint,
        event_id: event.id,
        event_type: event.event_type.as_str().to_string(),
        body: String::from_utf8_lossy(&event.body).into_owned(),
        created_at: Utc::now(),
        attempts: 0,
        first_attempt_at: None,
        next_attempt_at: event.timestamp,
        status: DeliveryStatus::Pending,
    }
}

/// How a producer turns an event into deliveries and, once they are durable,
/// sends them on: `prepare`, write with the change, then `committed`.
#[derive(Clone)]
pub struct Fanout {
    pub directory: Arc<WebhookDirectory>,
    pub bus: EventBus,
}

impl Fanout {
    /// One pending delivery per enabled endpoint of the account that wants this event.
    pub fn prepare(&self, event: &Event) -> Vec<Delivery> {
        self.directory
            .subscribers(event.account_id, event.event_type)
            .into_iter()
            .map(|id| delivery(id, event))
            .collect()
    }

    /// Like `prepare`, but builds the event only when someone listens (the
    /// common case for many accounts is nobody), asking the directory once.
    pub fn prepare_if_wanted(
        &self,
        account: AccountId,
        event_type: EventType,
        build: impl FnOnce() -> Event,
    ) -> Option<(Event, Vec<Delivery>)> {
        let subscribers = self.directory.subscribers(account, event_type);
        if subscribers.is_empty() && !self.bus.has_subscribers() {
            return None;
        }
        let event = build();
        let deliveries = subscribers
            .into_iter()
            .map(|id| delivery(id, &event))
            .collect();
        Some((event, deliveries))
    }

    pub fn committed(&self, event: Event, deliveries: Vec<Delivery>) {
        self.directory.dispatch(deliveries);
        self.bus.publish(event);
    }
}
