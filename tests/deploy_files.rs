//! The files users deploy with (docker-compose and its cluster profile and
//! demo services, Dockerfile, HAProxy, Prometheus and Grafana configuration)
//! checked as far as this machine can, without Docker: they parse, name files
//! that exist, configure relurl validly, pass `promtool`, `haproxy -c` and
//! `shellcheck`, the demo's set-up and receiver scripts bring webhooks to the
//! Node receiver, and every dashboard query names a metric the server really
//! exports (read from a live `/metrics`).

mod common;

use std::{collections::BTreeSet, path::Path, process::Command, time::Duration};

use common::{TestServer, cql, receiver};
use serde_json::{Value, json};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> serde_norway::Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    serde_norway::from_str(&text).expect("docker-compose.yml parses")
}

/// The token every relurl service must be given: required, never defaulted.
const ADMIN_TOKEN: &str = "${RELURL_ADMIN_TOKEN:?set RELURL_ADMIN_TOKEN}";

/// A relurl service's configuration as its container reads it: the image's
/// config file and environment (Dockerfile), then the service's environment.
fn service_config(service: &serde_norway::Value) -> relurl::config::Config {
    let env = service["environment"].as_mapping().expect("environment");
    assert_eq!(
        env.get("RELURL_AUTH__ADMIN_TOKEN").and_then(|v| v.as_str()),
        Some(ADMIN_TOKEN),
        "the admin token must be required, not defaulted"
    );
    let image_env = [
        ("RELURL_SERVER__LISTEN", "0.0.0.0:8080"),
        ("RELURL_STORE__PATH", "/var/lib/relurl/data"),
    ];
    let vars = image_env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(env.iter().map(|(k, v)| {
            let value = match v {
                serde_norway::Value::String(s) => {
                    s.replace(ADMIN_TOKEN, "a-token-long-enough-for-the-minimum")
                }
                other => serde_norway::to_string(other).unwrap().trim().to_string(),
            };
            (k.as_str().unwrap().to_string(), value)
        }))
        .map(|(k, v)| (k.into(), v.into()));
    relurl::config::load_with(Some(&root().join("config/relurl.toml")), vars)
        .expect("compose environment is valid configuration")
}

#[test]
fn compose_file_parses_and_names_files_that_exist() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    for name in ["scylla", "relurl", "prometheus", "grafana"] {
        assert!(services.contains_key(name), "service {name} missing");
        assert!(
            services[name].get("profiles").is_none(),
            "{name} belongs to the default stack"
        );
    }
    assert_eq!(compose["services"]["relurl"]["build"].as_str(), Some("."));
    assert!(root().join("Dockerfile").is_file());
    let config = service_config(&compose["services"]["relurl"]);
    assert_eq!(config.store.backend, relurl::config::StoreBackend::Scylla);
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
}

/// The database is not published beyond this machine and no relurl service
/// runs with a token anyone could guess.
#[test]
fn compose_keeps_cql_local_and_requires_the_admin_token() {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    assert!(!text.contains("change-me"), "no default admin token");
    let compose = compose();
    let mut relurl_services = 0;
    for (name, service) in compose["services"].as_mapping().unwrap() {
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let spec = port.as_str().expect("ports as strings");
            if spec.ends_with(":9042") {
                assert!(
                    spec.starts_with("127.0.0.1:"),
                    "{name:?} publishes CQL on every interface: {spec}"
                );
            }
        }
        if let Some(token) = service["environment"].get("RELURL_AUTH__ADMIN_TOKEN") {
            assert_eq!(token.as_str(), Some(ADMIN_TOKEN), "{name:?}");
            relurl_services += 1;
        }
    }
    assert_eq!(relurl_services, 4, "relurl and relurl-1..3");
}

/// The image's `HEALTHCHECK` command (exec form) as its arguments.
fn healthcheck_command() -> Vec<String> {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let joined = dockerfile.replace("\\\n", " ");
    let line = joined
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK "))
        .expect("the image has a HEALTHCHECK");
    let exec = line.split_once(" CMD ").expect("HEALTHCHECK ... CMD ...").1;
    serde_json::from_str(exec.trim()).expect("CMD in exec form")
}

/// The image's healthcheck, run here against a live server in place of the
/// container's port 8080: healthy when /readyz answers, not when nothing does.
#[tokio::test]
async fn image_healthcheck_asks_readyz() {
    let command = healthcheck_command();
    assert!(command.iter().any(|a| a.contains("GET /readyz ")));
    let run = |port: u16| {
        let args: Vec<String> = command
            .iter()
            .map(|a| a.replace("/127.0.0.1/8080", &format!("/127.0.0.1/{port}")))
            .collect();
        async move {
            tokio::process::Command::new(&args[0])
                .args(&args[1..])
                .status()
                .await
                .expect("healthcheck runs")
                .success()
        }
    };
    let server = TestServer::start("").await;
    assert!(
        run(server.addr.port()).await,
        "healthy server reported unhealthy"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert!(!run(closed).await, "nothing listening, yet healthy");
}

/// `--profile cluster`: three relurl nodes on one keyspace behind HAProxy,
/// which checks /readyz, and whose network the nodes trust for client IPs.
#[test]
fn compose_cluster_profile_runs_three_nodes_behind_haproxy() {
    let compose = compose();
    let services = compose["services"].as_mapping().unwrap();
    let in_cluster = |s: &serde_norway::Value| {
        s["profiles"]
            .as_sequence()
            .is_some_and(|p| p.iter().any(|p| p.as_str() == Some("cluster")))
    };
    let nodes: Vec<&str> = services
        .iter()
        .filter(|(_, s)| in_cluster(s) && s.get("environment").is_some())
        .map(|(name, _)| name.as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["relurl-1", "relurl-2", "relurl-3"]);
    let haproxy = &compose["services"]["haproxy"];
    assert!(in_cluster(haproxy), "haproxy runs only with the profile");
    assert!(
        haproxy["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("haproxy:"))
    );
    assert!(
        haproxy["volumes"][0]
            .as_str()
            .is_some_and(|v| v.starts_with("./config/haproxy/haproxy.cfg:"))
    );
    // Addresses HAProxy connects from: its networks' subnets.
    let proxy_nets: Vec<ipnet::IpNet> = haproxy["networks"]
        .as_sequence()
        .expect("haproxy names its networks")
        .iter()
        .flat_map(|net| {
            let net = net.as_str().unwrap();
            compose["networks"][net]["ipam"]["config"]
                .as_sequence()
                .unwrap_or_else(|| panic!("network {net} has no fixed subnet"))
                .iter()
                .map(|c| c["subnet"].as_str().unwrap().parse().unwrap())
        })
        .collect();
    assert!(!proxy_nets.is_empty());

    let haproxy_cfg = std::fs::read_to_string(root().join("config/haproxy/haproxy.cfg")).unwrap();
    let lines: Vec<Vec<&str>> = haproxy_cfg
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let has = |words: &[&str]| lines.iter().any(|l| l.starts_with(words));
    assert!(has(&["balance", "roundrobin"]));
    assert!(has(&["option", "httpchk", "GET", "/readyz"]));
    assert!(has(&[
        "http-request",
        "set-header",
        "X-Forwarded-For",
        "%[src]"
    ]));
    let servers: Vec<&str> = lines
        .iter()
        .filter(|l| l.first() == Some(&"server") && l.contains(&"check"))
        .map(|l| l[2])
        .collect();

    let prometheus = std::fs::read_to_string(root().join("config/prometheus.yml")).unwrap();
    let mut keyspaces = BTreeSet::new();
    for (i, node) in nodes.iter().enumerate() {
        let service = &compose["services"][*node];
        let config = service_config(service);
        assert_eq!(config.store.backend, relurl::config::StoreBackend::Scylla);
        keyspaces.insert(config.store.scylla_keyspace.clone());
        let target = format!("{node}:{}", config.server.listen.port());
        assert_eq!(servers.get(i), Some(&target.as_str()), "haproxy servers");
        assert!(
            prometheus.contains(&format!("\"{target}\"")),
            "{target} not scraped"
        );
        assert!(
            service["networks"]
                .as_sequence()
                .is_some_and(|n| haproxy["networks"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .all(|h| n.contains(h))),
            "{node} is not on HAProxy's network"
        );
        let trusted = &config.server.trusted_proxies;
        for net in &proxy_nets {
            for ip in [net.network(), net.broadcast()] {
                assert!(
                    trusted.iter().any(|c| c.contains(ip)),
                    "{node} does not trust HAProxy's address {ip}"
                );
            }
        }
        let client: std::net::IpAddr = "203.0.113.7".parse().unwrap();
        assert!(
            !trusted.iter().any(|c| c.contains(client)),
            "{node} trusts anyone"
        );
    }
    assert_eq!(
        servers.len(),
        nodes.len(),
        "haproxy balances exactly the nodes"
    );
    assert_eq!(keyspaces.len(), 1, "the nodes share one keyspace");
}

/// Runs `tool args.. config` on a file under the repository; skipped with a
/// message when `tool` is not installed, unless `require_var=1`.
fn check_with(tool: &str, require_var: &str, args: &[&str], config: &str) {
    if Command::new(tool).arg("-v").output().is_err() {
        assert!(
            std::env::var(require_var).as_deref() != Ok("1"),
            "{require_var}=1 but {tool} is not installed"
        );
        eprintln!("deploy files: {tool} not found, check skipped");
        return;
    }
    let out = Command::new(tool)
        .args(args)
        .arg(root().join(config))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{tool}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn haproxy_config_passes_haproxy_check() {
    let args = ["-c", "-f"];
    check_with(
        "haproxy",
        "RELURL_REQUIRE_HAPROXY",
        &args,
        "config/haproxy/haproxy.cfg",
    );
}

#[test]
fn prometheus_config_passes_promtool() {
    let args = ["check", "config"];
    check_with(
        "promtool",
        "RELURL_REQUIRE_PROMTOOL",
        &args,
        "config/prometheus.yml",
    );
}

fn dashboard_metrics() -> BTreeSet<String> {
    let text =
        std::fs::read_to_string(root().join("config/grafana/dashboards/relurl.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard JSON parses");
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating");
    let instance = variables
        .iter()
        .find(|v| v["name"] == "instance")
        .expect("an $instance variable");
    let mut names = metric_names(instance["definition"].as_str().unwrap());
    assert!(
        names.len() == 1
            && instance["definition"]
                .as_str()
                .unwrap()
                .contains(", instance)")
    );
    // Panels in order; a row's own `panels` hold it only when collapsed.
    let panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| std::iter::once(p).chain(p["panels"].as_array().into_iter().flatten()))
        .collect();
    let mut row = String::new();
    let mut in_cluster_row = BTreeSet::new();
    for panel in panels {
        if panel["type"] == "row" {
            row = panel["title"].as_str().unwrap().to_string();
            continue;
        }
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let found = metric_names(expr);
            for name in &found {
                for (at, _) in expr.match_indices(name.as_str()) {
                    let selector = &expr[at + name.len()..];
                    let selector = &selector[..selector.find('}').unwrap_or(0)];
                    assert!(
                        selector.starts_with('{') && selector.contains(r#"instance=~"$instance""#),
                        "{expr}: {name} is not narrowed to $instance"
                    );
                }
            }
            if row == "Cluster" {
                in_cluster_row.extend(found.iter().cloned());
            }
            names.extend(found);
        }
    }
    for name in [
        "relurl_cluster_live_nodes",
        "relurl_cluster_leases_held",
        "relurl_cluster_handovers_total",
        "relurl_cluster_change_feed_lag_seconds",
        "relurl_cluster_errors_total",
    ] {
        assert!(
            in_cluster_row.contains(name),
            "{name} has no panel in the Cluster row"
        );
    }
    names
}

fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("relurl_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

#[tokio::test]
async fn every_dashboard_query_names_an_exported_metric() {
    let metrics = dashboard_metrics();
    assert!(metrics.len() >= 10, "{metrics:?}");
    // Cluster gauges exist only in cluster mode: on a CQL server when there is one.
    let store = cql::node().map(|node| cql::backend_config(&node).0);
    // Exercise every stage once so each metric has a sample.
    let server = TestServer::start(&format!(
        "{}[webhooks]\nallow_private_targets = true\n[redirect]\ndurable_ack = true\n",
        store.as_deref().unwrap_or_default()
    ))
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
        if store.is_none() && name.starts_with("relurl_cluster_") {
            eprintln!("deploy files: {name} not checked (no CQL server, no cluster mode)");
            continue;
        }
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

/// The demo: `receiver` (examples/receiver-node) and the one-shot `setup`
/// that wires a first endpoint to it, with the admin token required.
#[test]
fn compose_demo_wires_setup_to_the_receiver() {
    let compose = compose();
    let services = &compose["services"];
    for name in ["receiver", "setup"] {
        assert!(
            services[name].get("profiles").is_none(),
            "{name} belongs to the default stack"
        );
        for arg in services[name]["command"].as_sequence().expect("command") {
            if let Some(script) = arg.as_str().unwrap().strip_prefix("/deploy/") {
                assert!(root().join("deploy").join(script).is_file(), "{script}");
            }
        }
    }
    let setup = &services["setup"];
    assert_eq!(setup["restart"].as_str(), Some("no"), "setup runs once");
    assert_eq!(
        setup["environment"]["RELURL_ADMIN_TOKEN"].as_str(),
        Some(ADMIN_TOKEN),
        "the admin token must be required, not defaulted"
    );
    assert_eq!(
        setup["depends_on"]["receiver"]["condition"].as_str(),
        Some("service_healthy"),
        "setup waits until the receiver has cleared a stale secret"
    );
    assert!(setup["depends_on"].get("relurl").is_some());
    assert!(services["receiver"].get("healthcheck").is_some());
    // Both sides of the secret hand-over share the volume.
    for name in ["receiver", "setup"] {
        let volumes: Vec<&str> = services[name]["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(volumes.contains(&"setup:/setup"), "{name}: {volumes:?}");
    }
    assert!(compose["volumes"].get("setup").is_some());
    // relurl may deliver to the receiver's private address on the compose network.
    let config = service_config(&services["relurl"]);
    assert!(config.webhooks.allow_private_targets);

    // The receiver listens where setup points the endpoint, a port no service publishes.
    let server_js =
        std::fs::read_to_string(root().join("examples/receiver-node/server.js")).unwrap();
    assert!(
        server_js.contains("process.env.PORT || 4000"),
        "receiver default port"
    );
    let setup_sh = std::fs::read_to_string(root().join("deploy/compose-setup.sh")).unwrap();
    assert!(
        setup_sh.contains("http://receiver:4000"),
        "setup's receiver URL"
    );
    for (name, service) in services.as_mapping().unwrap() {
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let host_port = port.as_str().unwrap().rsplit(':').nth(1).unwrap();
            assert_ne!(host_port, "4000", "{name:?} publishes the receiver's port");
        }
    }
}

#[test]
fn compose_scripts_pass_shellcheck() {
    for script in ["deploy/compose-setup.sh", "deploy/compose-receiver.sh"] {
        check_with("shellcheck", "RELURL_REQUIRE_SHELLCHECK", &[], script);
    }
}

/// What `docker compose up` does for the demo, on this machine: the receiver
/// script and the set-up script, against a relurl that allows private targets
/// (as the compose file sets), and the webhooks arrive at the receiver.
#[tokio::test(flavor = "multi_thread")]
async fn compose_demo_scripts_bring_webhooks_to_the_receiver() {
    use std::os::unix::process::CommandExt;

    if !common::node::available("compose demo") {
        return;
    }
    let server = TestServer::start("[webhooks]\nallow_private_targets = true\n").await;
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("setup");
    std::fs::create_dir(&shared).unwrap();
    // A secret from an earlier run, which the receiver must not use.
    std::fs::write(shared.join("secret"), "whsec_c3RhbGU=").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let script = |name: &str| {
        let mut command = Command::new("sh");
        command
            .arg(root().join("deploy").join(name))
            .env("SHARED", &shared)
            .stdin(std::process::Stdio::null())
            .process_group(0);
        command
    };
    let ready = tmp.path().join("ready");
    let receiver = script("compose-receiver.sh")
        .env("SRC", root().join("examples/receiver-node"))
        .env("WORK", tmp.path().join("receiver"))
        .env("READY", &ready)
        .env("PORT", port.to_string())
        .spawn()
        .unwrap();
    let _receiver = common::process::Group(receiver);
    // The healthcheck setup waits for.
    common::wait_until(
        Duration::from_secs(30),
        "the receiver's healthcheck",
        || async { ready.exists().then_some(()) },
    )
    .await;

    let setup = script("compose-setup.sh")
        .env("RELURL", server.url(""))
        .env("RECEIVER", format!("http://127.0.0.1:{port}"))
        .env("RELURL_ADMIN_TOKEN", common::ADMIN)
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&setup.stdout),
        String::from_utf8_lossy(&setup.stderr)
    );
    assert!(setup.status.success(), "setup failed:\n{log}");
    assert!(log.contains("answered 302"), "{log}");

    let expected = ["link.clicked", "link.created", "webhook.test"];
    let seen = common::node::wait_for_events(port, &expected, Duration::from_secs(60)).await;
    assert_eq!(seen["rejected"], 0, "{seen}");
}
