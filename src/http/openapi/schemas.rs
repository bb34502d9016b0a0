//! The shapes the API answers with and webhooks carry, for the document only:
//! handlers build their bodies with `json!`, these types describe them. Every
//! one refuses unknown fields (`additionalProperties: false`), so a field a
//! handler adds without a line here fails schemathesis' conformance check.

// Never constructed: their fields exist to be described.
#![allow(dead_code)]

use serde::Deserialize;
use serde_json::Value;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr, Type,
        schema::{AdditionalProperties, ObjectBuilder, Schema, SchemaFormat, SchemaType},
    },
};

use crate::domain::{MAX_CODE_LEN, REDIRECT_STATUSES};

/// `redirect_status`: one of the four redirect statuses.
pub fn redirect_status() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .enum_values(Some(REDIRECT_STATUSES))
}

/// `redirect_status` of a request: absent or `null` is the default.
pub fn redirect_status_or_null() -> impl Into<RefOr<Schema>> {
    let mut statuses: Vec<Value> = REDIRECT_STATUSES.iter().map(|s| Value::from(*s)).collect();
    statuses.push(Value::Null);
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .enum_values(Some(statuses))
}

/// A requested code, or `null` for a generated one.
pub fn code_or_null() -> impl Into<RefOr<Schema>> {
    code().schema_type(SchemaType::from_iter([Type::String, Type::Null]))
}

/// An endpoint's `events`: event types, or `"*"` for all.
pub fn event_names() -> impl Into<RefOr<Schema>> {
    event_list()
}

/// `events` of a change: absent or `null` leaves them as they are.
pub fn event_names_or_null() -> impl Into<RefOr<Schema>> {
    event_list().schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
}

fn event_list() -> utoipa::openapi::schema::ArrayBuilder {
    let mut names: Vec<&str> = crate::events::EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect();
    names.push("*");
    let items = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names));
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(items)
        .min_items(Some(1))
        .max_items(Some(crate::events::EventType::ALL.len() + 1))
}

/// `fraud_policy`: what a click flood does to the link; `null` is the server's policy.
pub fn fraud_policy() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some([
            Value::from("block_range"),
            "disable_link".into(),
            Value::Null,
        ]))
}

/// A link code: `[A-Za-z0-9_-]{1,64}`.
pub fn code() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^[A-Za-z0-9_-]{{1,{MAX_CODE_LEN}}}$")))
}

/// An RFC 3339 time in the future, or `null`.
pub fn expiry() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .format(Some(SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::DateTime,
        )))
}

/// `{"error": {...}}`: every error answer.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Error {
    pub error: ErrorDetail,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `malformed_request`, `invalid_parameter`,
    /// `unauthorized`, `forbidden`, `not_found`, `method_not_allowed`,
    /// `conflict`, `payload_too_large`, `validation_failed`, `rate_limited`,
    /// `gone`, `unavailable`, ...
    pub code: String,
    /// For people; may change.
    pub message: String,
    /// The body field or query parameter at fault, when there is one.
    pub field: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// `ok`
    pub status: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Readiness {
    /// `ready` or `not_ready`
    pub status: String,
    /// Why not ready.
    pub reason: Option<String>,
}

/// The new account and its first API key, shown only here.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountCreated {
    pub id: uuid::Uuid,
    pub name: String,
    pub api_key: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    #[schema(schema_with = code)]
    pub code: String,
    pub short_url: String,
    pub destination: String,
    #[schema(schema_with = redirect_status)]
    pub redirect_status: u16,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(required = true, format = DateTime)]
    pub expires_at: Option<String>,
    pub disabled: bool,
    /// `api`, `fraud`, ... while disabled.
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    pub tags: Vec<String>,
    /// `null`: the server's `fraud.policy`.
    #[schema(required = true, schema_with = fraud_policy)]
    pub fraud_policy: Option<String>,
    pub click_count: u64,
}

/// Where a click came from, as far as the server's geo data tells.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
}

/// A click as `/v1/links/{code}/clicks` shows it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Click {
    pub id: uuid::Uuid,
    #[schema(format = DateTime)]
    pub at: String,
    pub ip: String,
    pub user_agent: String,
    pub referrer: String,
    #[schema(required = true)]
    pub referrer_host: Option<String>,
    pub location: Location,
    /// `desktop`, `mobile`, `tablet`, `bot`, ...
    pub device: String,
    pub browser: String,
    pub os: String,
    pub is_bot: bool,
}

/// What the fraud detector did about one IP range flooding one link.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Incident {
    #[schema(schema_with = code)]
    pub code: String,
    pub ip_range: String,
    pub clicks: u64,
    /// The window as a duration string, e.g. `60s`.
    pub window: String,
    pub window_secs: u64,
    #[schema(format = DateTime)]
    pub at: String,
    /// `block_range` or `disable_link`.
    pub action: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub id: uuid::Uuid,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    #[schema(required = true)]
    pub name: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Written at most once a minute per key.
    #[schema(required = true, format = DateTime)]
    pub last_used_at: Option<String>,
    /// The whole key; in the creation answer only.
    pub key: Option<String>,
}

/// A webhook endpoint; its secrets are shown only when made.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub id: uuid::Uuid,
    pub url: String,
    /// Event types, or `["*"]` for all.
    pub events: Vec<String>,
    pub enabled: bool,
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    pub rate_limit_per_sec: u32,
    pub description: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// `whsec_…`; in the creation and rotation answers only.
    pub secret: Option<String>,
    /// Until when the rotated-out secret keeps signing; rotation answer only.
    #[schema(format = DateTime)]
    pub previous_secret_expires_at: Option<String>,
}

/// A `webhook.test` event was queued for the endpoint.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestQueued {
    pub event_id: uuid::Uuid,
    /// `webhook.test`
    #[schema(rename = "type")]
    #[serde(rename = "type")]
    pub event_type: String,
}

/// The failed delivery is due again now.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryQueued {
    pub event_id: uuid::Uuid,
    /// `pending`
    pub status: String,
}

/// How many failed deliveries of the window are pending again.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recovered {
    pub recovered: u64,
    /// Present (true) when the window held more than one call recovers (10,000).
    pub more: Option<bool>,
}

/// A stream token for `GET /v1/clicks/stream?token=`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamToken {
    /// `cst_…`
    pub token: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// One delivery attempt.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Attempt {
    pub event_id: uuid::Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    /// 1 for the first try.
    pub attempt: u32,
    /// `succeeded`, `pending` (another attempt is scheduled) or `failed` (the last one failed).
    pub status: String,
    /// The receiver's status, when it answered.
    #[schema(required = true)]
    pub status_code: Option<u16>,
    /// Timeout, connection or TLS error, when it did not.
    #[schema(required = true)]
    pub error: Option<String>,
    pub duration_ms: u64,
    #[schema(required = true, format = DateTime)]
    pub next_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    pub at: String,
    /// The receiver's answer, truncated.
    #[schema(required = true)]
    pub response_body: Option<String>,
}

/// `data.link` of every link event.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkSummary {
    #[schema(schema_with = code)]
    pub code: String,
    pub short_url: String,
    pub destination: String,
    pub tags: Vec<String>,
}

/// `data.click` of `link.clicked`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClickPayload {
    /// The click's id, the same as in `/v1/links/{code}/clicks`.
    pub id: uuid::Uuid,
    pub ip: String,
    pub user_agent: String,
    pub referrer: String,
    #[schema(required = true)]
    pub referrer_host: Option<String>,
    pub location: Location,
    pub device: String,
    pub browser: String,
    pub os: String,
    pub is_bot: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClickedData {
    pub link: LinkSummary,
    pub click: ClickPayload,
}

/// `data` of `link.created`, `link.expired` and `link.deleted`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkData {
    pub link: LinkSummary,
}

/// One field a change touched.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub field: String,
    #[schema(value_type = Value)]
    pub old: Value,
    #[schema(value_type = Value)]
    pub new: Value,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatedData {
    pub link: LinkSummary,
    pub changes: Vec<Change>,
    /// Set when the system made the change, e.g. `fraud`.
    pub reason: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestData {
    pub endpoint_id: uuid::Uuid,
    pub message: String,
}

/// `{"items": [...], "next_cursor"}` of item schema `item`; `next_cursor` is
/// `null` on the last page, else the `cursor` of the next.
pub fn page(item: &str) -> Schema {
    let items = utoipa::openapi::schema::ArrayBuilder::new()
        .items(utoipa::openapi::Ref::from_schema_name(item));
    ObjectBuilder::new()
        .property("items", items)
        .property("next_cursor", Option::<String>::schema())
        .required("items")
        .required("next_cursor")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .into()
}
