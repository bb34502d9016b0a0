//! Click rollups: per scope (one link's incarnation, or a whole account) and UTC
//! hour, how many clicks there were in each (dimension, value). Computed when a
//! batch is built (`clicks::rollup`), added by each backend in the batch's write,
//! read back by the stats API. The compact encoding is the embedded store's.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::domain::{AccountId, Link};

/// Longest stored value, in bytes: longer ones are cut at a char boundary.
pub const MAX_VALUE_BYTES: usize = 100;

/// Whose clicks a rollup counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatsScope {
    /// A link, told apart from an earlier link with the same code by its
    /// creation time: a deleted Scylla counter cannot be counted up again.
    Link {
        code: String,
        created_ms: i64,
    },
    Account(AccountId),
}

impl StatsScope {
    pub fn of_link(link: &Link) -> Self {
        Self::Link {
            code: link.code.clone(),
            created_ms: link.created_at.timestamp_millis(),
        }
    }

    /// The scope as one stored key (`l:<code>:<millis>` or `a:<uuid>`).
    pub fn key(&self) -> String {
        match self {
            Self::Link { code, created_ms } => format!("l:{code}:{created_ms}"),
            Self::Account(id) => format!("a:{id}"),
        }
    }
}

/// What a rollup counts clicks by. Humans and bots carry an empty value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    Human,
    Bot,
    Country,
    Device,
    Browser,
    Os,
    Referrer,
}

impl Dim {
    pub const ALL: [Dim; 7] = [
        Dim::Human,
        Dim::Bot,
        Dim::Country,
        Dim::Device,
        Dim::Browser,
        Dim::Os,
        Dim::Referrer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dim::Human => "human",
            Dim::Bot => "bot",
            Dim::Country => "country",
            Dim::Device => "device",
            Dim::Browser => "browser",
            Dim::Os => "os",
            Dim::Referrer => "referrer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }

    fn tag(self) -> u8 {
        self as u8
    }

    fn from_tag(tag: u8) -> Option<Self> {
        Self::ALL.get(usize::from(tag)).copied()
    }
}

/// A scope's counts in one UTC hour (hours since the Unix epoch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HourRollup {
    pub hour: i64,
    pub counts: BTreeMap<(Dim, String), u64>,
}

impl HourRollup {
    pub fn new(hour: i64) -> Self {
        Self {
            hour,
            counts: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, dim: Dim, value: &str, n: u64) {
        *self.counts.entry((dim, truncate(value))).or_default() += n;
    }

    pub fn get(&self, dim: Dim, value: &str) -> u64 {
        self.counts
            .get(&(dim, value.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Every click is a human's or a bot's.
    pub fn total(&self) -> u64 {
        self.get(Dim::Human, "") + self.get(Dim::Bot, "")
    }

    /// Adds another rollup's counts (same scope and hour).
    pub fn merge(&mut self, other: &HourRollup) {
        for ((dim, value), n) in &other.counts {
            *self.counts.entry((*dim, value.clone())).or_default() += n;
        }
    }

    /// `dim`(1) `len`(1) `value` `n`(8, little-endian) per count.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.counts.len() * 24);
        for ((dim, value), n) in &self.counts {
            let bytes = &value.as_bytes()[..value.len().min(MAX_VALUE_BYTES)];
            out.push(dim.tag());
            out.push(bytes.len() as u8);
            out.extend_from_slice(bytes);
            out.extend_from_slice(&n.to_le_bytes());
        }
        out
    }

    /// None: not what [`HourRollup::encode`] writes.
    pub fn decode(hour: i64, mut bytes: &[u8]) -> Option<Self> {
        let mut rollup = Self::new(hour);
        while let [tag, len, rest @ ..] = bytes {
            let len = usize::from(*len);
            let dim = Dim::from_tag(*tag)?;
            let value = std::str::from_utf8(rest.get(..len)?).ok()?;
            let n = u64::from_le_bytes(rest.get(len..len + 8)?.try_into().ok()?);
            rollup.counts.insert((dim, value.to_string()), n);
            bytes = &rest[len + 8..];
        }
        bytes.is_empty().then_some(rollup)
    }
}

/// The hour (since the epoch) `at` falls in.
pub fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(3600)
}

/// The start of an hour since the epoch.
pub fn hour_start(hour: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(hour.saturating_mul(3600), 0).unwrap_or_default()
}

/// `value` cut to [`MAX_VALUE_BYTES`] at a char boundary.
pub fn truncate(value: &str) -> String {
    if value.len() <= MAX_VALUE_BYTES {
        return value.to_string();
    }
    let mut end = MAX_VALUE_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let mut r = HourRollup::new(7);
        r.add(Dim::Human, "", 3);
        r.add(Dim::Country, "DE", 2);
        r.add(Dim::Referrer, &"é".repeat(80), 1);
        let decoded = HourRollup::decode(7, &r.encode()).unwrap();
        assert_eq!(decoded, r);
        assert_eq!(decoded.total(), 3);
        assert!(HourRollup::decode(7, &[1, 5, b'a']).is_none());
        assert!(HourRollup::decode(7, &[99, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_none());
    }

    #[test]
    fn long_values_are_cut_at_a_char_boundary() {
        let long = "é".repeat(80);
        let cut = truncate(&long);
        assert!(cut.len() <= MAX_VALUE_BYTES && cut.chars().all(|c| c == 'é'));
        assert_eq!(truncate("short"), "short");
    }

    #[test]
    fn hours_round_down() {
        let at = DateTime::parse_from_rfc3339("2026-11-30T22:59:59Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            hour_start(hour_of(at)).to_rfc3339(),
            "2026-11-30T22:00:00+00:00"
        );
    }
}
