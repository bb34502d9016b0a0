//! Filtered listings over the store's newest-first pages: what one request may
//! examine is bounded, and the cursor stays the store's, so paging goes on
//! where the examined pages stopped (a page may hold fewer than `limit` items,
//! even none, while `next_cursor` is set).

use std::future::Future;

use super::error::ApiResult;
use crate::domain::Link;
use crate::store::{Page, Paging, StoreResult};

/// Store pages one request examines at most.
pub const MAX_PAGES: usize = 10;

/// What a filter makes of one item of a newest-first listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Skip,
    /// This item and every older one are out: the listing ends here.
    Stop,
}

/// The first store page (of at most [`MAX_PAGES`]) with an item `judge` keeps,
/// filtered, and where the next request picks up.
pub async fn filtered_page<T, F, Fut>(
    mut paging: Paging,
    mut read: F,
    judge: impl Fn(&T) -> Verdict,
) -> ApiResult<Page<T>>
where
    F: FnMut(Paging) -> Fut,
    Fut: Future<Output = StoreResult<Page<T>>>,
{
    for _ in 0..MAX_PAGES {
        let page = read(paging.clone()).await?;
        let mut items = Vec::new();
        let mut stopped = false;
        for item in page.items {
            match judge(&item) {
                Verdict::Keep => items.push(item),
                Verdict::Skip => {}
                Verdict::Stop => {
                    stopped = true;
                    break;
                }
            }
        }
        let next_cursor = if stopped { None } else { page.next_cursor };
        if !items.is_empty() || next_cursor.is_none() {
            return Ok(Page { items, next_cursor });
        }
        paging.cursor = next_cursor;
    }
    Ok(Page {
        items: Vec::new(),
        next_cursor: paging.cursor,
    })
}

/// `?tag=` (exact) and `?q=` (in the code, destination or a tag, any case).
pub fn link_matches(link: &Link, tag: Option<&str>, q: Option<&str>) -> bool {
    let tagged = tag.is_none_or(|tag| link.tags.iter().any(|t| t == tag));
    let found = q.is_none_or(|q| {
        let q = q.to_lowercase();
        let has = |s: &str| s.to_lowercase().contains(&q);
        has(&link.code) || has(&link.destination) || link.tags.iter().any(|t| has(t))
    });
    tagged && found
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;

    fn page(items: Vec<u32>, next: Option<&str>) -> StoreResult<Page<u32>> {
        Ok(Page {
            items,
            next_cursor: next.map(str::to_string),
        })
    }

    #[tokio::test]
    async fn skips_empty_pages_stops_at_stop_and_bounds_the_walk() {
        let read = |p: Paging| async move {
            match p.cursor.as_deref() {
                None => page(vec![9, 8], Some("a")),
                Some("a") => page(vec![7, 6], Some("b")),
                _ => page(vec![5, 4], None),
            }
        };
        let odd = |n: &u32| {
            if n % 2 == 1 {
                Verdict::Keep
            } else {
                Verdict::Skip
            }
        };
        let first = filtered_page(Paging::new(2, None), read, odd)
            .await
            .unwrap();
        assert_eq!(
            (first.items, first.next_cursor.as_deref()),
            (vec![9], Some("a"))
        );
        let small = |n: &u32| match n {
            7.. => Verdict::Skip,
            6 => Verdict::Keep,
            _ => Verdict::Stop,
        };
        let rest = filtered_page(Paging::new(2, None), read, small)
            .await
            .unwrap();
        assert_eq!((rest.items, rest.next_cursor), (vec![6], Some("b".into())));
        let endless = |_: Paging| async { page(vec![1], Some("x")) };
        let none = filtered_page(Paging::new(1, None), endless, |_| Verdict::Skip)
            .await
            .unwrap();
        assert_eq!(
            (none.items.len(), none.next_cursor.as_deref()),
            (0, Some("x"))
        );
    }

    #[test]
    fn links_match_tag_exactly_and_q_anywhere() {
        let now = Utc::now();
        let link = Link {
            code: "Launch".into(),
            account_id: Uuid::now_v7(),
            destination: "https://example.com/Spring".into(),
            redirect_status: 302,
            created_at: now,
            updated_at: now,
            expires_at: None,
            disabled: false,
            disabled_reason: None,
            tags: vec!["promo".into()],
            fraud_policy: None,
        };
        assert!(link_matches(&link, None, None));
        assert!(link_matches(&link, Some("promo"), Some("launch")));
        assert!(link_matches(&link, None, Some("SPRING")));
        assert!(link_matches(&link, None, Some("rom")));
        assert!(!link_matches(&link, Some("prom"), None));
        assert!(!link_matches(&link, None, Some("autumn")));
    }
}
