//! The expiry scheduler: fires `link.expired` once for every link whose
//! `expires_at` has passed, including links that expired while the server was
//! down. In cluster mode it runs on one node at a time (`active`, the expiry
//! lease). The store's expiry index is cleared in the same batch as the event's
//! deliveries, so each expiry fires exactly once.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::ticker::Ticker;
use crate::{
    events::Event,
    metrics::events::{LinkExpired, StoreFailed, StoreOp},
    store::SharedStore,
    webhooks::Fanout,
};

/// How often the store is asked for links that have expired.
pub const TICK: Duration = Duration::from_millis(500);
const BATCH: usize = 256;

pub async fn run(
    store: SharedStore,
    fanout: Fanout,
    public_base_url: String,
    active: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
) {
    let mut ticker = Ticker::new(TICK, stop);
    while ticker.tick().await {
        // In cluster mode only the holder of the expiry lease fires.
        while *active.borrow() {
            let due = match store.due_expiries(Utc::now(), BATCH).await {
                Ok(due) => due,
                Err(e) => {
                    StoreFailed::new(StoreOp::DueExpiries, &e).emit();
                    break;
                }
            };
            let n = due.len();
            for link in due {
                if !*active.borrow() {
                    break;
                }
                let event = Event::link_expired(&link, &public_base_url);
                let deliveries = fanout.prepare(&event);
                match store.mark_expired(&link, &deliveries).await {
                    Ok(()) => {
                        LinkExpired { code: &link.code }.emit();
                        fanout.committed(event, deliveries);
                    }
                    Err(e) => StoreFailed::new(StoreOp::MarkExpired, &e)
                        .code(&link.code)
                        .emit(),
                }
            }
            if n < BATCH {
                break;
            }
        }
    }
}
