//! Name resolution for webhook targets, at creation and at every connection:
//! hickory's async resolver on the tokio runtime, so a slow name server costs
//! a timer rather than a thread of the blocking pool the embedded store
//! shares. Each lookup gives up after [`TIMEOUT`]; answers are cached, at
//! most [`CACHE_ENTRIES`] names, for their TTL.

use std::{net::IpAddr, sync::OnceLock, time::Duration};

use hickory_resolver::{
    Resolver, TokioResolver, config::ResolverConfig, name_server::TokioConnectionProvider,
};

/// One lookup (all name servers, one try each) gives up after this.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Names whose answers are kept.
const CACHE_ENTRIES: usize = 4096;

fn resolver() -> &'static TokioResolver {
    static RESOLVER: OnceLock<TokioResolver> = OnceLock::new();
    RESOLVER.get_or_init(|| {
        // The system's name servers and hosts file; the public defaults when
        // the system configuration cannot be read.
        let mut builder = Resolver::builder_tokio().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the system resolver configuration failed; using public name servers");
            Resolver::builder_with_config(
                ResolverConfig::default(),
                TokioConnectionProvider::default(),
            )
        });
        let options = builder.options_mut();
        options.timeout = TIMEOUT;
        options.attempts = 1;
        options.cache_size = CACHE_ENTRIES;
        builder.build()
    })
}

/// The host's addresses; an error text when it does not resolve in time.
pub async fn lookup(host: &str) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    // The resolver's own timeout bounds each query; this bounds the whole.
    match tokio::time::timeout(TIMEOUT * 2, resolver().lookup_ip(host)).await {
        Ok(Ok(found)) => Ok(found.iter().collect()),
        Ok(Err(e)) => Err(format!("dns lookup of {host} failed: {e}")),
        Err(_) => Err(format!("dns lookup of {host} timed out")),
    }
}
