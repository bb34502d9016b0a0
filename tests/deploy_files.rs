//! The files users deploy with (docker-compose, Dockerfile, Prometheus and
//! Grafana configuration) checked as far as this machine can: they parse, name
//! files that exist, pass `promtool`, and every dashboard query names a metric
//! the server really exports (read from a live `/metrics`).

mod common;

use std::{collections::BTreeSet, path::Path, process::Command, time::Duration};

use common::{TestServer, receiver};
use serde_json::{Value, json};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn compose_file_parses_and_names_files_that_exist() {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let compose: serde_norway::Value =
        serde_norway::from_str(&text).expect("docker-compose.yml parses");
    let services = compose["services"].as_mapping().expect("services");
    for name in ["scylla", "relurl", "prometheus", "grafana"] {
        assert!(services.contains_key(name), "service {name} missing");
    }
    assert_eq!(compose["services"]["relurl"]["build"].as_str(), Some("."));
    assert!(root().join("Dockerfile").is_file());
    let env = &compose["services"]["relurl"]["environment"];
    assert_eq!(env["RELURL_STORE__BACKEND"].as_str(), Some("scylla"));
    for (_, service) in services {
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let spec = volume.as_str().unwrap();
            let host = spec.split(':').next().unwrap();
            if host.starts_with("./") {
                assert!(
                    root().join(host).exists(),
                    "{host} (in {spec}) does not exist"
                );
            }
        }
    }
    // The Dockerfile copies what exists.
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        for source in line
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .split_last()
            .unwrap()
            .1
        {
            assert!(
                root().join(source).exists(),
                "Dockerfile copies missing {source}"
            );
        }
    }
    // The environment the compose file sets is configuration relurl accepts.
    let mut figment = figment::Figment::from(figment::providers::Serialized::defaults(
        relurl::config::RawConfig::default(),
    ));
    for (key, value) in env.as_mapping().unwrap() {
        let key = key
            .as_str()
            .unwrap()
            .trim_start_matches("RELURL_")
            .to_lowercase()
            .replace("__", ".");
        let value = value
            .as_str()
            .unwrap()
            .replace("${RELURL_ADMIN_TOKEN:-change-me}", "change-me");
        let value: figment::value::Value = value.parse().unwrap();
        figment = figment.merge((key, value));
    }
    relurl::config::from_figment(figment).expect("compose environment is valid configuration");
}

#[test]
fn prometheus_config_passes_promtool() {
    let available = Command::new("promtool").arg("--version").output().is_ok();
    if !available {
        assert!(
            std::env::var("RELURL_REQUIRE_PROMTOOL").as_deref() != Ok("1"),
            "RELURL_REQUIRE_PROMTOOL=1 but promtool is not installed"
        );
        eprintln!("deploy files: promtool not found, check skipped");
        return;
    }
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(root().join("config/prometheus.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn dashboard_metrics() -> BTreeSet<String> {
    let text =
        std::fs::read_to_string(root().join("config/grafana/dashboards/relurl.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard JSON parses");
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("relurl_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                names.insert(name);
            }
        }
    }
    names
}

#[tokio::test]
async fn every_dashboard_query_names_an_exported_metric() {
    let metrics = dashboard_metrics();
    assert!(metrics.len() >= 10, "{metrics:?}");
    // Exercise every stage once so each metric has a sample.
    let server = TestServer::start(
        "[webhooks]\nallow_private_targets = true\n[redirect]\ndurable_ack = true\n",
    )
    .await;
    let key = server.account("acme").await;
    let sink = receiver::Receiver::start().await;
    let hook = server
        .post(
            "/v1/webhooks",
            Some(&key),
            json!({"url": sink.url("/"), "events": ["*"]}),
        )
        .await;
    assert_eq!(hook.status, http::StatusCode::CREATED);
    server
        .link(
            &key,
            json!({"destination": "https://example.com", "code": "dash"}),
        )
        .await;
    server.visit("/dash", &[]).await;
    sink.wait_for(2, Duration::from_secs(10)).await;
    let text = server.metrics_text().await;
    let exported: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for name in &metrics {
        let base = name.trim_end_matches("_bucket");
        let found = exported.contains(name.as_str())
            || exported.contains(base)
            || text.contains(&format!("# TYPE {base} "));
        assert!(
            found,
            "dashboard queries {name}, which /metrics does not export"
        );
    }
}
