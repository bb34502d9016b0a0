//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of every route, built
//! from the code. Request bodies are described by the handlers' own request
//! types (`ToSchema` derives next to them), answers by [`schemas`], webhook
//! payloads and headers by [`webhooks`]. [`OPERATIONS`] lists every route the
//! router serves; `tests/openapi.rs` fails when the router and it disagree.

mod operations;
mod schemas;
mod stats;
mod webhooks;

use operations::Auth;
pub use operations::{OPERATIONS, Operation};
// Field schemas the request types' derives refer to.
pub use schemas::{
    code_or_null, event_names, event_names_or_null, expiry, fraud_policy, redirect_status_or_null,
};

use std::sync::LazyLock;

use axum::response::IntoResponse;
use http::{HeaderValue, header};
use serde_json::json;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        Components, ContentBuilder, HttpMethod, Info, OpenApi, OpenApiBuilder, PathItem, Paths,
        Ref, RefOr, Required, ResponseBuilder, Tag, Type,
        extensions::Extensions,
        link::LinkBuilder,
        path::{OperationBuilder, ParameterBuilder, ParameterIn},
        request_body::RequestBodyBuilder,
        schema::{Object, ObjectBuilder, Schema},
        security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
    },
};

use super::{accounts, keys, links, recover, webhooks as endpoints};
use crate::domain::{REDIRECT_STATUSES, RESERVED_CODES};

const JSON: &str = "application/json";

/// The error statuses `op` can answer: those of its kind, then its own.
fn error_statuses(op: &Operation) -> Vec<u16> {
    let mut statuses = Vec::new();
    if op.body.is_some() || op.paged {
        statuses.push(400);
    }
    if op.auth != Auth::Open {
        statuses.extend([401, 403]);
    }
    if op.path.contains('{') {
        statuses.push(404);
    }
    if op.body.is_some() {
        statuses.extend([413, 422]);
    }
    if op.auth != Auth::Open {
        statuses.extend([429, 503]);
    }
    statuses.extend(op.extra);
    statuses.sort_unstable();
    statuses.dedup();
    statuses
}

/// The shared error answers, by status: name and meaning.
const ERRORS: &[(u16, &str, &str)] = &[
    (
        400,
        "BadRequest",
        "Malformed JSON or query parameters (`field` names the parameter)",
    ),
    (401, "Unauthorized", "No or bad credentials"),
    (
        403,
        "Forbidden",
        "Credentials not allowed here (the admin token on an account route, an API key on an admin route)",
    ),
    (
        404,
        "NotFound",
        "Not found (also another account's objects)",
    ),
    (405, "MethodNotAllowed", "Method not allowed on this path"),
    (
        409,
        "Conflict",
        "Conflict: code taken, a limit reached, nothing to retry",
    ),
    (
        413,
        "PayloadTooLarge",
        "Body larger than `server.max_body_bytes`",
    ),
    (
        422,
        "ValidationFailed",
        "Well-formed but invalid (`field` names the field)",
    ),
    (
        429,
        "RateLimited",
        "Rate limited; retry after `Retry-After` seconds",
    ),
    (503, "Unavailable", "The store is unavailable; try again"),
];

fn error_name(status: u16) -> &'static str {
    ERRORS
        .iter()
        .find(|(s, ..)| *s == status)
        .map_or("Error", |(_, name, _)| name)
}

fn json_content(schema: &str) -> ContentBuilder {
    ContentBuilder::new().schema(Some(Ref::from_schema_name(schema)))
}

fn error_response(status: u16, description: &str) -> ResponseBuilder {
    let mut response = ResponseBuilder::new()
        .description(description)
        .content(JSON, json_content("Error").build());
    if status == 429 {
        let seconds = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1));
        let retry = utoipa::openapi::header::HeaderBuilder::new()
            .schema(Some(seconds))
            .description(Some("Whole seconds to wait"));
        response = response.header("Retry-After", retry.build());
    }
    response
}

fn parameter(name: &str, place: ParameterIn, schema: impl Into<RefOr<Schema>>) -> ParameterBuilder {
    let required = if place == ParameterIn::Path {
        Required::True
    } else {
        Required::False
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(place)
        .required(required)
        .schema(Some(schema))
}

fn uuid() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Uuid,
        )))
        .build()
}

fn parameters(op: &Operation) -> Vec<ParameterBuilder> {
    let mut out = Vec::new();
    for segment in op.path.split('/') {
        match segment {
            "{code}" => out.push(parameter("code", ParameterIn::Path, schemas::code())),
            "{id}" => out.push(parameter("id", ParameterIn::Path, uuid())),
            "{event_id}" => out.push(parameter("event_id", ParameterIn::Path, uuid())),
            _ => {}
        }
    }
    if op.paged {
        let limit = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(1000))
            .default(Some(50.into()));
        out.push(
            parameter("limit", ParameterIn::Query, limit)
                .description(Some("Items per page, 1 to 1000 (default 50)")),
        );
        out.push(
            parameter(
                "cursor",
                ParameterIn::Query,
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1)),
            )
            .description(Some("`next_cursor` of the previous page")),
        );
    }
    if op.id == "list_deliveries" {
        let status = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["pending", "succeeded", "failed"]));
        out.push(
            parameter("status", ParameterIn::Query, status)
                .description(Some("Only attempts with this status")),
        );
    }
    out.extend(stats::query_parameters(op.id));
    if op.id == "stream_clicks" {
        out.push(
            parameter("code", ParameterIn::Query, schemas::code())
                .description(Some("Only this link's clicks")),
        );
        let token = ObjectBuilder::new().schema_type(Type::String);
        out.push(
            parameter("token", ParameterIn::Query, token)
                .description(Some("A stream token, instead of the Authorization header")),
        );
    }
    out
}

fn operation(op: &Operation) -> utoipa::openapi::path::Operation {
    let (status, schema) = op.ok;
    let mut ok = ResponseBuilder::new().description("Success");
    for (name, link) in links(op) {
        ok = ok.link(name, link.build());
    }
    if let Some(schema) = schema {
        ok = ok.content(JSON, json_content(schema).build());
    }
    match op.id {
        "metrics" => ok = ok.content("text/plain", ContentBuilder::new().build()),
        "openapi" => ok = ok.content(JSON, ContentBuilder::new().build()),
        "list_clicks" => ok = ok.content("text/csv", ContentBuilder::new().build()),
        "stream_clicks" => ok = ok.content("text/event-stream", ContentBuilder::new().build()),
        _ => {}
    }
    let mut builder = OperationBuilder::new()
        .operation_id(Some(op.id))
        .tag(op.tag)
        .summary(Some(op.summary))
        .parameters(Some(parameters(op)))
        .response(status.to_string(), ok);
    for status in error_statuses(op) {
        let reference = Ref::new(format!("#/components/responses/{}", error_name(status)));
        builder = builder.response(status.to_string(), reference);
    }
    if let Some(body) = op.body {
        let body = RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content(JSON, json_content(body).build());
        builder = builder.request_body(Some(body.build()));
    }
    builder = match op.auth {
        Auth::Open => builder.securities(Some([])),
        Auth::Admin => builder.security(SecurityRequirement::new("admin_token", [""; 0])),
        Auth::Account => builder.security(SecurityRequirement::new("api_key", [""; 0])),
    };
    builder.build()
}

/// What a success answer lets a client call next (OpenAPI links; schemathesis
/// follows them in its stateful phase): a made link's and endpoint's own
/// routes, and a test event's retry.
fn links(from: &Operation) -> Vec<(String, LinkBuilder)> {
    let (prefix, parameter, value) = match from.id {
        "create_link" => ("/v1/links/{code}", "code", "$response.body#/code"),
        "create_webhook" => ("/v1/webhooks/{id}", "id", "$response.body#/id"),
        "test_webhook" => (
            "/v1/webhooks/{id}/deliveries/{event_id}",
            "event_id",
            "$response.body#/event_id",
        ),
        _ => return Vec::new(),
    };
    OPERATIONS
        .iter()
        .filter(|to| to.path.starts_with(prefix))
        .map(|to| {
            let mut link = LinkBuilder::new()
                .operation_id(to.id)
                .parameter(parameter, value);
            if from.id == "test_webhook" {
                link = link.parameter("id", "$request.path.id");
            }
            (to.id.to_string(), link)
        })
        .collect()
}

fn method(name: &str) -> HttpMethod {
    match name {
        "post" => HttpMethod::Post,
        "patch" => HttpMethod::Patch,
        "delete" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

/// `GET|HEAD /{code}`, served before the router.
fn redirect() -> PathItem {
    // `not` keeps generated codes off the reserved words, which other routes
    // answer; utoipa has no builder for it, and extensions serialise flattened.
    let not_reserved = Extensions::from_iter([("not", json!({ "enum": RESERVED_CODES }))]);
    let code = schemas::code()
        .description(Some("Not a reserved word"))
        .extensions(Some(not_reserved));
    let location = utoipa::openapi::header::HeaderBuilder::new()
        .schema(Some(String::schema()))
        .description(Some(
            "The destination, with the request's query string appended",
        ))
        .build();
    let mut operation = OperationBuilder::new()
        .tag("redirect")
        .summary(Some("Follow a short link"))
        .description(Some(
            "Answers with the link's `redirect_status` and `Location`, before any I/O. \
             `HEAD` answers the same without counting a click. Other methods: 405 with `Allow: GET, HEAD`.",
        ))
        .parameter(parameter("code", ParameterIn::Path, code))
        .securities(Some([]));
    for status in REDIRECT_STATUSES {
        let response = ResponseBuilder::new()
            .description("Redirect to the destination")
            .header("Location", location.clone());
        operation = operation.response(status.to_string(), response);
    }
    let gone = error_response(410, "The link is disabled or expired");
    operation = operation
        .response("404", Ref::new("#/components/responses/NotFound"))
        .response("410", gone)
        .response("503", Ref::new("#/components/responses/Unavailable"));
    let get = operation.operation_id(Some("redirect")).build();
    let mut head = get.clone();
    head.operation_id = Some("redirect_head".into());
    let mut item = PathItem::new(HttpMethod::Get, get);
    item.head = Some(head);
    item
}

fn components() -> Components {
    let mut components = utoipa::openapi::ComponentsBuilder::new();
    let bearer = |description: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description))
                .build(),
        )
    };
    components = components
        .security_scheme("api_key", bearer("An account's API key (`rl_…`)"))
        .security_scheme("admin_token", bearer("The server's `auth.admin_token`"));
    for (status, name, description) in ERRORS {
        components = components.response(*name, error_response(*status, description));
    }
    let mut schemas: Vec<(String, RefOr<Schema>)> = Vec::new();
    macro_rules! add {
        ($($ty:ty),* $(,)?) => {$(
            <$ty as ToSchema>::schemas(&mut schemas);
            schemas.push((<$ty as ToSchema>::name().into_owned(), <$ty as PartialSchema>::schema()));
        )*};
    }
    add!(
        accounts::NewAccount,
        links::NewLink,
        links::LinkPatch,
        keys::NewKey,
        endpoints::NewEndpoint,
        endpoints::EndpointPatch,
        schemas::Error,
        schemas::Health,
        schemas::Readiness,
        schemas::AccountCreated,
        schemas::Link,
        schemas::Click,
        schemas::Incident,
        schemas::ApiKey,
        schemas::Endpoint,
        schemas::TestQueued,
        schemas::RetryQueued,
        recover::RecoverWindow,
        schemas::Recovered,
        schemas::StreamToken,
        schemas::Attempt,
        stats::Stats,
    );
    webhooks::schemas(&mut schemas);
    for (page, item) in [
        ("LinkPage", "Link"),
        ("ClickPage", "Click"),
        ("IncidentPage", "Incident"),
        ("ApiKeyPage", "ApiKey"),
        ("EndpointPage", "Endpoint"),
        ("AttemptPage", "Attempt"),
    ] {
        schemas.push((page.into(), schemas::page(item).into()));
    }
    components.schemas_from_iter(schemas).build()
}

/// The whole document.
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    for op in OPERATIONS {
        paths.add_path_operation(op.path, vec![method(op.method)], operation(op));
    }
    paths.paths.insert("/{code}".into(), redirect());
    let info = Info::builder()
        .title("relurl")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "A link shortener whose every click becomes a signed webhook. \
             Every error answers `{\"error\": {\"code\", \"message\", \"field\"?}}`. \
             Any path answers 405 (`method_not_allowed`) to a method it does not serve, \
             408 when a body arrives too slowly, 414/431 to an oversized request head.",
        ))
        .build();
    let tags = [
        "links",
        "stats",
        "clicks",
        "webhooks",
        "keys",
        "fraud",
        "accounts",
        "operations",
        "redirect",
    ]
    .map(Tag::new);
    OpenApiBuilder::new()
        .info(info)
        .paths(paths)
        .components(Some(components()))
        .tags(Some(tags))
        .webhooks(Some(webhooks::section()))
        .build()
}

/// The document as served: built once, pretty-printed (the same bytes as `docs/openapi.json`).
pub fn document_json() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(|| {
        let mut text = document().to_pretty_json().unwrap_or_default();
        text.push('\n');
        text
    });
    &TEXT
}

pub async fn serve() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
        document_json(),
    )
}
