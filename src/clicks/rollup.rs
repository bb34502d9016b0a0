//! What a batch of clicks adds to the hourly rollups (pure), and the bounded
//! record of which referrer hosts each (scope, hour) has admitted so far.
//!
//! A scope keeps at most [`REFERRERS_PER_HOUR`] distinct referrer hosts an hour;
//! later ones count as `(other)`. The record is per shard and in memory: a
//! link's clicks all go to one shard, so its top-N is exact; an account's
//! clicks spread over the shards, so its hour may hold up to N per shard, and
//! a restart may admit up to N more. Both stay bounded, which is the point.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::domain::{AccountId, Click};
use crate::store::rollup::{Dim, HourRollup, StatsScope, hour_of, truncate};

/// Distinct referrer hosts one scope keeps per hour.
pub const REFERRERS_PER_HOUR: usize = 100;
/// Hosts remembered over all scopes of a shard: past it, new hosts are `(other)`.
pub const MAX_ADMITTED: usize = 200_000;

pub const DIRECT: &str = "(direct)";
pub const OTHER: &str = "(other)";
pub const UNKNOWN_COUNTRY: &str = "--";

/// Which referrer hosts each (scope, hour) admitted; only the newest two hours
/// are kept (a batch spans the turn of an hour at most).
#[derive(Debug, Default)]
pub struct ReferrerAdmission {
    hours: BTreeMap<i64, HashMap<StatsScope, HashSet<String>>>,
    admitted: usize,
}

impl ReferrerAdmission {
    /// Whether `host` is counted under its name in `scope`'s `hour`.
    pub fn admit(&mut self, scope: &StatsScope, hour: i64, host: &str) -> bool {
        let newest = self.hours.keys().next_back().map_or(hour, |n| hour.max(*n));
        if hour < newest - 1 {
            // A late click of an hour already forgotten: no record to check.
            return false;
        }
        while let Some((&oldest, _)) = self.hours.first_key_value()
            && oldest < newest - 1
        {
            if let Some((_, scopes)) = self.hours.pop_first() {
                self.admitted -= scopes.values().map(HashSet::len).sum::<usize>();
            }
        }
        let hosts = self
            .hours
            .entry(hour)
            .or_default()
            .entry(scope.clone())
            .or_default();
        if hosts.contains(host) {
            return true;
        }
        if hosts.len() >= REFERRERS_PER_HOUR || self.admitted >= MAX_ADMITTED {
            return false;
        }
        hosts.insert(host.to_string());
        self.admitted += 1;
        true
    }
}

/// One click's owner: its link's account and creation time.
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    pub account: AccountId,
    pub link_created_ms: i64,
}

/// What `clicks` add to their link's and their account's hourly rollups.
pub fn rollups<'a>(
    clicks: impl IntoIterator<Item = (Owner, &'a Click)>,
    referrers: &mut ReferrerAdmission,
) -> Vec<(StatsScope, HourRollup)> {
    let mut out: HashMap<(StatsScope, i64), HourRollup> = HashMap::new();
    for (owner, click) in clicks {
        let hour = hour_of(click.at);
        let scopes = [
            StatsScope::Link {
                code: click.code.clone(),
                created_ms: owner.link_created_ms,
            },
            StatsScope::Account(owner.account),
        ];
        for scope in scopes {
            let referrer = match click.referrer_host.as_deref() {
                None | Some("") => DIRECT.to_string(),
                Some(host) => {
                    let host = truncate(&host.to_ascii_lowercase());
                    if referrers.admit(&scope, hour, &host) {
                        host
                    } else {
                        OTHER.to_string()
                    }
                }
            };
            let rollup = out
                .entry((scope, hour))
                .or_insert_with(|| HourRollup::new(hour));
            let kind = if click.is_bot { Dim::Bot } else { Dim::Human };
            rollup.add(kind, "", 1);
            let country = click.location.country.as_deref().filter(|c| !c.is_empty());
            rollup.add(Dim::Country, country.unwrap_or(UNKNOWN_COUNTRY), 1);
            rollup.add(Dim::Device, &click.device, 1);
            rollup.add(Dim::Browser, &click.browser, 1);
            rollup.add(Dim::Os, &click.os, 1);
            rollup.add(Dim::Referrer, &referrer, 1);
        }
    }
    let mut out: Vec<_> = out
        .into_iter()
        .map(|((scope, _), rollup)| (scope, rollup))
        .collect();
    out.sort_by(|a, b| (&a.0, a.1.hour).cmp(&(&b.0, b.1.hour)));
    out
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::domain::Location;

    fn click(code: &str, at: DateTime<Utc>, referrer: Option<&str>, bot: bool) -> Click {
        Click {
            id: Uuid::now_v7(),
            code: code.into(),
            at,
            ip: "203.0.113.1".parse().unwrap(),
            user_agent: "ua".into(),
            referrer: String::new(),
            referrer_host: referrer.map(str::to_string),
            location: Location {
                country: (!bot).then(|| "DE".into()),
                region: None,
                city: None,
            },
            device: "mobile".into(),
            browser: "Firefox".into(),
            os: "Android".into(),
            is_bot: bot,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-30T10:30:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn clicks_roll_up_per_link_and_account_and_hour() {
        let owner = Owner {
            account: Uuid::now_v7(),
            link_created_ms: 5,
        };
        let now = now();
        let clicks = [
            click("a", now, Some("News.example.com"), false),
            click("a", now, None, true),
            click("b", now + Duration::hours(1), Some("x.test"), false),
        ];
        let mut referrers = ReferrerAdmission::default();
        let out = rollups(clicks.iter().map(|c| (owner, c)), &mut referrers);
        assert_eq!(out.len(), 4, "{out:?}");
        let link_a = StatsScope::Link {
            code: "a".into(),
            created_ms: 5,
        };
        let a = &out.iter().find(|(s, _)| *s == link_a).unwrap().1;
        assert_eq!(a.hour, hour_of(now));
        assert_eq!((a.total(), a.get(Dim::Bot, "")), (2, 1));
        assert_eq!(a.get(Dim::Country, "DE"), 1);
        assert_eq!(a.get(Dim::Country, UNKNOWN_COUNTRY), 1);
        assert_eq!(a.get(Dim::Referrer, "news.example.com"), 1);
        assert_eq!(a.get(Dim::Referrer, DIRECT), 1);
        let account: Vec<_> = out
            .iter()
            .filter(|(s, _)| *s == StatsScope::Account(owner.account))
            .map(|(_, r)| (r.hour - hour_of(now), r.total()))
            .collect();
        assert_eq!(account, [(0, 2), (1, 1)]);
    }

    #[test]
    fn referrers_past_the_top_n_are_other_and_hours_are_forgotten() {
        let scope = StatsScope::Account(Uuid::now_v7());
        let mut r = ReferrerAdmission::default();
        for n in 0..REFERRERS_PER_HOUR {
            assert!(r.admit(&scope, 10, &format!("h{n}")));
        }
        assert!(!r.admit(&scope, 10, "late"));
        assert!(r.admit(&scope, 10, "h3"), "an admitted host stays admitted");
        assert!(r.admit(&scope, 11, "late"), "a new hour starts afresh");
        assert!(r.admit(&scope, 12, "x"));
        assert_eq!(r.hours.len(), 2, "only the newest two hours are kept");
        assert_eq!(r.admitted, 2);
        assert!(!r.admit(&scope, 9, "old"));
    }
}
