//! `[log]`: how log lines look (`text` for people, `json` for log shippers) and
//! which are written (an `EnvFilter` directive; `RELURL_LOG` overrides it).

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

use super::Errors;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    pub format: LogFormat,
    pub level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            // The embedded store's libraries are chatty at info.
            level: "info,fjall=warn,lsm_tree=warn".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A directive [`EnvFilter::try_new`] accepts (checked here).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        let raw = RawLog::default();
        Self {
            format: raw.format,
            level: raw.level,
        }
    }
}

impl RawLog {
    pub(super) fn validate(self, errors: &mut Errors) -> LogConfig {
        if let Err(e) = EnvFilter::try_new(&self.level) {
            errors.push(
                "log.level",
                format_args!(
                    "expected a level or filter directive such as \"info\" or \"info,relurl=debug\", got {:?} ({e})",
                    self.level
                ),
            );
            return LogConfig::default();
        }
        LogConfig {
            format: self.format,
            level: self.level,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, LogFormat};

    #[test]
    fn json_format_and_a_directive_are_read() {
        let config = Config::from_toml("[log]\nformat = \"json\"\nlevel = \"warn,relurl=debug\"\n")
            .expect("valid");
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.log.level, "warn,relurl=debug");
    }

    #[test]
    fn bad_values_and_unknown_keys_name_the_key() {
        for (toml, key) in [
            ("[log]\nformat = \"xml\"\n", "log.format"),
            ("[log]\nlevel = \"info,relurl=loud\"\n", "log.level"),
            ("[log]\ncolour = true\n", "log.colour"),
        ] {
            let errors = Config::from_toml(toml).expect_err(toml).0;
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].starts_with(&format!("{key}: ")), "{errors:?}");
        }
    }
}
