//! The CQL schema statements and every prepared data-access statement.

use std::time::Duration;

use scylla::{client::session::Session, statement::prepared::PreparedStatement};

use super::errors;
use crate::store::StoreResult;

/// The CQL schema; `{{keyspace}}` and `{{replication_factor}}` are filled in at open.
const SCHEMA: &str = include_str!("schema.cql");

/// Every data-access statement, prepared once at open.
pub(super) struct Statements {
    pub(super) ping: PreparedStatement,
    pub(super) meta_insert: PreparedStatement,
    pub(super) meta_get: PreparedStatement,
    pub(super) meta_cas: PreparedStatement,
    pub(super) account_insert: PreparedStatement,
    pub(super) api_key_insert: PreparedStatement,
    pub(super) api_key_get: PreparedStatement,
    pub(super) link_claim: PreparedStatement,
    pub(super) link_get: PreparedStatement,
    pub(super) link_count_base: PreparedStatement,
    pub(super) link_set: PreparedStatement,
    pub(super) link_set_json: PreparedStatement,
    pub(super) link_delete: PreparedStatement,
    pub(super) account_link_insert: PreparedStatement,
    pub(super) account_link_delete: PreparedStatement,
    pub(super) account_links_page: PreparedStatement,
    pub(super) count_add: PreparedStatement,
    pub(super) count_get: PreparedStatement,
    pub(super) click_insert: PreparedStatement,
    pub(super) clicks_page: PreparedStatement,
    pub(super) clicks_delete_day: PreparedStatement,
    pub(super) click_day_insert: PreparedStatement,
    pub(super) click_days_get: PreparedStatement,
    pub(super) click_days_delete: PreparedStatement,
    pub(super) incident_insert: PreparedStatement,
    pub(super) incidents_page: PreparedStatement,
    pub(super) expiry_insert: PreparedStatement,
    pub(super) expiry_delete: PreparedStatement,
    pub(super) expiry_delete_upto: PreparedStatement,
    pub(super) expiries_due: PreparedStatement,
    pub(super) endpoint_insert: PreparedStatement,
    pub(super) endpoint_get: PreparedStatement,
    pub(super) endpoint_delete: PreparedStatement,
    pub(super) endpoints_all: PreparedStatement,
    pub(super) account_endpoint_insert: PreparedStatement,
    pub(super) account_endpoint_delete: PreparedStatement,
    pub(super) account_endpoints_get: PreparedStatement,
    pub(super) outbox_insert: PreparedStatement,
    pub(super) outbox_delete: PreparedStatement,
    pub(super) outbox_due: PreparedStatement,
    pub(super) outbox_get: PreparedStatement,
    pub(super) outbox_clear: PreparedStatement,
    pub(super) index_insert: PreparedStatement,
    pub(super) index_get: PreparedStatement,
    pub(super) index_delete: PreparedStatement,
    pub(super) index_clear: PreparedStatement,
    pub(super) attempt_insert: PreparedStatement,
    pub(super) attempts_page: PreparedStatement,
    pub(super) attempts_delete_day: PreparedStatement,
    pub(super) attempt_day_insert: PreparedStatement,
    pub(super) attempt_days_get: PreparedStatement,
    pub(super) attempt_days_delete: PreparedStatement,
}

impl Statements {
    pub(super) async fn prepare(session: &Session, keyspace: &str) -> StoreResult<Self> {
        let p = async |cql: &str| -> StoreResult<PreparedStatement> {
            let cql = cql.replace("{ks}", keyspace);
            let mut prepared = session
                .prepare(cql.as_str())
                .await
                .map_err(|e| errors::prepare(format!("preparing `{cql}`"), e))?;
            // Plain writes and reads may be retried; LWTs and counters may not.
            let lwt_or_counter = cql.contains(" IF ") || cql.contains("n = n +");
            prepared.set_is_idempotent(!lwt_or_counter);
            Ok(prepared)
        };
        Ok(Self {
            ping: p("SELECT now() FROM system.local").await?,
            meta_insert: p("INSERT INTO {ks}.meta (key, value) VALUES (?, ?) IF NOT EXISTS").await?,
            meta_get: p("SELECT value FROM {ks}.meta WHERE key = ?").await?,
            meta_cas: p("UPDATE {ks}.meta SET value = ? WHERE key = ? IF value = ?").await?,
            account_insert: p("INSERT INTO {ks}.accounts (id, json) VALUES (?, ?)").await?,
            api_key_insert: p("INSERT INTO {ks}.api_keys (key_hash, account_id) VALUES (?, ?)")
                .await?,
            api_key_get: p("SELECT account_id FROM {ks}.api_keys WHERE key_hash = ?").await?,
            link_claim: p(
                "INSERT INTO {ks}.links (code, json, expiry_bucket, count_base) \
                 VALUES (?, ?, ?, ?) IF NOT EXISTS",
            )
            .await?,
            link_get: p("SELECT json, expiry_bucket FROM {ks}.links WHERE code = ?").await?,
            link_count_base: p("SELECT count_base FROM {ks}.links WHERE code = ?").await?,
            link_set: p(
                "UPDATE {ks}.links SET json = ?, expiry_bucket = ? WHERE code = ? IF EXISTS",
            )
            .await?,
            link_set_json: p("UPDATE {ks}.links SET json = ? WHERE code = ? IF EXISTS").await?,
            link_delete: p("DELETE FROM {ks}.links WHERE code = ? IF EXISTS").await?,
            account_link_insert: p(
                "INSERT INTO {ks}.account_links (account_id, created_at, code) VALUES (?, ?, ?)",
            )
            .await?,
            account_link_delete: p(
                "DELETE FROM {ks}.account_links WHERE account_id = ? AND created_at = ? AND code = ?",
            )
            .await?,
            account_links_page: p("SELECT code FROM {ks}.account_links WHERE account_id = ?")
                .await?,
            count_add: p("UPDATE {ks}.click_counts SET n = n + ? WHERE code = ?").await?,
            count_get: p("SELECT n FROM {ks}.click_counts WHERE code = ?").await?,
            click_insert: p(
                "INSERT INTO {ks}.clicks (code, day, id, record) VALUES (?, ?, ?, ?) USING TTL ?",
            )
            .await?,
            clicks_page: p("SELECT record FROM {ks}.clicks WHERE code = ? AND day = ?").await?,
            clicks_delete_day: p("DELETE FROM {ks}.clicks WHERE code = ? AND day = ?").await?,
            click_day_insert: p(
                "INSERT INTO {ks}.click_days (code, day) VALUES (?, ?) USING TTL ?",
            )
            .await?,
            click_days_get: p("SELECT day FROM {ks}.click_days WHERE code = ? AND day <= ?")
                .await?,
            click_days_delete: p("DELETE FROM {ks}.click_days WHERE code = ?").await?,
            incident_insert: p(
                "INSERT INTO {ks}.incidents (account_id, id, json) VALUES (?, ?, ?)",
            )
            .await?,
            incidents_page: p("SELECT json FROM {ks}.incidents WHERE account_id = ?").await?,
            expiry_insert: p(
                "INSERT INTO {ks}.expiries (bucket, expires_at, code, created_ms) VALUES (?, ?, ?, ?)",
            )
            .await?,
            expiry_delete: p(
                "DELETE FROM {ks}.expiries WHERE bucket = ? AND expires_at = ? AND code = ?",
            )
            .await?,
            expiry_delete_upto: p(
                "DELETE FROM {ks}.expiries USING TIMESTAMP ? \
                 WHERE bucket = ? AND expires_at = ? AND code = ?",
            )
            .await?,
            expiries_due: p(
                "SELECT expires_at, code, created_ms, WRITETIME(created_ms) FROM {ks}.expiries \
                 WHERE bucket = ? AND expires_at <= ?",
            )
            .await?,
            endpoint_insert: p("INSERT INTO {ks}.endpoints (id, account_id, json) VALUES (?, ?, ?)")
                .await?,
            endpoint_get: p("SELECT json FROM {ks}.endpoints WHERE id = ?").await?,
            endpoint_delete: p("DELETE FROM {ks}.endpoints WHERE id = ?").await?,
            endpoints_all: p("SELECT json FROM {ks}.endpoints").await?,
            account_endpoint_insert: p(
                "INSERT INTO {ks}.account_endpoints (account_id, endpoint_id) VALUES (?, ?)",
            )
            .await?,
            account_endpoint_delete: p(
                "DELETE FROM {ks}.account_endpoints WHERE account_id = ? AND endpoint_id = ?",
            )
            .await?,
            account_endpoints_get: p(
                "SELECT endpoint_id FROM {ks}.account_endpoints WHERE account_id = ?",
            )
            .await?,
            outbox_insert: p(
                "INSERT INTO {ks}.outbox (endpoint_id, due, event_id, json) VALUES (?, ?, ?, ?)",
            )
            .await?,
            outbox_delete: p(
                "DELETE FROM {ks}.outbox WHERE endpoint_id = ? AND due = ? AND event_id = ?",
            )
            .await?,
            outbox_due: p(
                "SELECT json FROM {ks}.outbox WHERE endpoint_id = ? AND due < ? LIMIT ?",
            )
            .await?,
            outbox_get: p(
                "SELECT json FROM {ks}.outbox WHERE endpoint_id = ? AND due = ? AND event_id = ?",
            )
            .await?,
            outbox_clear: p("DELETE FROM {ks}.outbox WHERE endpoint_id = ?").await?,
            index_insert: p(
                "INSERT INTO {ks}.outbox_index (endpoint_id, event_id, due) VALUES (?, ?, ?)",
            )
            .await?,
            index_get: p(
                "SELECT due FROM {ks}.outbox_index WHERE endpoint_id = ? AND event_id = ?",
            )
            .await?,
            index_delete: p(
                "DELETE FROM {ks}.outbox_index WHERE endpoint_id = ? AND event_id = ?",
            )
            .await?,
            index_clear: p("DELETE FROM {ks}.outbox_index WHERE endpoint_id = ?").await?,
            attempt_insert: p(
                "INSERT INTO {ks}.attempts (endpoint_id, day, id, json) VALUES (?, ?, ?, ?) \
                 USING TTL ?",
            )
            .await?,
            attempts_page: p("SELECT json FROM {ks}.attempts WHERE endpoint_id = ? AND day = ?")
                .await?,
            attempts_delete_day: p(
                "DELETE FROM {ks}.attempts WHERE endpoint_id = ? AND day = ?",
            )
            .await?,
            attempt_day_insert: p(
                "INSERT INTO {ks}.attempt_days (endpoint_id, day) VALUES (?, ?) USING TTL ?",
            )
            .await?,
            attempt_days_get: p(
                "SELECT day FROM {ks}.attempt_days WHERE endpoint_id = ? AND day <= ?",
            )
            .await?,
            attempt_days_delete: p("DELETE FROM {ks}.attempt_days WHERE endpoint_id = ?").await?,
        })
    }
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
        assert_eq!(statements.len(), 17);
    }
}
