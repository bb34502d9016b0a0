//! The document's top-level `webhooks`: one entry per event type, with the
//! body relurl POSTs to an endpoint and the headers of every attempt.

use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        HttpMethod, PathItem, Paths, Ref, RefOr, Required, ResponseBuilder, Type,
        path::{OperationBuilder, ParameterBuilder, ParameterIn},
        request_body::RequestBodyBuilder,
        schema::{AdditionalProperties, ObjectBuilder, Schema},
    },
};

use super::{JSON, json_content, schemas, uuid};
use crate::events::EventType;

/// The contract's event types: every one the code knows, and `link.deleted`
/// (the contract lists it; it stays here once the code emits it).
fn event_types() -> Vec<&'static str> {
    let mut types: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    if !types.contains(&"link.deleted") {
        types.push("link.deleted");
    }
    types
}

/// The `data` schema of an event type.
fn data_schema(event_type: &str) -> &'static str {
    match event_type {
        "link.clicked" => "ClickedData",
        "link.updated" => "UpdatedData",
        "webhook.test" => "TestData",
        _ => "LinkData",
    }
}

/// `link.clicked` → `LinkClickedEvent`.
fn event_schema_name(event_type: &str) -> String {
    let mut name = String::new();
    for part in event_type.split(['.', '_']) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            name.extend(first.to_uppercase());
            name.push_str(chars.as_str());
        }
    }
    name + "Event"
}

/// The schemas the webhooks section refers to.
pub fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
    macro_rules! add {
        ($($ty:ty),* $(,)?) => {$(
            <$ty as ToSchema>::schemas(out);
            out.push((<$ty as ToSchema>::name().into_owned(), <$ty as PartialSchema>::schema()));
        )*};
    }
    add!(
        schemas::Location,
        schemas::LinkSummary,
        schemas::ClickPayload,
        schemas::ClickedData,
        schemas::LinkData,
        schemas::Change,
        schemas::UpdatedData,
        schemas::TestData,
    );
    for event_type in event_types() {
        let kind = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([event_type]));
        let timestamp = ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            )))
            .description(Some("When it happened (a click: the moment of the click)"));
        let event = ObjectBuilder::new()
            .property("type", kind)
            .property(
                "event_id",
                ObjectBuilder::from(uuid()).description(Some(
                    "UUIDv7; the same on every retry to one endpoint: deduplicate by it",
                )),
            )
            .property("timestamp", timestamp)
            .property("data", Ref::from_schema_name(data_schema(event_type)))
            .required("type")
            .required("event_id")
            .required("timestamp")
            .required("data")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        out.push((event_schema_name(event_type), Schema::from(event).into()));
    }
}

/// The headers of every attempt.
const HEADERS: &[(&str, &str)] = &[
    (
        "X-RELURL-Signature",
        "`sha256=<hex>`: HMAC-SHA256 of the raw body keyed by the endpoint secret as UTF-8 bytes; \
         during a rotation one `sha256=` value per valid secret, comma-separated",
    ),
    ("X-RELURL-Event", "The event type"),
    ("X-RELURL-Event-Id", "The event_id"),
    ("X-RELURL-Delivery-Attempt", "1 for the first try"),
    ("webhook-id", "Standard Webhooks: the event_id"),
    (
        "webhook-timestamp",
        "Standard Webhooks: unix seconds of this attempt",
    ),
    (
        "webhook-signature",
        "Standard Webhooks: `v1,<base64 HMAC-SHA256 of \"{id}.{timestamp}.{body}\">` keyed by \
         the base64-decoded part of the secret after `whsec_`; one per valid secret, space-separated",
    ),
];

fn operation(event_type: &str) -> utoipa::openapi::path::Operation {
    let body = RequestBodyBuilder::new()
        .required(Some(Required::True))
        .content(JSON, json_content(&event_schema_name(event_type)).build());
    let mut operation = OperationBuilder::new()
        .operation_id(Some(event_type))
        .summary(Some(format!("The {event_type} event")))
        .request_body(Some(body.build()))
        .response(
            "2XX",
            ResponseBuilder::new().description("Delivered; anything else within the timeout"),
        )
        .response(
            "default",
            ResponseBuilder::new().description(
                "Failed attempt (also a timeout, connection or TLS error): retried on the \
                 schedule; `Retry-After` on 429/503 is honoured when it asks for later",
            ),
        );
    for (name, description) in HEADERS {
        let header = ParameterBuilder::new()
            .name(*name)
            .parameter_in(ParameterIn::Header)
            .required(Required::True)
            .description(Some(*description))
            .schema(Some(String::schema()));
        operation = operation.parameter(header);
    }
    operation.build()
}

/// One webhook per event type, keyed by the type.
pub fn section() -> Paths {
    let mut paths = Paths::new();
    for event_type in event_types() {
        let item = PathItem::new(HttpMethod::Post, operation(event_type));
        paths.paths.insert(event_type.to_string(), item);
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_schema_names_read_well() {
        assert_eq!(event_schema_name("link.clicked"), "LinkClickedEvent");
        assert_eq!(event_schema_name("webhook.test"), "WebhookTestEvent");
    }
}
