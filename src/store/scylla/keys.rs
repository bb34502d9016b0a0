//! API keys on CQL: `key_digests` answers "whose key is this", `account_keys`
//! lists an account's keys. Keys stored before key records (`api_keys`) move
//! over the first time they are presented. A record is inserted plainly, then
//! only changed or removed with LWT (`IF EXISTS`), so a `last_used_at` write
//! racing a revoke cannot bring the record back.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    Inner,
    codec::{first_row, from_json, lwt_outcome, to_json},
    errors::corrupt,
    reads::parse_all,
    writes::Writes,
};
use crate::{
    domain::{Account, AccountId, ApiKey, KeyOwner},
    store::{Page, Paging, StoreResult},
};

impl Inner {
    /// Adds the key's two rows to `writes`.
    pub(super) fn add_key<'a>(
        &'a self,
        writes: &mut Writes<'a>,
        key: &ApiKey,
        digest: [u8; 32],
    ) -> StoreResult<()> {
        writes.add(
            &self.st.key_digest_insert,
            (digest.to_vec(), key.account_id, key.id),
        )?;
        writes.add(
            &self.st.account_key_insert,
            (key.account_id, key.id, digest.to_vec(), to_json(key)?),
        )
    }

    pub(super) async fn key_owner(&self, digest: [u8; 32]) -> StoreResult<Option<KeyOwner>> {
        let row: Option<(Option<Uuid>, Option<Uuid>)> = first_row(
            self.execute(
                &self.st.key_digest_get,
                (digest.to_vec(),),
                "reading api key",
            )
            .await?,
        )?;
        if let Some((Some(account), Some(key))) = row {
            return Ok(Some(KeyOwner { account, key }));
        }
        self.migrate_legacy_key(digest).await
    }

    /// A key from before key records: give it one (the same on every node).
    async fn migrate_legacy_key(&self, digest: [u8; 32]) -> StoreResult<Option<KeyOwner>> {
        let row: Option<(Option<Uuid>,)> = first_row(
            self.execute(
                &self.st.api_key_get,
                (digest.to_vec(),),
                "reading legacy api key",
            )
            .await?,
        )?;
        let Some((Some(account),)) = row else {
            return Ok(None);
        };
        let json: Option<(Option<String>,)> = first_row(
            self.execute(&self.st.account_get, (account,), "reading account")
                .await?,
        )?;
        let Some((Some(json),)) = json else {
            return Err(corrupt(format!("api key of a missing account {account}")));
        };
        let key = ApiKey::legacy(&from_json::<Account>(&json)?, digest);
        let mut writes = Writes::default();
        self.add_key(&mut writes, &key, digest)?;
        self.run(writes).await?;
        // Only once the new rows are in: a failure above leaves the old row to retry from.
        self.run(Writes::one(&self.st.api_key_delete, (digest.to_vec(),))?)
            .await?;
        Ok(Some(KeyOwner {
            account,
            key: key.id,
        }))
    }

    pub(super) async fn list_keys(
        &self,
        account: AccountId,
        page: Paging,
    ) -> StoreResult<Page<ApiKey>> {
        let keep = &parse_all::<ApiKey>;
        self.list_partition(&self.st.account_keys_page, &(account,), &page, keep)
            .await
    }

    async fn key_row(
        &self,
        account: AccountId,
        id: Uuid,
    ) -> StoreResult<Option<(Vec<u8>, String)>> {
        let row: Option<(Option<Vec<u8>>, Option<String>)> = first_row(
            self.execute(
                &self.st.account_key_get,
                (account, id),
                "reading api key record",
            )
            .await?,
        )?;
        Ok(match row {
            Some((Some(digest), Some(json))) => Some((digest, json)),
            _ => None,
        })
    }

    pub(super) async fn delete_key(&self, account: AccountId, id: Uuid) -> StoreResult<bool> {
        let Some((digest, _)) = self.key_row(account, id).await? else {
            return Ok(false);
        };
        // The digest first: from then on the key authenticates nothing.
        self.run(Writes::one(&self.st.key_digest_delete, (digest,))?)
            .await?;
        // The record is touched with LWT, so it is removed with LWT too (no mixing).
        let result = self
            .execute(
                &self.st.account_key_delete,
                (account, id),
                "deleting api key record",
            )
            .await?;
        Ok(lwt_outcome(result)?.0)
    }

    /// Rewrites each record with its new `last_used_at`; `IF EXISTS`, so a key
    /// revoked meanwhile is not brought back.
    pub(super) async fn touch_keys(&self, used: &[(KeyOwner, DateTime<Utc>)]) -> StoreResult<()> {
        for (owner, at) in used {
            let Some((_, json)) = self.key_row(owner.account, owner.key).await? else {
                continue;
            };
            let mut key: ApiKey = from_json(&json)?;
            key.last_used_at = Some(*at);
            let result = self
                .execute(
                    &self.st.account_key_touch,
                    (to_json(&key)?, owner.account, owner.key),
                    "touching api key",
                )
                .await?;
            // Not applied: revoked between the read and the write; nothing to do.
            lwt_outcome(result)?;
        }
        Ok(())
    }
}
