//! The stats answers' schemas and the query parameters of the stats, clicks
//! and links routes beyond paging. Like `schemas`, the types only describe
//! (handlers build bodies with `json!`).
#![allow(dead_code)]

use serde::Deserialize;
use utoipa::{
    ToSchema,
    openapi::{ObjectBuilder, Type, path::ParameterIn},
};

use super::{ParameterBuilder, parameter};

/// One bucket of the series.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatsBucket {
    /// The bucket's start.
    #[schema(format = DateTime)]
    pub at: String,
    pub clicks: u64,
}

/// One value of a breakdown.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatsCount {
    /// `--`: unknown country; `(direct)`: no referrer; `(other)`: a referrer
    /// host past the hour's first 100.
    pub value: String,
    pub clicks: u64,
}

/// Clicks of a window: totals, every bucket (zero-filled, oldest first), and
/// each breakdown's top 50 values, most clicks first.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    /// On the link route only.
    #[schema(schema_with = super::schemas::code)]
    pub code: Option<String>,
    /// `from`, rounded down to a whole bucket.
    #[schema(format = DateTime)]
    pub from: String,
    /// `to`, rounded up to a whole bucket.
    #[schema(format = DateTime)]
    pub to: String,
    /// `hour` or `day`.
    pub interval: String,
    pub total: u64,
    pub humans: u64,
    pub bots: u64,
    pub series: Vec<StatsBucket>,
    pub countries: Vec<StatsCount>,
    pub devices: Vec<StatsCount>,
    pub browsers: Vec<StatsCount>,
    pub os: Vec<StatsCount>,
    pub referrers: Vec<StatsCount>,
}

fn text() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn time() -> ObjectBuilder {
    text().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
        utoipa::openapi::KnownFormat::DateTime,
    )))
}

fn query(name: &str, schema: ObjectBuilder, description: &str) -> ParameterBuilder {
    parameter(name, ParameterIn::Query, schema).description(Some(description))
}

/// Query parameters of the operation `id` besides paging.
pub fn query_parameters(id: &str) -> Vec<ParameterBuilder> {
    match id {
        "link_stats" | "account_stats" => vec![
            query(
                "from",
                time(),
                "Window start, rounded down to a whole bucket (default: `to` minus 30 days, or 48 hours by hour)",
            ),
            query(
                "to",
                time(),
                "Window end, rounded up to a whole bucket (default: now)",
            ),
            query(
                "interval",
                text().enum_values(Some(["hour", "day"])),
                "Bucket size (default `day`); at most 744 buckets",
            ),
        ],
        "list_clicks" => vec![
            query("from", time(), "Only clicks at or after this time"),
            query("to", time(), "Only clicks before this time"),
            query(
                "format",
                text().enum_values(Some(["json", "csv"])),
                "`csv`: every click of the window as a CSV download, newest first",
            ),
        ],
        "list_links" => vec![
            query("tag", text(), "Only links with this tag (exact)"),
            query(
                "q",
                text(),
                "Only links whose code, destination or a tag contains this (any case)",
            ),
        ],
        _ => Vec::new(),
    }
}
