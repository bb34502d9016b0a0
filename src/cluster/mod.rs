//! Cluster mode (scylla backend only): what N relurl nodes on one ScyllaDB
//! cluster must agree on, with ScyllaDB as the only coordinator (DESIGN §6).
//!
//! Owns:
//! - membership: heartbeat rows written with a TTL; live nodes = rows present;
//! - endpoint leases: which node runs an endpoint's actor, taken and renewed
//!   with LWT and a fencing epoch, the preferred owner picked by rendezvous
//!   hashing over live nodes; the same lease shape elects the one node that
//!   fires `link.expired` (a singleton lease);
//! - the change feed: API writes appended to time buckets, tailed by every node
//!   to invalidate caches and start/stop/reload endpoint actors;
//! - cluster-wide fraud counts: per-second local counts, summed over the window
//!   from every node.
//!
//! Decisions are pure and take `now` ([`rendezvous`], [`lease`], [`feed`],
//! [`fraud`]); [`cql`] is the only part that talks to the database. The
//! embedded backend runs as one node and uses none of this.

pub mod cql;
pub mod feed;
pub mod fraud;
pub mod fraud_sync;
pub mod lease;
pub mod membership;
pub mod rendezvous;
pub mod runtime;
pub mod tail;
