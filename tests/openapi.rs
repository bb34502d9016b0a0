//! The served OpenAPI document: the same as the checked-in `docs/openapi.json`,
//! and describing every route the router serves, every event type and every
//! signature header.
//! `RELURL_UPDATE_OPENAPI=1 cargo test --test openapi` rewrites the copy.

mod common;

use std::collections::BTreeSet;

use common::TestServer;
use http::StatusCode;
use relurl::events::EventType;
use serde_json::Value;

const COPY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
const ROUTER: &str = include_str!("../src/http/mod.rs");

#[tokio::test]
async fn the_served_document_is_the_checked_in_copy() {
    let server = TestServer::start("").await;
    let served = server.get("/v1/openapi.json", None).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.header("content-type"), Some("application/json"));
    let text = relurl::http::openapi::document_json();
    assert_eq!(served.body, serde_json::from_str::<Value>(text).unwrap());
    assert_eq!(served.body["openapi"], "3.1.0");

    if std::env::var_os("RELURL_UPDATE_OPENAPI").is_some() {
        std::fs::write(COPY, text).expect("write docs/openapi.json");
        return;
    }
    let copy = std::fs::read_to_string(COPY).unwrap_or_default();
    assert!(
        copy == text,
        "docs/openapi.json differs from the served document; regenerate it with\n    \
         RELURL_UPDATE_OPENAPI=1 cargo test --test openapi\nand commit the result"
    );
}

/// `(method, path)` of every `.route(...)` in `router`, read from its source,
/// so a route added there without an entry in the document fails here.
fn router_routes() -> BTreeSet<(String, String)> {
    let body = ROUTER
        .split_once("pub fn router(")
        .and_then(|(_, rest)| rest.split_once("\n}\n"))
        .expect("router function in src/http/mod.rs")
        .0;
    let mut routes = BTreeSet::new();
    for call in body.split(".route(").skip(1) {
        let path = call.split('"').nth(1).expect("route path literal");
        // The handlers of this route: up to the next `.route(` or the fallbacks.
        let handlers = call.split(".fallback(").next().unwrap_or(call);
        for method in ["get", "post", "patch", "put", "delete", "head"] {
            let calls = [
                format!("({method}("),
                format!(".{method}("),
                format!(" {method}("),
            ];
            if calls.iter().any(|c| handlers.contains(c.as_str())) {
                routes.insert((method.to_string(), path.to_string()));
            }
        }
    }
    assert!(routes.len() > 20, "read too few routes: {routes:?}");
    routes
}

#[test]
fn every_route_of_the_router_is_documented_and_nothing_else() {
    let document: Value = serde_json::from_str(relurl::http::openapi::document_json()).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        // Served before the router.
        if path == "/{code}" {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let routes = router_routes();
    for (_, path) in &routes {
        let label = format!("\"{path}\" => ");
        assert!(
            ROUTER.contains(&label),
            "{path} has no metrics label in route_label"
        );
    }
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&routes).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "routes without docs: {undocumented:?}; docs without a route: {unserved:?} \
         (add the route to OPERATIONS in src/http/openapi.rs)"
    );
    let redirect = &document["paths"]["/{code}"];
    for status in ["301", "302", "307", "308", "404", "410"] {
        assert!(redirect["get"]["responses"][status].is_object(), "{status}");
    }
}

#[test]
fn operations_name_their_auth_errors_and_paging() {
    let document: Value = serde_json::from_str(relurl::http::openapi::document_json()).unwrap();
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["scheme"], "bearer");
    let limited = &document["components"]["responses"]["RateLimited"];
    assert!(limited["headers"]["Retry-After"].is_object());
    let list = &document["paths"]["/v1/links"]["get"];
    let params: Vec<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["limit", "cursor", "tag", "q"]);
    for status in ["200", "400", "401", "403", "429"] {
        assert!(list["responses"][status].is_object(), "{status}");
    }
    let page = &document["components"]["schemas"]["LinkPage"];
    assert!(
        page["required"]
            .as_array()
            .unwrap()
            .contains(&"next_cursor".into())
    );
    let create = &document["paths"]["/v1/links"]["post"];
    for status in ["201", "400", "409", "413", "422"] {
        assert!(create["responses"][status].is_object(), "{status}");
    }
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/NewLink"
    );
    assert_eq!(
        document["paths"]["/healthz"]["get"]["security"],
        Value::Array(vec![])
    );
}

#[test]
fn every_event_type_is_a_webhook_with_the_signature_headers() {
    let document: Value = serde_json::from_str(relurl::http::openapi::document_json()).unwrap();
    let webhooks = document["webhooks"].as_object().unwrap();
    let mut expected: BTreeSet<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    expected.insert("link.deleted");
    let found: BTreeSet<&str> = webhooks.keys().map(String::as_str).collect();
    assert_eq!(found, expected);
    for (event_type, item) in webhooks {
        let post = &item["post"];
        let headers: BTreeSet<&str> = post["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for header in [
            "X-RELURL-Signature",
            "X-RELURL-Event",
            "X-RELURL-Event-Id",
            "X-RELURL-Delivery-Attempt",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
        ] {
            assert!(headers.contains(header), "{event_type}: {header}");
        }
        let schema = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap();
        let name = schema.rsplit('/').next().unwrap();
        let event = &document["components"]["schemas"][name];
        assert_eq!(event["properties"]["type"]["enum"][0], *event_type);
    }
}
