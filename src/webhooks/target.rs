//! Which endpoint URLs may be called: `http`/`https` with a host, and unless
//! `webhooks.allow_private_targets`, only public addresses. Checked when an
//! endpoint is created or changed, and again at every connect (DNS rebinding).

use std::net::IpAddr;

use http::Uri;

use crate::domain::{WebhookUrlError, validate_webhook_url};
pub use crate::net::is_forbidden;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Invalid(#[from] WebhookUrlError),
    // One message for both, so the API cannot tell an internal name (resolves
    // to a private address) from a missing one: no probing of internal DNS.
    #[error("url host {0} does not resolve to a public address")]
    Private(String),
    #[error("url host {0} does not resolve to a public address")]
    Unresolvable(String),
}

/// Checks an endpoint URL at creation or change, resolving its host.
pub async fn check(url: &str, allow_private: bool) -> Result<Uri, TargetError> {
    let uri = validate_webhook_url(url)?;
    let host = uri.host().unwrap_or_default();
    if allow_private {
        return Ok(uri);
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return if is_forbidden(ip) {
            Err(TargetError::Private(host.to_string()))
        } else {
            Ok(uri)
        };
    }
    let addrs = super::dns::lookup(bare)
        .await
        .map_err(|_| TargetError::Unresolvable(host.to_string()))?;
    if addrs.is_empty() {
        return Err(TargetError::Unresolvable(host.to_string()));
    }
    if addrs.iter().any(|ip| is_forbidden(*ip)) {
        return Err(TargetError::Private(host.to_string()));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unresolvable_and_private_hosts_read_alike() {
        let private = TargetError::Private("a.internal".into()).to_string();
        let missing = TargetError::Unresolvable("a.internal".into()).to_string();
        assert_eq!(private, missing);
    }

    #[test]
    fn private_and_special_ranges_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "198.18.0.1",
            "240.0.0.1",
        ] {
            assert!(
                is_forbidden(ip.parse().unwrap()),
                "{ip} should be forbidden"
            );
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "100.128.0.1",
        ] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip} should be allowed");
        }
    }

    #[tokio::test]
    async fn urls_are_checked() {
        assert_eq!(
            check("ftp://example.com", false).await,
            Err(TargetError::Invalid(WebhookUrlError::NotHttp))
        );
        assert_eq!(
            check("/hook", false).await,
            Err(TargetError::Invalid(WebhookUrlError::NotHttp))
        );
        assert!(matches!(
            check("http://127.0.0.1:9/x", false).await,
            Err(TargetError::Private(_))
        ));
        assert!(matches!(
            check("http://[::1]/x", false).await,
            Err(TargetError::Private(_))
        ));
        // "localhost" resolves to loopback.
        assert!(matches!(
            check("http://localhost:8080/x", false).await,
            Err(TargetError::Private(_))
        ));
        assert!(check("http://127.0.0.1:9/x", true).await.is_ok());
        assert!(check("https://93.184.216.34/hook", false).await.is_ok());
    }
}
