//! The CQL schema statements and every prepared data-access statement.

use std::time::Duration;

use scylla::{client::session::Session, statement::prepared::PreparedStatement};

use super::errors;
use crate::store::StoreResult;

/// The CQL schema; `{{keyspace}}` and `{{replication_factor}}` are filled in at open.
const SCHEMA: &str = include_str!("schema.cql");

/// Declares each prepared statement's field and its CQL in one place.
macro_rules! statements {
    ($($name:ident: $cql:literal;)*) => {
        /// Every data-access statement, prepared once at open.
        pub(super) struct Statements {
            $(pub(super) $name: PreparedStatement,)*
        }

        impl Statements {
            pub(super) async fn prepare(session: &Session, keyspace: &str) -> StoreResult<Self> {
                Ok(Self {
                    $($name: prepare(session, keyspace, $cql).await?,)*
                })
            }
        }
    };
}

async fn prepare(session: &Session, keyspace: &str, cql: &str) -> StoreResult<PreparedStatement> {
    let cql = cql.replace("{ks}", keyspace);
    let mut prepared = session
        .prepare(cql.as_str())
        .await
        .map_err(|e| errors::prepare(format!("preparing `{cql}`"), e))?;
    // Plain writes and reads may be retried; LWTs and counters may not.
    let lwt_or_counter = cql.contains(" IF ") || cql.contains("n = n +");
    prepared.set_is_idempotent(!lwt_or_counter);
    Ok(prepared)
}

statements! {
    ping: "SELECT now() FROM system.local";
    meta_insert: "INSERT INTO {ks}.meta (key, value) VALUES (?, ?) IF NOT EXISTS";
    meta_get: "SELECT value FROM {ks}.meta WHERE key = ?";
    meta_cas: "UPDATE {ks}.meta SET value = ? WHERE key = ? IF value = ?";
    account_insert: "INSERT INTO {ks}.accounts (id, json) VALUES (?, ?)";
    api_key_get: "SELECT account_id FROM {ks}.api_keys WHERE key_hash = ?";
    api_key_delete: "DELETE FROM {ks}.api_keys WHERE key_hash = ?";
    account_get: "SELECT json FROM {ks}.accounts WHERE id = ?";
    key_digest_insert: "INSERT INTO {ks}.key_digests (key_hash, account_id, key_id) VALUES (?, ?, ?)";
    key_digest_get: "SELECT account_id, key_id FROM {ks}.key_digests WHERE key_hash = ?";
    key_digest_delete: "DELETE FROM {ks}.key_digests WHERE key_hash = ?";
    account_key_insert: "INSERT INTO {ks}.account_keys (account_id, key_id, key_hash, json) VALUES (?, ?, ?, ?)";
    account_key_get: "SELECT key_hash, json FROM {ks}.account_keys WHERE account_id = ? AND key_id = ?";
    account_key_touch: "UPDATE {ks}.account_keys SET json = ? WHERE account_id = ? AND key_id = ? IF EXISTS";
    account_key_delete: "DELETE FROM {ks}.account_keys WHERE account_id = ? AND key_id = ? IF EXISTS";
    account_keys_page: "SELECT json FROM {ks}.account_keys WHERE account_id = ?";
    link_claim: "INSERT INTO {ks}.links (code, json, expiry_bucket, count_base) VALUES (?, ?, ?, ?) IF NOT EXISTS";
    link_get: "SELECT json, expiry_bucket FROM {ks}.links WHERE code = ?";
    link_count_base: "SELECT count_base FROM {ks}.links WHERE code = ?";
    link_set: "UPDATE {ks}.links SET json = ?, expiry_bucket = ? WHERE code = ? IF EXISTS";
    link_set_json: "UPDATE {ks}.links SET json = ? WHERE code = ? IF EXISTS";
    link_delete: "DELETE FROM {ks}.links WHERE code = ? IF EXISTS";
    account_link_insert: "INSERT INTO {ks}.account_links (account_id, created_at, code) VALUES (?, ?, ?)";
    account_link_delete: "DELETE FROM {ks}.account_links WHERE account_id = ? AND created_at = ? AND code = ?";
    account_links_page: "SELECT code FROM {ks}.account_links WHERE account_id = ?";
    count_add: "UPDATE {ks}.click_counts SET n = n + ? WHERE code = ?";
    count_get: "SELECT n FROM {ks}.click_counts WHERE code = ?";
    click_insert: "INSERT INTO {ks}.clicks (code, day, id, record) VALUES (?, ?, ?, ?) USING TTL ?";
    clicks_page: "SELECT record FROM {ks}.clicks WHERE code = ? AND day = ?";
    clicks_delete_day: "DELETE FROM {ks}.clicks WHERE code = ? AND day = ?";
    click_day_insert: "INSERT INTO {ks}.click_days (code, day) VALUES (?, ?) USING TTL ?";
    click_days_get: "SELECT day FROM {ks}.click_days WHERE code = ? AND day <= ?";
    click_days_delete: "DELETE FROM {ks}.click_days WHERE code = ?";
    rollup_add: "UPDATE {ks}.rollups SET n = n + ? WHERE scope = ? AND day = ? AND hour = ? AND dim = ? AND value = ?";
    rollup_day: "SELECT hour, dim, value, n FROM {ks}.rollups WHERE scope = ? AND day = ? AND hour >= ? AND hour < ?";
    rollup_day_insert: "INSERT INTO {ks}.rollup_days (scope, day) VALUES (?, ?)";
    rollup_days_get: "SELECT day FROM {ks}.rollup_days WHERE scope = ? AND day <= ?";
    rollup_days_delete: "DELETE FROM {ks}.rollup_days WHERE scope = ?";
    rollup_delete_day: "DELETE FROM {ks}.rollups WHERE scope = ? AND day = ?";
    incident_insert: "INSERT INTO {ks}.incidents (account_id, id, json) VALUES (?, ?, ?)";
    incidents_page: "SELECT json FROM {ks}.incidents WHERE account_id = ?";
    expiry_insert: "INSERT INTO {ks}.expiries (bucket, expires_at, code, created_ms) VALUES (?, ?, ?, ?)";
    expiry_delete: "DELETE FROM {ks}.expiries WHERE bucket = ? AND expires_at = ? AND code = ?";
    expiry_delete_upto: "DELETE FROM {ks}.expiries USING TIMESTAMP ? WHERE bucket = ? AND expires_at = ? AND code = ?";
    expiries_due: "SELECT expires_at, code, created_ms, WRITETIME(created_ms) FROM {ks}.expiries WHERE bucket = ? AND expires_at <= ?";
    endpoint_insert: "INSERT INTO {ks}.endpoints (id, account_id, json) VALUES (?, ?, ?)";
    endpoint_get: "SELECT json FROM {ks}.endpoints WHERE id = ?";
    endpoint_cas: "UPDATE {ks}.endpoints SET json = ? WHERE id = ? IF json = ?";
    endpoint_delete: "DELETE FROM {ks}.endpoints WHERE id = ? IF EXISTS";
    endpoints_all: "SELECT json FROM {ks}.endpoints";
    account_endpoint_insert: "INSERT INTO {ks}.account_endpoints (account_id, endpoint_id) VALUES (?, ?)";
    account_endpoint_delete: "DELETE FROM {ks}.account_endpoints WHERE account_id = ? AND endpoint_id = ?";
    account_endpoints_get: "SELECT endpoint_id FROM {ks}.account_endpoints WHERE account_id = ?";
    outbox_insert: "INSERT INTO {ks}.outbox (endpoint_id, due, event_id, json) VALUES (?, ?, ?, ?)";
    outbox_delete: "DELETE FROM {ks}.outbox WHERE endpoint_id = ? AND due = ? AND event_id = ?";
    outbox_due: "SELECT json FROM {ks}.outbox WHERE endpoint_id = ? AND due < ? LIMIT ?";
    outbox_get: "SELECT json FROM {ks}.outbox WHERE endpoint_id = ? AND due = ? AND event_id = ?";
    outbox_failed: "SELECT json FROM {ks}.outbox WHERE endpoint_id = ? AND due = ?";
    outbox_failed_after: "SELECT json FROM {ks}.outbox WHERE endpoint_id = ? AND due = ? AND event_id > ?";
    outbox_clear: "DELETE FROM {ks}.outbox WHERE endpoint_id = ?";
    index_insert: "INSERT INTO {ks}.outbox_index (endpoint_id, event_id, due) VALUES (?, ?, ?)";
    index_get: "SELECT due FROM {ks}.outbox_index WHERE endpoint_id = ? AND event_id = ?";
    index_delete: "DELETE FROM {ks}.outbox_index WHERE endpoint_id = ? AND event_id = ?";
    index_clear: "DELETE FROM {ks}.outbox_index WHERE endpoint_id = ?";
    attempt_insert: "INSERT INTO {ks}.attempts (endpoint_id, day, id, json) VALUES (?, ?, ?, ?) USING TTL ?";
    attempts_page: "SELECT json FROM {ks}.attempts WHERE endpoint_id = ? AND day = ?";
    attempts_delete_day: "DELETE FROM {ks}.attempts WHERE endpoint_id = ? AND day = ?";
    attempt_day_insert: "INSERT INTO {ks}.attempt_days (endpoint_id, day) VALUES (?, ?) USING TTL ?";
    attempt_days_get: "SELECT day FROM {ks}.attempt_days WHERE endpoint_id = ? AND day <= ?";
    attempt_days_delete: "DELETE FROM {ks}.attempt_days WHERE endpoint_id = ?";
}

/// The schema's statements with the keyspace and replication factor filled in.
pub(super) fn schema_statements(keyspace: &str, replication_factor: u32) -> Vec<String> {
    let without_comments: Vec<&str> = SCHEMA
        .lines()
        .map(|line| line.split("--").next().unwrap_or_default())
        .collect();
    without_comments
        .join("\n")
        .replace("{{keyspace}}", keyspace)
        .replace("{{replication_factor}}", &replication_factor.to_string())
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

pub(super) fn ttl_secs(ttl: Duration, extra: Duration) -> i32 {
    // Config validation keeps TTLs within ten years: far inside i32 seconds.
    i32::try_from((ttl + extra).as_secs()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_filled_in_and_split() {
        let statements = schema_statements("ks_test", 3);
        assert!(statements[0].starts_with("CREATE KEYSPACE IF NOT EXISTS ks_test"));
        assert!(statements[0].contains("'replication_factor': 3"));
        assert!(statements.iter().all(|s| !s.contains("{{")));
        assert!(
            statements
                .iter()
                .skip(1)
                .all(|s| s.starts_with("CREATE TABLE IF NOT EXISTS ks_test."))
        );
        assert_eq!(statements.len(), 21);
    }
}
