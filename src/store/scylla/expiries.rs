//! Expiry rows: the low-water mark below which every hour bucket is known to
//! be empty, and the due rows of one bucket resolved to their links.

use chrono::{DateTime, Utc};
use scylla::response::PagingState;

use super::{
    Inner,
    codec::{first_row, hour_of},
    errors::corrupt,
    reads::{READ_CONCURRENCY, concurrently},
    writes::Writes,
};
use crate::{
    domain::Link,
    store::{StoreError, StoreResult},
};

/// `meta` key of the expiry low-water mark (an hour bucket number, as text).
pub(super) const EXPIRY_MARK_KEY: &str = "relurl.expiry_low_water_hour";

impl Inner {
    pub(super) async fn init_expiry_mark(&self) -> StoreResult<()> {
        // First open of the keyspace: nothing can be filed below the current hour.
        let start = (hour_of(Utc::now()) - 1).to_string();
        self.execute(
            &self.st.meta_insert,
            (EXPIRY_MARK_KEY, start),
            "initialising expiry mark",
        )
        .await?;
        Ok(())
    }

    pub(super) async fn expiry_mark(&self) -> StoreResult<i64> {
        let row: Option<(Option<String>,)> = first_row(
            self.execute(&self.st.meta_get, (EXPIRY_MARK_KEY,), "reading expiry mark")
                .await?,
        )?;
        match row {
            Some((Some(text),)) => text
                .parse()
                .map_err(|_| corrupt(format!("expiry mark {text:?}"))),
            _ => {
                self.init_expiry_mark().await?;
                Ok(hour_of(Utc::now()) - 1)
            }
        }
    }

    /// The due rows of one hour bucket, resolved to links, into `out` (up to
    /// `limit`). Stale rows (link gone, re-created or its expiry moved) are deleted
    /// up to their write time, so a concurrent rewrite of the same row survives.
    /// Returns whether the bucket still holds rows (live or unread).
    pub(super) async fn due_in_bucket(
        &self,
        bucket: i64,
        until: DateTime<Utc>,
        limit: usize,
        out: &mut Vec<Link>,
    ) -> StoreResult<bool> {
        let values = (bucket, until);
        let mut from = PagingState::start();
        let mut any_live = false;
        loop {
            let need = limit.saturating_sub(out.len()).max(1);
            let (rows, next) = self
                .page::<(DateTime<Utc>, String, Option<i64>, Option<i64>)>(
                    &self.st.expiries_due,
                    &values,
                    from,
                    need,
                )
                .await?;
            let reads: Vec<_> = rows
                .into_iter()
                .map(|(expires_at, code, created_ms, written)| async move {
                    let current = self.get_link_row(&code).await?;
                    Ok::<_, StoreError>((expires_at, code, created_ms, written, current))
                })
                .collect();
            let resolved = concurrently(reads, READ_CONCURRENCY).await?;
            let mut stale = Writes::default();
            for (expires_at, code, created_ms, written, current) in resolved {
                let live = match current {
                    Some((link, Some(b)))
                        if b == bucket
                            && Some(link.created_at.timestamp_millis()) == created_ms
                            && link.expires_at.map(|e| e.timestamp_millis())
                                == Some(expires_at.timestamp_millis()) =>
                    {
                        Some(link)
                    }
                    _ => None,
                };
                match (live, written) {
                    (Some(link), _) => {
                        any_live = true;
                        if out.len() < limit {
                            out.push(link);
                        }
                    }
                    (None, Some(written)) => stale.add(
                        &self.st.expiry_delete_upto,
                        (written, bucket, expires_at, code),
                    )?,
                    (None, None) => {}
                }
            }
            self.run(stale).await?;
            match next {
                Some(state) if out.len() < limit => from = state,
                // Rows left unread keep the bucket from being passed, like live ones.
                next => return Ok(any_live || next.is_some()),
            }
        }
    }
}
