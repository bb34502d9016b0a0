//! The expiry scheduler: fires `link.expired` once for every link whose
//! `expires_at` has passed, including links that expired while the server was
//! down. The store's expiry index is cleared in the same batch as the event's
//! deliveries, so each expiry fires exactly once.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::{events::Event, store::SharedStore, webhooks::Fanout};

/// How often the store is asked for links that have expired.
pub const TICK: Duration = Duration::from_millis(500);
const BATCH: usize = 256;

pub async fn run(
    store: SharedStore,
    fanout: Fanout,
    public_base_url: String,
    mut stop: watch::Receiver<bool>,
) {
    let fired = metrics::counter!(crate::metrics::EXPIRIES_FIRED);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        loop {
            let due = match store.due_expiries(Utc::now(), BATCH).await {
                Ok(due) => due,
                Err(e) => {
                    crate::metrics::store_error("due_expiries");
                    tracing::warn!(error = %e, "cannot read expiring links");
                    break;
                }
            };
            let n = due.len();
            for link in due {
                let event = Event::link_expired(&link, &public_base_url);
                let deliveries = fanout.prepare(&event);
                match store.mark_expired(&link, &deliveries).await {
                    Ok(()) => {
                        fired.increment(1);
                        fanout.committed(event, deliveries);
                    }
                    Err(e) => {
                        crate::metrics::store_error("mark_expired");
                        tracing::warn!(code = %link.code, error = %e, "expiry not recorded, will retry");
                    }
                }
            }
            if n < BATCH {
                break;
            }
        }
    }
}
