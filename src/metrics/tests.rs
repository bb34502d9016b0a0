use super::{events::*, *};
use crate::store::StoreError;

/// The value of one series in a Prometheus text rendering (0 when absent).
fn value(text: &str, name: &str, labels: &str) -> f64 {
    let series = if labels.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{labels}}}")
    };
    text.lines()
        .filter_map(|l| l.strip_prefix(series.as_str())?.strip_prefix(' '))
        .find_map(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn names_follow_the_convention() {
    for &(name, kind, help) in ALL {
        assert!(name.starts_with("relurl_"), "{name}");
        assert!(!help.is_empty(), "{name} has no description");
        match kind {
            Kind::Counter => assert!(name.ends_with("_total"), "counter {name} lacks _total"),
            Kind::Gauge => assert!(!name.ends_with("_total"), "gauge {name} ends in _total"),
            Kind::Histogram => assert!(
                name.ends_with("_seconds") || name.ends_with("_size"),
                "histogram {name} has no bucketed unit"
            ),
        }
    }
    let mut names: Vec<_> = ALL.iter().map(|(n, ..)| n).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), ALL.len(), "a metric is declared twice");
}

#[test]
fn every_declared_metric_is_exported_with_its_description() {
    let handle = install();
    // What the running server constructs at start.
    let _ = (
        CacheMetrics::new(),
        RedirectMetrics::new(),
        ClickQueueMetrics::new(0),
        ClickFlushMetrics::new(),
        FraudMetrics::new(),
        EventBusMetrics::new(),
        WebhookMetrics::new(),
        // Cluster mode only (scylla backend).
        ClusterMetrics::new(),
    );
    http_request("/healthz", 200);
    handle.run_upkeep();
    let text = handle.render();
    for &(name, kind, help) in ALL {
        assert!(
            text.contains(&format!("# HELP {name} {help}\n")),
            "{name} has no # HELP line"
        );
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} is not exported as a {kind}"
        );
    }
    for operation in StoreOp::ALL {
        let series = format!(
            "relurl_store_errors_total{{operation=\"{}\"}}",
            operation.as_str()
        );
        assert!(text.contains(&series), "{series} not registered");
    }
}

#[test]
fn an_event_counts_when_it_logs() {
    let handle = install();
    let error = StoreError::transient("test", "unreachable");
    let read = |name, labels| value(&handle.render(), name, labels);
    let store_label = "operation=\"due_expiries\"";

    let before = read(STORE_ERRORS, store_label);
    StoreFailed::new(StoreOp::DueExpiries, &error)
        .code("abc")
        .emit();
    assert!(read(STORE_ERRORS, store_label) - before >= 1.0);

    let (flush, store) = (
        read(CLICKS_FLUSH_ERRORS, ""),
        read(STORE_ERRORS, "operation=\"record_clicks\""),
    );
    ClickFlushRefused {
        error: &error,
        clicks: 3,
    }
    .emit();
    assert!(read(CLICKS_FLUSH_ERRORS, "") - flush >= 1.0);
    assert!(read(STORE_ERRORS, "operation=\"record_clicks\"") - store >= 1.0);

    let spilled = read(WEBHOOK_SPILLED, "");
    DeliveriesSpilled {
        endpoint: uuid::Uuid::nil(),
        deliveries: 5,
    }
    .emit();
    assert!(read(WEBHOOK_SPILLED, "") - spilled >= 5.0);
}
