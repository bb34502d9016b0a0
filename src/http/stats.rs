//! `/v1/links/{code}/stats` and `/v1/stats`: a window of hourly rollups summed
//! into hour or day buckets (every bucket, zero-filled), totals and the top
//! breakdowns. Window and summary are pure, so tests give them `now`.

use std::collections::HashMap;

use axum::{Json, extract::Path};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::json::Query;
use super::{auth::Caller, links::owned_link};
use crate::store::{
    Dim, HourRollup, StatsScope,
    rollup::{hour_of, hour_start},
};

/// Most buckets one answer holds.
pub const MAX_BUCKETS: i64 = 744;
/// Entries in each breakdown.
pub const TOP: usize = 50;

/// `?from=&to=&interval=`, as given.
#[derive(Deserialize, Default)]
pub struct StatsParams {
    from: Option<String>,
    to: Option<String>,
    interval: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Hour,
    Day,
}

impl Interval {
    fn hours(self) -> i64 {
        match self {
            Interval::Hour => 1,
            Interval::Day => 24,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Interval::Hour => "hour",
            Interval::Day => "day",
        }
    }
}

/// Whole buckets: hours since the epoch `[from_hour, to_hour)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from_hour: i64,
    pub to_hour: i64,
    pub interval: Interval,
}

fn parse_time(field: &str, text: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::bad_parameter(field, format!("{field} must be an RFC 3339 time")))
}

/// The buckets asked for: `from` rounds down, `to` up, to whole buckets.
pub fn window(params: &StatsParams, now: DateTime<Utc>) -> ApiResult<Window> {
    let interval = match params.interval.as_deref() {
        None | Some("day") => Interval::Day,
        Some("hour") => Interval::Hour,
        Some(_) => {
            return Err(ApiError::bad_parameter(
                "interval",
                "interval must be hour or day",
            ));
        }
    };
    let to = match &params.to {
        Some(text) => parse_time("to", text)?,
        None => now,
    };
    let from = match &params.from {
        Some(text) => parse_time("from", text)?,
        None => match interval {
            Interval::Day => to - chrono::Duration::days(30),
            Interval::Hour => to - chrono::Duration::hours(48),
        },
    };
    if from >= to {
        return Err(ApiError::bad_parameter("from", "from must be before to"));
    }
    let size = interval.hours();
    let from_hour = hour_of(from).div_euclid(size) * size;
    // Rounds up: an hour that has begun is a whole bucket.
    let end = hour_of(to - chrono::Duration::nanoseconds(1)) + 1;
    let to_hour = (end + size - 1).div_euclid(size) * size;
    if (to_hour - from_hour) / size > MAX_BUCKETS {
        return Err(ApiError::bad_parameter(
            "from",
            format!(
                "at most {MAX_BUCKETS} {}s between from and to",
                interval.name()
            ),
        ));
    }
    Ok(Window {
        from_hour,
        to_hour,
        interval,
    })
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The answer's body (without `code`): totals, the zero-filled series, oldest
/// first, and each breakdown's top [`TOP`] values, most clicks first.
pub fn summarize(window: Window, rollups: &[HourRollup]) -> Value {
    let size = window.interval.hours();
    let buckets = ((window.to_hour - window.from_hour) / size).max(0) as usize;
    let mut series = vec![0u64; buckets];
    let mut by_dim: HashMap<(Dim, &str), u64> = HashMap::new();
    for rollup in rollups {
        if rollup.hour < window.from_hour || rollup.hour >= window.to_hour {
            continue;
        }
        if let Some(slot) = series.get_mut(((rollup.hour - window.from_hour) / size) as usize) {
            *slot += rollup.total();
        }
        for ((dim, value), n) in &rollup.counts {
            *by_dim.entry((*dim, value.as_str())).or_default() += n;
        }
    }
    let count = |dim| by_dim.get(&(dim, "")).copied().unwrap_or(0);
    let (humans, bots) = (count(Dim::Human), count(Dim::Bot));
    let series: Vec<Value> = series
        .iter()
        .enumerate()
        .map(|(i, clicks)| {
            let at = hour_start(window.from_hour + i as i64 * size);
            json!({ "at": rfc3339(at), "clicks": clicks })
        })
        .collect();
    let top = |dim: Dim| -> Vec<Value> {
        let mut values: Vec<(&str, u64)> = by_dim
            .iter()
            .filter(|((d, _), _)| *d == dim)
            .map(|((_, v), n)| (*v, *n))
            .collect();
        values.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        values.truncate(TOP);
        values
            .into_iter()
            .map(|(value, clicks)| json!({ "value": value, "clicks": clicks }))
            .collect()
    };
    json!({
        "from": rfc3339(hour_start(window.from_hour)),
        "to": rfc3339(hour_start(window.to_hour)),
        "interval": window.interval.name(),
        "total": humans + bots,
        "humans": humans,
        "bots": bots,
        "series": series,
        "countries": top(Dim::Country),
        "devices": top(Dim::Device),
        "browsers": top(Dim::Browser),
        "os": top(Dim::Os),
        "referrers": top(Dim::Referrer),
    })
}

pub async fn link(
    Caller { account, state }: Caller,
    Path(code): Path<String>,
    Query(params): Query<StatsParams>,
) -> ApiResult<Json<Value>> {
    let window = window(&params, Utc::now())?;
    let link = owned_link(&state, account, &code).await?;
    let rollups = state
        .store
        .stats(
            &StatsScope::of_link(&link),
            window.from_hour,
            window.to_hour,
        )
        .await?;
    let mut body = summarize(window, &rollups);
    body["code"] = json!(link.code);
    Ok(Json(body))
}

pub async fn account(
    Caller { account, state }: Caller,
    Query(params): Query<StatsParams>,
) -> ApiResult<Json<Value>> {
    let window = window(&params, Utc::now())?;
    let rollups = state
        .store
        .stats(
            &StatsScope::Account(account),
            window.from_hour,
            window.to_hour,
        )
        .await?;
    Ok(Json(summarize(window, &rollups)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn params(from: Option<&str>, to: Option<&str>, interval: Option<&str>) -> StatsParams {
        StatsParams {
            from: from.map(str::to_string),
            to: to.map(str::to_string),
            interval: interval.map(str::to_string),
        }
    }

    fn field(e: ApiError) -> String {
        format!("{e:?}")
    }

    #[test]
    fn defaults_round_to_whole_buckets() {
        let now = at("2026-12-01T10:30:00Z");
        let w = window(&StatsParams::default(), now).unwrap();
        assert_eq!(hour_start(w.from_hour), at("2026-11-01T00:00:00Z"));
        assert_eq!(hour_start(w.to_hour), at("2026-12-02T00:00:00Z"));
        let w = window(&params(None, None, Some("hour")), now).unwrap();
        assert_eq!(hour_start(w.from_hour), at("2026-11-29T10:00:00Z"));
        assert_eq!(hour_start(w.to_hour), at("2026-12-01T11:00:00Z"));
        let exact = params(
            Some("2026-11-01T00:00:00Z"),
            Some("2026-11-03T00:00:00Z"),
            None,
        );
        let w = window(&exact, now).unwrap();
        assert_eq!((w.to_hour - w.from_hour) / 24, 2, "a boundary stays put");
    }

    #[test]
    fn bad_windows_name_their_field() {
        let now = at("2026-12-01T10:30:00Z");
        let cases = [
            (params(Some("yesterday"), None, None), "from"),
            (params(None, Some("x"), None), "to"),
            (params(None, None, Some("week")), "interval"),
            (params(Some("2026-12-02T00:00:00Z"), None, None), "from"),
            (
                params(Some("2026-10-01T00:00:00Z"), None, Some("hour")),
                "from",
            ),
            (params(Some("2020-01-01T00:00:00Z"), None, None), "from"),
        ];
        for (p, name) in cases {
            let e = field(window(&p, now).unwrap_err());
            assert!(e.contains(&format!("\"{name}\"")), "{name}: {e}");
        }
        let most = params(
            Some("2026-10-31T00:00:00Z"),
            Some("2026-12-01T00:00:00Z"),
            Some("hour"),
        );
        assert!(
            window(&most, now).is_ok(),
            "31 days of hours is 744 buckets"
        );
    }

    #[test]
    fn summary_zero_fills_buckets_and_ranks_breakdowns() {
        let now = at("2026-12-01T10:30:00Z");
        let p = params(Some("2026-11-28T00:00:00Z"), None, None);
        let w = window(&p, now).unwrap();
        let mut first = HourRollup::new(w.from_hour + 5);
        first.add(Dim::Human, "", 3);
        first.add(Dim::Country, "DE", 2);
        first.add(Dim::Country, "FR", 1);
        let mut later = HourRollup::new(w.from_hour + 24 * 2 + 1);
        later.add(Dim::Bot, "", 2);
        later.add(Dim::Country, "FR", 2);
        let outside = HourRollup::new(w.to_hour);
        let body = summarize(w, &[first, later, outside]);
        assert_eq!(body["total"], 5);
        assert_eq!(
            (body["humans"].clone(), body["bots"].clone()),
            (json!(3), json!(2))
        );
        let series: Vec<u64> = body["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["clicks"].as_u64().unwrap())
            .collect();
        assert_eq!(series, [3, 0, 2, 0]);
        assert_eq!(body["series"][1]["at"], "2026-11-29T00:00:00Z");
        assert_eq!(
            body["countries"],
            json!([{"value": "FR", "clicks": 3}, {"value": "DE", "clicks": 2}])
        );
        assert_eq!(body["from"], "2026-11-28T00:00:00Z");
        assert_eq!(body["interval"], "day");
    }

    #[test]
    fn breakdowns_hold_at_most_the_top_values() {
        let w = Window {
            from_hour: 0,
            to_hour: 1,
            interval: Interval::Hour,
        };
        let mut r = HourRollup::new(0);
        for n in 0..(TOP as u64 + 10) {
            r.add(Dim::Browser, &format!("b{n:03}"), n + 1);
        }
        let body = summarize(w, &[r]);
        let browsers = body["browsers"].as_array().unwrap();
        assert_eq!(browsers.len(), TOP);
        assert_eq!(browsers[0]["value"], "b059");
    }
}
