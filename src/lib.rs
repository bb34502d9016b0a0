//! relurl: a link shortener whose every click becomes a signed, real-time webhook.
//!
//! Where a click goes, in order:
//! - [`http::redirect`] answers `GET /{code}` from the [`link_cache`] and drops
//!   the raw click into its shard's bounded queue ([`clicks`]).
//! - [`clicks::shard`] enriches ([`clicks::enrich`]), batches and writes clicks
//!   to the [`store`], then feeds the [`fraud`] detector and publishes
//!   `link.clicked` on the [`events`] bus.
//! - [`fraud`] disables links one IP range hammers.
//! - [`webhooks`] turns each event into outbox rows (written with the change
//!   that caused it) and delivers them, one supervised actor per endpoint.
//! - [`expiry`] fires `link.expired` once per link.
//!
//! [`app`] wires the stages; [`config`] loads and validates settings;
//! [`domain`] holds the plain types; [`metrics`] declares every metric;
//! [`bounded_queue`] is the queue the click and fraud stages share.

pub mod app;
pub mod bounded_queue;
pub mod clicks;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod events;
pub mod expiry;
pub mod fraud;
pub mod http;
pub mod link_cache;
pub mod metrics;
pub mod net;
pub mod store;
pub mod supervision;
pub mod ticker;
pub mod webhooks;
