//! `[enrich]`: where click geography comes from.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Errors;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawEnrich {
    pub geoip_mmdb: String,
}

#[derive(Debug, Clone)]
pub struct EnrichConfig {
    pub geoip_mmdb: Option<PathBuf>,
}

impl RawEnrich {
    pub(super) fn validate(self, errors: &mut Errors) -> EnrichConfig {
        let geoip_mmdb = (!self.geoip_mmdb.is_empty()).then(|| PathBuf::from(self.geoip_mmdb));
        if let Some(path) = &geoip_mmdb {
            errors.check(
                path.is_file(),
                "enrich.geoip_mmdb",
                format!("a readable .mmdb file, {} is not a file", path.display()),
            );
        }
        EnrichConfig { geoip_mmdb }
    }
}
