//! The behaviour every [`Store`](super::Store) backend must show, one file per
//! area. Each case takes a fresh, empty store. [`store_conformance_suite!`]
//! holds the one list of cases and expands all of them for a backend, so a
//! case added here runs on every backend (see `tests/store_conformance.rs`).
//!
//! Compiled only with the `test-support` feature, which the crate's own tests
//! turn on (a dev-dependency on itself): never part of the release library.

pub mod accounts;
pub mod attempts;
pub mod clicks;
pub mod endpoints;
pub mod expiries;
mod fixtures;
pub mod keys;
pub mod links;
pub mod outbox;
pub mod recover;
pub mod stats;

/// One `#[tokio::test]` per conformance case, in one module per area, for the
/// backend that `$make` gives: an async expression evaluating to a fresh
/// `Option<SharedStore>` (None: backend unavailable, case skipped), resolved
/// where the macro is called. Adding a case: write it in its area's file and
/// name it here once.
#[macro_export]
macro_rules! store_conformance_suite {
    ($make:expr) => {
        $crate::store_conformance_suite!(@areas $make;
            accounts: ping_answers, meta_first_value_wins, accounts_found_by_key_hash, incidents_listed_newest_first_by_account;
            keys: keys_listed_newest_first_and_revoked, touched_keys_show_last_use_and_revoked_ones_stay_gone, meta_set_overwrites;
            links: link_codes_are_unique, link_update_and_delete, links_list_newest_first_by_account, recreated_code_starts_afresh;
            clicks: clicks_count_and_list_newest_first, clicks_listed_across_days, full_click_batch_is_written_and_paged;
            endpoints: endpoints_stored_listed_and_deleted, endpoint_writes_are_compare_and_set, endpoint_update_after_delete_does_not_resurrect;
            outbox: outbox_due_order_and_outcomes, repeated_versions_in_one_call_keep_the_last;
            attempts: attempts_listed_newest_first_with_status_filter;
            recover: failed_deliveries_in_a_window;
            expiries: expiries_fire_once_and_follow_updates;
            stats: rollups_add_up_and_read_by_hour_range, concurrent_writers_lose_no_increment, deleted_link_takes_its_rollups_and_a_recreated_code_starts_afresh;
        );
    };
    (@areas $make:expr; $($area:ident: $($case:ident),+;)+) => {
        $(
            mod $area {
                use super::*;
                $(
                    #[tokio::test]
                    async fn $case() {
                        if let Some(store) = $make {
                            $crate::store::conformance::$area::$case(store).await;
                        }
                    }
                )+
            }
        )+
    };
}
