//! Every route the router serves, as a table: who may call it, what it
//! takes, what it answers on success and which errors are its own.

/// Who may call an operation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Open,
    Admin,
    Account,
}

/// One operation of the router: what it takes and what it answers besides
/// the errors every operation of its kind can answer (see [`error_statuses`]).
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub auth: Auth,
    /// Request body schema (JSON), if any.
    pub body: Option<&'static str>,
    /// `?limit=&cursor=` paging.
    pub paged: bool,
    /// Success status and its JSON schema (`None`: no body).
    pub ok: (u16, Option<&'static str>),
    /// Error statuses particular to this operation.
    pub extra: &'static [u16],
}

const fn op(method: &'static str, path: &'static str, id: &'static str) -> Operation {
    Operation {
        method,
        path,
        id,
        tag: "",
        summary: "",
        auth: Auth::Account,
        body: None,
        paged: false,
        ok: (200, None),
        extra: &[],
    }
}

impl Operation {
    const fn tag(mut self, tag: &'static str, summary: &'static str) -> Self {
        self.tag = tag;
        self.summary = summary;
        self
    }
    const fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }
    const fn body(mut self, schema: &'static str) -> Self {
        self.body = Some(schema);
        self
    }
    const fn paged(mut self) -> Self {
        self.paged = true;
        self
    }
    const fn ok(mut self, status: u16, schema: Option<&'static str>) -> Self {
        self.ok = (status, schema);
        self
    }
    const fn extra(mut self, statuses: &'static [u16]) -> Self {
        self.extra = statuses;
        self
    }
}

/// Every route of [`crate::http::router`], method by method.
pub const OPERATIONS: &[Operation] = &[
    op("get", "/healthz", "healthz")
        .tag("operations", "Liveness")
        .auth(Auth::Open)
        .ok(200, Some("Health")),
    op("get", "/readyz", "readyz")
        .tag(
            "operations",
            "Readiness: click shards running, store reachable",
        )
        .auth(Auth::Open)
        .ok(200, Some("Readiness"))
        .extra(&[503]),
    op("get", "/metrics", "metrics")
        .tag("operations", "Prometheus metrics, text format")
        .auth(Auth::Open),
    op("get", "/v1/openapi.json", "openapi")
        .tag("operations", "This document")
        .auth(Auth::Open),
    op("post", "/v1/accounts", "create_account")
        .tag(
            "accounts",
            "Create an account and its first API key (admin token only)",
        )
        .auth(Auth::Admin)
        .body("NewAccount")
        .ok(201, Some("AccountCreated")),
    op("post", "/v1/links", "create_link")
        .tag("links", "Create a link; emits link.created")
        .body("NewLink")
        .ok(201, Some("Link"))
        .extra(&[409]),
    op("get", "/v1/links", "list_links")
        .tag("links", "The account's links, newest first")
        .paged()
        .ok(200, Some("LinkPage")),
    op("get", "/v1/links/{code}", "read_link")
        .tag("links", "A link with its click count")
        .ok(200, Some("Link")),
    op("patch", "/v1/links/{code}", "update_link")
        .tag(
            "links",
            "Change a link; emits link.updated with the changes",
        )
        .body("LinkPatch")
        .ok(200, Some("Link")),
    op("delete", "/v1/links/{code}", "delete_link")
        .tag("links", "Delete a link")
        .ok(204, None),
    op("get", "/v1/links/{code}/clicks", "list_clicks")
        .tag("links", "A link's clicks, newest first (or as CSV)")
        .paged()
        .ok(200, Some("ClickPage")),
    op("get", "/v1/links/{code}/stats", "link_stats")
        .tag("stats", "A link's clicks by hour or day, with breakdowns")
        .ok(200, Some("Stats"))
        .extra(&[400]),
    op("get", "/v1/stats", "account_stats")
        .tag(
            "stats",
            "The account's clicks by hour or day, with breakdowns",
        )
        .ok(200, Some("Stats"))
        .extra(&[400]),
    op("get", "/v1/fraud/incidents", "list_fraud_incidents")
        .tag(
            "fraud",
            "Links the fraud detector acted on, and what it did",
        )
        .paged()
        .ok(200, Some("IncidentPage")),
    op("post", "/v1/keys", "create_key")
        .tag(
            "keys",
            "Create an API key (the whole key is shown only here)",
        )
        .body("NewKey")
        .ok(201, Some("ApiKey"))
        .extra(&[409]),
    op("get", "/v1/keys", "list_keys")
        .tag("keys", "The account's API keys")
        .paged()
        .ok(200, Some("ApiKeyPage")),
    op("delete", "/v1/keys/{id}", "revoke_key")
        .tag("keys", "Revoke an API key (not the account's last one)")
        .ok(204, None)
        .extra(&[409]),
    op("post", "/v1/webhooks", "create_webhook")
        .tag(
            "webhooks",
            "Create a webhook endpoint (its secret is shown only here)",
        )
        .body("NewEndpoint")
        .ok(201, Some("Endpoint"))
        .extra(&[409]),
    op("get", "/v1/webhooks", "list_webhooks")
        .tag("webhooks", "The account's webhook endpoints, oldest first")
        .paged()
        .ok(200, Some("EndpointPage")),
    op("get", "/v1/webhooks/{id}", "read_webhook")
        .tag("webhooks", "A webhook endpoint")
        .ok(200, Some("Endpoint")),
    op("patch", "/v1/webhooks/{id}", "update_webhook")
        .tag("webhooks", "Change a webhook endpoint")
        .body("EndpointPatch")
        .ok(200, Some("Endpoint"))
        .extra(&[409]),
    op("delete", "/v1/webhooks/{id}", "delete_webhook")
        .tag("webhooks", "Delete a webhook endpoint")
        .ok(204, None),
    op(
        "post",
        "/v1/webhooks/{id}/rotate-secret",
        "rotate_webhook_secret",
    )
    .tag(
        "webhooks",
        "New signing secret; the previous one keeps signing for 24 h",
    )
    .ok(200, Some("Endpoint"))
    .extra(&[409]),
    op("post", "/v1/webhooks/{id}/test", "test_webhook")
        .tag("webhooks", "Send a webhook.test event to the endpoint now")
        .ok(202, Some("TestQueued")),
    op("get", "/v1/webhooks/{id}/deliveries", "list_deliveries")
        .tag("webhooks", "The endpoint's delivery attempts, newest first")
        .paged()
        .ok(200, Some("AttemptPage")),
    op(
        "post",
        "/v1/webhooks/{id}/deliveries/{event_id}/retry",
        "retry_delivery",
    )
    .tag("webhooks", "Deliver a failed event again now")
    .ok(202, Some("RetryQueued"))
    .extra(&[409]),
    op("post", "/v1/webhooks/{id}/recover", "recover_deliveries")
        .tag(
            "webhooks",
            "Deliver again every failed delivery created in a time window",
        )
        .body("RecoverWindow")
        .ok(202, Some("Recovered"))
        .extra(&[409]),
    op("post", "/v1/clicks/stream-token", "create_stream_token")
        .tag(
            "clicks",
            "A stream token: opens click streams for 60 s without a header",
        )
        .ok(201, Some("StreamToken")),
    op("get", "/v1/clicks/stream", "stream_clicks")
        .tag(
            "clicks",
            "The account's clicks as server-sent events, live (API key or ?token=)",
        )
        .extra(&[404]),
];
