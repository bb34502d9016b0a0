use std::{ffi::OsString, time::Duration};

use super::*;

fn errors_of(toml: &str) -> Vec<String> {
    Config::from_toml(toml).expect_err("invalid").0
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
}

/// A config file in a temp dir (kept alive by the returned guard).
fn file(toml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("relurl.toml");
    std::fs::write(&path, toml).expect("write config");
    (dir, path)
}

#[test]
fn defaults_are_valid() {
    let config = Config::from_toml("").expect("defaults validate");
    assert_eq!(config.redirect.default_status, 302);
    assert_eq!(config.redirect.flush_interval, Duration::from_millis(5));
    assert_eq!(config.webhooks.timeout, Duration::from_secs(5));
    assert_eq!(config.webhooks.retry_schedule.len(), 5);
    assert_eq!(config.fraud.window, Duration::from_secs(10));
    assert_eq!(config.store.click_ttl, Duration::from_secs(90 * 86_400));
    assert_eq!(config.store.attempt_ttl, Duration::from_secs(30 * 86_400));
    assert!(config.redirect.shards >= 2);
}

#[test]
fn reference_file_lists_every_key_with_its_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_PATH);
    let file: Dict = Figment::from(Toml::file_exact(path))
        .extract()
        .expect("reference parses");
    let defaults: Dict = Figment::from(Serialized::defaults(RawConfig::default()))
        .extract()
        .expect("defaults serialize");
    let json = |d: &Dict| serde_json::to_value(d).expect("json");
    assert_eq!(json(&file), json(&defaults));
}

#[test]
fn renamed_keys_name_their_new_key() {
    for (section, old, new, example) in [
        ("redirect", "flush_interval_ms", "flush_interval", "5ms"),
        ("webhooks", "timeout_ms", "timeout", "5s"),
        ("fraud", "window_secs", "window", "10s"),
    ] {
        let errors = errors_of(&format!("[{section}]\n{old} = 5\n"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        let expected = format!(
            "{section}.{old} was renamed to {section}.{new} (a duration string such as \"{example}\")"
        );
        assert!(errors[0].starts_with(&expected), "{errors:?}");
    }
    // From the environment too, naming the variable.
    let name = "RELURL_REDIRECT__FLUSH_INTERVAL_MS";
    let errors = load_with(None, vars(&[(name, "5")]))
        .expect_err("refused")
        .0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("renamed to redirect.flush_interval") && errors[0].contains(name),
        "{errors:?}"
    );
}

#[test]
fn other_unknown_keys_and_sections_are_named() {
    let errors = errors_of("[server]\nlisten_port = 1\n[cache]\nsize = 1\n");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors.iter().any(
            |e| e.starts_with("server.listen_port: unknown key; expected one of ")
                && e.contains(" listen,")
        ),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("cache: unknown section")),
        "{errors:?}"
    );
}

#[test]
fn durations_accept_the_usual_forms() {
    for (text, expected) in [
        ("300ms", Duration::from_millis(300)),
        ("5s", Duration::from_secs(5)),
        ("1m", Duration::from_secs(60)),
        ("1h 30m", Duration::from_secs(5400)),
        ("90d", Duration::from_secs(90 * 86_400)),
    ] {
        let mut errors = Errors::default();
        let parsed = errors.duration("k", text, Duration::ZERO..=365 * DAY);
        assert_eq!(parsed, Some(expected), "{text}: {errors:?}");
    }
    let config =
        Config::from_toml("[webhooks]\nretry_schedule = [\"0s\", \"1h 30m\"]\n").expect("valid");
    assert_eq!(
        config.webhooks.retry_schedule,
        [Duration::ZERO, Duration::from_secs(5400)]
    );
}

#[test]
fn bad_durations_name_the_key_the_range_and_the_form() {
    for text in ["5", "s", "5 parsecs", "", "-1s"] {
        let errors = errors_of(&format!("[webhooks]\ntimeout = \"{text}\"\n"));
        assert_eq!(errors.len(), 1, "{text}: {errors:?}");
        assert!(
            errors[0].starts_with(
                "webhooks.timeout: expected a duration from 1ms to 5m, a string such as \"500ms\""
            ),
            "{errors:?}"
        );
        assert!(errors[0].ends_with(&format!("got {text:?}")), "{errors:?}");
    }
    let errors = errors_of(
        "[webhooks]\ntimeout = \"0s\"\n[redirect]\nflush_interval = \"2m\"\n[fraud]\nwindow = \"1500ms\"\n",
    );
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].starts_with("redirect.flush_interval: expected a duration from 1ms to 1m"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("webhooks.timeout: expected a duration from 1ms to 5m"),
        "{errors:?}"
    );
    assert!(
        errors[2].starts_with("fraud.window: expected whole seconds, got \"1500ms\""),
        "{errors:?}"
    );
}

#[test]
fn backend_keys_are_checked_only_for_their_backend() {
    let scylla_only =
        "click_ttl = \"forever\"\nscylla_keyspace = \"no-dashes\"\nscylla_nodes = []\n";
    let config = Config::from_toml(&format!("[store]\nbackend = \"embedded\"\n{scylla_only}"))
        .expect("scylla keys are not checked on the embedded backend");
    assert_eq!(config.store.backend, StoreBackend::Embedded);

    let errors = errors_of(&format!("[store]\nbackend = \"scylla\"\n{scylla_only}"));
    assert_eq!(errors.len(), 3, "{errors:?}");
    for key in [
        "store.scylla_nodes",
        "store.scylla_keyspace",
        "store.click_ttl",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(key)),
            "{key}: {errors:?}"
        );
    }

    let config = Config::from_toml("[store]\nbackend = \"scylla\"\npath = \"\"\n")
        .expect("store.path is not needed on scylla");
    assert_eq!(config.store.backend, StoreBackend::Scylla);
    let errors = errors_of("[store]\npath = \"\"\n");
    assert!(errors[0].starts_with("store.path"), "{errors:?}");

    // Still parsed: a scylla key of the wrong type is refused on embedded.
    let errors = errors_of("[store]\nscylla_nodes = 5\n");
    assert!(
        errors[0].starts_with("store.scylla_nodes: invalid type"),
        "{errors:?}"
    );

    // An unknown backend is the one store error reported.
    let errors = errors_of("[store]\nbackend = \"mysql\"\npath = \"\"\nclick_ttl = \"x\"\n");
    assert_eq!(
        errors,
        ["store.backend: expected \"embedded\" or \"scylla\", got \"mysql\""]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let errors = errors_of(
        "[redirect]\ndefault_status = 200\nflush_interval_ms = 5\n\
         [webhooks]\nretry_schedule = [\"1m\", \"soon\"]\n\
         [fraud]\nthreshold = \"many\"\nwindow_secs = 5\n\
         [store]\nbackend = \"mysql\"\n\
         [server]\nlisten = \"nowhere\"\n",
    );
    let starts = [
        "server.listen: expected an address",
        "store.backend",
        "redirect.flush_interval_ms was renamed",
        // The section's other values are still checked.
        "redirect.default_status: expected one of",
        "webhooks.retry_schedule[1]: expected a duration",
        "fraud.window_secs was renamed",
        "fraud.threshold: invalid type",
    ];
    assert_eq!(errors.len(), starts.len(), "{errors:?}");
    for (error, start) in errors.iter().zip(starts) {
        assert!(error.starts_with(start), "{start}: {errors:?}");
    }
}

#[test]
fn environment_overrides_the_file() {
    let (_dir, path) = file("[webhooks]\ntimeout = \"1s\"\nretry_jitter = 0.5\n");
    let config = load_with(
        Some(&path),
        vars(&[
            ("RELURL_WEBHOOKS__TIMEOUT", "250ms"),
            ("RELURL_REDIRECT__DURABLE_ACK", "true"),
            ("RELURL_STORE__SCYLLA_NODES", "[\"a:9042\", \"b:9042\"]"),
            ("RELURL_TEST_SCYLLA", "not config"),
        ]),
    )
    .expect("valid");
    assert_eq!(config.webhooks.timeout, Duration::from_millis(250));
    assert_eq!(config.webhooks.retry_jitter, 0.5);
    assert!(config.redirect.durable_ack);
    assert_eq!(config.store.scylla_nodes, ["a:9042", "b:9042"]);

    let errors = load_with(Some(&path), vars(&[("RELURL_FRAUD__THRESHOLD", "many")]))
        .expect_err("refused")
        .0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("fraud.threshold: invalid type")
            && errors[0].contains("environment variable RELURL_FRAUD__THRESHOLD"),
        "{errors:?}"
    );
}

#[test]
fn relurl_config_names_the_file_and_the_flag_wins() {
    let (_a, by_env) = file("[redirect]\ndefault_status = 307\n");
    let (_b, by_flag) = file("[redirect]\ndefault_status = 308\n");
    let env = by_env.to_str().expect("utf-8 temp path");
    let config = load_with(None, vars(&[(CONFIG_ENV, env)])).expect("valid");
    assert_eq!(config.redirect.default_status, 307);
    let config = load_with(Some(&by_flag), vars(&[(CONFIG_ENV, env)])).expect("valid");
    assert_eq!(config.redirect.default_status, 308);

    let errors = load_with(None, vars(&[(CONFIG_ENV, "/no/such/relurl.toml")]))
        .expect_err("missing file")
        .0;
    assert_eq!(
        errors,
        ["config file /no/such/relurl.toml (named by RELURL_CONFIG) does not exist"]
    );
}

#[test]
fn wrong_type_names_the_key() {
    let errors = errors_of("[fraud]\nthreshold = \"many\"\n");
    assert!(errors[0].starts_with("fraud.threshold: "), "{errors:?}");
}

#[test]
fn cluster_keys_are_checked_on_scylla_only() {
    let bad = "[cluster]\nheartbeat = \"never\"\nlease_ttl = \"1.5s\"\nnode_id = \"node-1\"\n";
    Config::from_toml(bad).expect("the embedded backend runs as one node: [cluster] is not read");

    let errors = errors_of(&format!("[store]\nbackend = \"scylla\"\n{bad}"));
    for key in ["cluster.heartbeat", "cluster.lease_ttl", "cluster.node_id"] {
        assert!(
            errors.iter().any(|e| e.starts_with(key)),
            "{key}: {errors:?}"
        );
    }

    let errors = errors_of(
        "[store]\nbackend = \"scylla\"\n[cluster]\nheartbeat = \"1s\"\nlease_ttl = \"2s\"\n",
    );
    assert!(
        errors[0].starts_with("cluster.lease_ttl") && errors[0].contains("four heartbeats"),
        "{errors:?}"
    );

    let id = uuid::Uuid::now_v7();
    let config = Config::from_toml(&format!(
        "[store]\nbackend = \"scylla\"\n[cluster]\nheartbeat = \"200ms\"\nlease_ttl = \"2s\"\nnode_id = \"{id}\"\n"
    ))
    .expect("valid cluster section");
    assert_eq!(config.cluster.heartbeat, Duration::from_millis(200));
    assert_eq!(config.cluster.lease_ttl, Duration::from_secs(2));
    assert_eq!(config.cluster.node_id, Some(id));
}
