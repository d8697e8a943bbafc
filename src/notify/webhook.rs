//! Signed webhooks: job events POSTed as JSON to a URL the team or the job
//! names.
//!
//! Each request carries `X-Clipforge-Timestamp: <unix seconds>` and
//! `X-Clipforge-Signature: sha256=<hex>`, the HMAC-SHA256 under
//! `webhooks.secret` of `"<timestamp>.<body>"` (the raw body bytes). A receiver
//! recomputes it, compares in constant time, and refuses timestamps more than a
//! few minutes old (replays). See the README for a verification snippet.
//!
//! Targets that resolve to loopback, private, link-local or unique-local
//! addresses are refused unless `webhooks.allow_private`: a webhook URL comes
//! from whoever submits a job and must not become a way into the internal
//! network. The check runs after DNS resolution and the request goes to the
//! address that was checked (no second lookup), with redirects off.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Why a webhook was not delivered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WebhookError {
    /// The target may never be sent to (bad URL, forbidden address).
    #[error("webhook target refused: {0}")]
    Refused(String),
    /// The receiver could not be reached or did not answer 2xx.
    #[error("webhook not accepted: {0}")]
    Failed(String),
}

/// `sha256=<hex>`: the signature header's value for `body` sent at `timestamp`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether a webhook may not be sent to `ip` without `allow_private`:
/// loopback, unspecified, private (RFC 1918), carrier-grade NAT (100.64/10),
/// link-local (169.254/16, fe80::/10), unique-local (fc00::/7), broadcast,
/// multicast, and IPv4 addresses written as IPv6 that are any of these.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Sends signed events.
pub struct WebhookSender {
    secret: Option<SecretString>,
    allow_private: bool,
    timeout: Duration,
}

impl WebhookSender {
    pub fn new(secret: Option<SecretString>, allow_private: bool, timeout: Duration) -> Self {
        Self { secret, allow_private, timeout }
    }

    /// POSTs `body` to `url`, signed; Ok on any 2xx answer.
    pub async fn send(&self, url: &str, body: &[u8]) -> Result<(), WebhookError> {
        let Some(secret) = &self.secret else {
            return Err(WebhookError::Refused("webhooks.secret (CLIPFORGE__WEBHOOKS__SECRET) is not set".into()));
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| WebhookError::Refused(format!("not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(WebhookError::Refused("only http(s) URLs are allowed".into()));
        }
        let host = parsed.host_str().ok_or_else(|| WebhookError::Refused("the URL has no host".into()))?.to_string();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let lookup = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((lookup.as_str(), port))
            .await
            .map_err(|e| WebhookError::Failed(format!("cannot resolve {host}: {e}")))?
            .collect();
        let Some(&addr) = addrs.first() else {
            return Err(WebhookError::Failed(format!("{host} resolves to no address")));
        };
        if let Some(bad) = addrs.iter().find(|a| is_internal(a.ip()))
            && !self.allow_private
        {
            return Err(WebhookError::Refused(format!(
                "{host} resolves to {}, a loopback/private/link-local address; allow it with webhooks.allow_private",
                bad.ip()
            )));
        }
        // Pin the checked address, so a second lookup cannot answer differently.
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&lookup, addr)
            .build()
            .map_err(|e| WebhookError::Failed(e.without_url().to_string()))?;
        let timestamp = chrono::Utc::now().timestamp();
        let resp = client
            .post(parsed)
            .header("content-type", "application/json")
            .header("user-agent", concat!("clipforge/", env!("CARGO_PKG_VERSION")))
            .header("x-clipforge-timestamp", timestamp.to_string())
            .header("x-clipforge-signature", signature(secret.expose_secret().as_bytes(), timestamp, body))
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| WebhookError::Failed(e.without_url().to_string()))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(WebhookError::Failed(format!("the receiver answered HTTP {}", resp.status())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_a_known_vector() {
        // Computed independently:
        //   printf '1700000000.{"event":"staged"}' | openssl dgst -sha256 -hmac 'whsec-test'
        let sig = signature(b"whsec-test", 1_700_000_000, br#"{"event":"staged"}"#);
        assert_eq!(sig, "sha256=4ff14a0a00388c8bb3fc40ee760785fff5fadc54350a73b4118c04ebe17ab106");
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }
}
