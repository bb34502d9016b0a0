//! Configuration: built-in defaults, then the file, then `RELURL_<SECTION>__<KEY>`
//! environment variables. Unknown keys are refused; each section (one file
//! each) checks its own values, and every problem found is reported at once,
//! naming its full key (`webhooks.timeout`).

mod auth;
mod cluster;
mod enrich;
mod fraud;
mod log;
mod redirect;
mod server;
mod store;
#[cfg(test)]
mod tests;
mod webhooks;

use std::{
    ffi::OsString,
    fmt::Display,
    ops::RangeInclusive,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use figment::{
    Figment, Metadata, Profile, Provider,
    providers::{Format, Serialized, Toml},
    value::{Dict, Map, Value},
};
use serde::{Serialize, de::DeserializeOwned};

pub use auth::{AuthConfig, EncryptionKeys, LimitsConfig, MIN_ADMIN_TOKEN_LEN, RawAuth};
pub use cluster::{ClusterConfig, RawCluster};
pub use enrich::{EnrichConfig, RawEnrich};
pub use fraud::{FraudConfig, RawFraud};
pub use log::{LogConfig, LogFormat, RawLog};
pub use redirect::{RawRedirect, RedirectConfig};
pub use server::{RawServer, ServerConfig};
pub use store::{RawStore, StoreBackend, StoreConfig};
pub use webhooks::{RawWebhooks, WebhooksConfig};

/// The file read when neither `--config` nor [`CONFIG_ENV`] names one and it exists.
pub const DEFAULT_CONFIG_PATH: &str = "config/relurl.toml";
/// Names the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "RELURL_CONFIG";

/// Keys that carried a unit and now take a duration string.
const RENAMED: [(&str, &str, &str); 3] = [
    (
        "redirect.flush_interval_ms",
        "redirect.flush_interval",
        "5ms",
    ),
    ("webhooks.timeout_ms", "webhooks.timeout", "5s"),
    ("fraud.window_secs", "fraud.window", "10s"),
];

const MILLI: Duration = Duration::from_millis(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// The file's shape, section by section; its `Default` is the defaults layer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RawConfig {
    pub server: RawServer,
    pub auth: RawAuth,
    pub store: RawStore,
    pub redirect: RawRedirect,
    pub webhooks: RawWebhooks,
    pub fraud: RawFraud,
    pub enrich: RawEnrich,
    pub cluster: RawCluster,
    pub log: RawLog,
}

const SECTIONS: [&str; 9] = [
    "server", "auth", "store", "redirect", "webhooks", "fraud", "enrich", "cluster", "log",
];

/// Validated configuration: every value typed and checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub store: StoreConfig,
    pub redirect: RedirectConfig,
    pub webhooks: WebhooksConfig,
    pub fraud: FraudConfig,
    pub enrich: EnrichConfig,
    pub cluster: ClusterConfig,
    pub log: LogConfig,
}

/// Every problem found in a configuration, one line each.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

/// Reads defaults, then the file, then `RELURL_<SECTION>__<KEY>` from the
/// process environment. The file is `path` (`--config`), else `$RELURL_CONFIG`
/// (either must exist), else [`DEFAULT_CONFIG_PATH`] when present.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    load_with(path, std::env::vars_os())
}

/// [`load`] with the environment given, so tests need not change the process's.
pub fn load_with(
    path: Option<&Path>,
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Config, ConfigError> {
    let mut errors = Errors::default();
    let mut named_by_env = None;
    let mut overrides = Vec::new();
    for (name, value) in vars {
        if name == CONFIG_ENV {
            named_by_env = Some(PathBuf::from(value));
            continue;
        }
        // Only RELURL_<SECTION>__<KEY>: other RELURL_* variables (test knobs) are not config.
        let Some(name) = name.into_string().ok() else {
            continue;
        };
        let Some(key) = name.strip_prefix("RELURL_").filter(|k| k.contains("__")) else {
            continue;
        };
        let key = key.to_lowercase().replace("__", ".");
        match value.into_string() {
            Ok(value) => overrides.push(EnvVar { name, key, value }),
            Err(_) => errors.push(&name, "not valid UTF-8"),
        }
    }
    // The environment's order is arbitrary; a fixed one keeps runs alike.
    overrides.sort_by(|a, b| a.name.cmp(&b.name));

    let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
    let named = match (path, named_by_env) {
        (Some(path), _) => Some((path.to_path_buf(), "--config")),
        (None, Some(path)) => Some((path, CONFIG_ENV)),
        (None, None) => None,
    };
    match named {
        Some((path, by)) if !path.exists() => errors.0.push(format!(
            "config file {} (named by {by}) does not exist",
            path.display()
        )),
        Some((path, _)) => figment = figment.merge(Toml::file_exact(path)),
        None => figment = figment.merge(Toml::file(DEFAULT_CONFIG_PATH)),
    }
    for var in overrides {
        figment = figment.merge(var);
    }
    read(&figment, errors)
}

/// Validates what `figment` holds (tests build their own layers).
pub fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
    read(&figment, Errors::default())
}

impl Config {
    /// Defaults with the given overrides, as TOML; for tests and tools.
    pub fn from_toml(toml: &str) -> Result<Config, ConfigError> {
        from_figment(
            Figment::from(Serialized::defaults(RawConfig::default())).merge(Toml::string(toml)),
        )
    }
}

/// Reads each section on its own, so a bad key in one does not hide another's.
fn read(figment: &Figment, mut errors: Errors) -> Result<Config, ConfigError> {
    let top: Dict = match figment.extract() {
        Ok(top) => top,
        Err(e) => {
            // The file does not parse: nothing below can be read.
            errors.figment(e, "");
            return Err(ConfigError(errors.0));
        }
    };
    for name in top.keys().filter(|k| !SECTIONS.contains(&k.as_str())) {
        errors.push(
            name,
            format!("unknown section; expected one of {}", SECTIONS.join(", ")),
        );
    }
    let e = &mut errors;
    let server = section::<RawServer>(figment, "server", e).validate(e);
    let auth = section::<RawAuth>(figment, "auth", e).validate(e);
    let store = section::<RawStore>(figment, "store", e).validate(e);
    let scylla = store.backend == StoreBackend::Scylla;
    let config = Config {
        server,
        auth,
        store,
        redirect: section::<RawRedirect>(figment, "redirect", e).validate(e),
        webhooks: section::<RawWebhooks>(figment, "webhooks", e).validate(e),
        fraud: section::<RawFraud>(figment, "fraud", e).validate(e),
        enrich: section::<RawEnrich>(figment, "enrich", e).validate(e),
        cluster: section::<RawCluster>(figment, "cluster", e).validate(scylla, e),
        log: section::<RawLog>(figment, "log", e).validate(e),
    };
    errors.into_result(config)
}

/// One section's raw values; its defaults (checked, harmlessly) when they do
/// not deserialize. Unknown keys are reported and set aside first, so the
/// section's other values are still checked.
fn section<T: Serialize + DeserializeOwned + Default>(
    figment: &Figment,
    name: &str,
    errors: &mut Errors,
) -> T {
    let Ok(given) = figment.find_value(name) else {
        return T::default();
    };
    let known = Value::serialize(T::default())
        .ok()
        .and_then(Value::into_dict)
        .unwrap_or_default();
    let raw = match given.into_dict() {
        Some(mut keys) if keys.keys().any(|key| !known.contains_key(key)) => {
            keys.retain(|key, value| {
                let ok = known.contains_key(key);
                if !ok {
                    let origin = origin(figment.get_metadata(value.tag()));
                    errors.unknown(&format!("{name}.{key}"), &known, &origin);
                }
                ok
            });
            // Without the unknown keys; type errors then name no origin.
            Value::from(keys).deserialize()
        }
        _ => figment.extract_inner(name),
    };
    raw.unwrap_or_else(|e| {
        errors.figment(e, name);
        T::default()
    })
}

/// Problems found so far, each naming its full key. Checks return a value
/// either way; the config built from them is thrown away if any was pushed.
#[derive(Debug, Default)]
struct Errors(Vec<String>);

impl Errors {
    fn push(&mut self, key: &str, problem: impl Display) {
        self.0.push(format!("{key}: {problem}"));
    }

    /// Pushes "`key`: expected `expected`" unless `ok`.
    fn check(&mut self, ok: bool, key: &str, expected: impl Display) {
        if !ok {
            self.push(key, format_args!("expected {expected}"));
        }
    }

    fn parse<T: FromStr>(&mut self, key: &str, text: &str, expected: &str) -> Option<T> {
        let parsed = text.parse().ok();
        if parsed.is_none() {
            self.push(key, format_args!("expected {expected}, got {text:?}"));
        }
        parsed
    }

    /// A duration string (`"300ms"`, `"5s"`, `"1m"`, `"90d"`) within `range`.
    fn duration(
        &mut self,
        key: &str,
        text: &str,
        range: RangeInclusive<Duration>,
    ) -> Option<Duration> {
        let parsed = humantime::parse_duration(text)
            .ok()
            .filter(|d| range.contains(d));
        if parsed.is_none() {
            self.push(
                key,
                format_args!(
                    "expected a duration from {} to {}, a string such as \"500ms\", \"10s\", \"5m\" or \"2h\"; got {text:?}",
                    show(*range.start()),
                    show(*range.end()),
                ),
            );
        }
        parsed
    }

    /// As [`Errors::duration`], in whole seconds (CQL TTLs, per-second windows).
    fn seconds(
        &mut self,
        key: &str,
        text: &str,
        range: RangeInclusive<Duration>,
    ) -> Option<Duration> {
        let duration = self.duration(key, text, range)?;
        if duration.subsec_nanos() != 0 {
            self.push(key, format_args!("expected whole seconds, got {text:?}"));
            return None;
        }
        Some(duration)
    }

    fn append(&mut self, other: Errors) {
        self.0.extend(other.0);
    }

    /// Each deserialization error figment reports for `section`, under its full key.
    fn figment(&mut self, error: figment::Error, section: &str) {
        for mut e in error {
            let origin = origin(e.metadata.as_ref());
            // extract_inner appends the section after the path within it.
            if e.path.last().is_some_and(|last| last == section) {
                e.path.pop();
            }
            let mut key = section.to_string();
            for part in &e.path {
                match part.parse::<usize>() {
                    Ok(i) => key += &format!("[{i}]"),
                    Err(_) if key.is_empty() => key += part,
                    Err(_) => key += &format!(".{part}"),
                }
            }
            match &e.kind {
                kind if key.is_empty() => self.0.push(format!("{kind}{origin}")),
                kind => self.push(&key, format_args!("{kind}{origin}")),
            }
        }
    }

    /// A key no section has; a renamed one names its new key.
    fn unknown(&mut self, key: &str, known: &Dict, origin: &str) {
        match RENAMED.iter().find(|(old, ..)| *old == key) {
            Some((old, new, example)) => self.0.push(format!(
                "{old} was renamed to {new} (a duration string such as \"{example}\"){origin}"
            )),
            None => {
                let known: Vec<&str> = known.keys().map(String::as_str).collect();
                self.push(
                    key,
                    format_args!("unknown key; expected one of {}{origin}", known.join(", ")),
                )
            }
        }
    }

    /// `value` when nothing was pushed; it is thrown away otherwise.
    fn into_result<T>(self, value: T) -> Result<T, ConfigError> {
        match self.0.is_empty() {
            true => Ok(value),
            false => Err(ConfigError(self.0)),
        }
    }
}

/// " (from <provider> <file>)", or nothing when figment does not know.
fn origin(metadata: Option<&Metadata>) -> String {
    match metadata {
        Some(Metadata {
            name,
            source: Some(source),
            ..
        }) => format!(" (from {name} {source})"),
        Some(Metadata { name, .. }) => format!(" (from {name})"),
        None => String::new(),
    }
}

/// `d` in its largest whole unit, as the config would write it.
fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    for (unit, n) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= n && ms.is_multiple_of(n) {
            return format!("{}{unit}", ms / n);
        }
    }
    format!("{ms}ms")
}

/// One `RELURL_<SECTION>__<KEY>` variable; errors name it as their origin.
struct EnvVar {
    name: String,
    key: String,
    value: String,
}

impl Provider for EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("environment variable {}", self.name))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        // Parsed as figment's Env does: "true", "5", "[\"a\"]" become typed values.
        let value: Value = self.value.parse().unwrap_or_else(|never| match never {});
        let dict = figment::util::nest(&self.key, value)
            .into_dict()
            .unwrap_or_default();
        Ok(Profile::Default.collect(dict))
    }
}
