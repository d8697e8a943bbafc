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

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
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
/// link-local (169.254/16, fe80::/10), unique-local (fc00::/7), site-local
/// (fec0::/10), benchmarking (198.18/15), reserved (240/4), broadcast,
/// multicast — and any IPv6 address that carries an IPv4 address (see
/// [`embedded_ipv4`]) whose IPv4 address is any of these.
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
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            // NAT64 local-use prefix (RFC 8215): only ever a way into a local network.
            let local_nat64 = v6.segments()[..3] == [0x64, 0xff9b, 0x1];
            let carried = [embedded_ipv4(v6), teredo_client(v6)];
            if carried.into_iter().flatten().any(|v4| is_internal(IpAddr::V4(v4))) {
                return true;
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || local_nat64
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
        }
    }
}

/// The IPv4 address an IPv6 address carries, in each form that embeds one:
/// IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d` (deprecated but
/// still routed by some stacks), IPv4-translated `::ffff:0:a.b.c.d`, the
/// NAT64 well-known prefix `64:ff9b::/96`, 6to4 `2002:aabb:ccdd::/48`, and
/// Teredo `2001:0::/32` (its server address; the client address is checked
/// too, by [`teredo_client`]). A guard that looked at the IPv6 form only
/// would let `::127.0.0.1` or `64:ff9b::a00:1` through to the machine or its
/// network.
pub fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, hi, lo, ..] | [0x2001, 0, hi, lo, ..] => {
            Some(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8))
        }
        _ => None,
    }
}

/// The client IPv4 address of a Teredo address (its last 32 bits, inverted).
fn teredo_client(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    (s[0] == 0x2001 && s[1] == 0).then(|| {
        let (hi, lo) = (!s[6], !s[7]);
        Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
    })
}

/// Which internal addresses ([`is_internal`]) a guard lets through: none,
/// all (`webhooks.allow_private`, `uploads.allow_private_urls`), or exactly
/// the `host:port` pairs listed (`ideas.allowed_private_hosts`), so one
/// trusted local server can be reached while every other internal address,
/// a redirect into another port of the same machine included, stays refused.
#[derive(Debug, Clone, Default)]
pub struct PrivateAccess {
    /// Every internal address is allowed.
    pub all: bool,
    /// These exact pairs may be internal, as the URL names them.
    pub exact: Vec<HostPort>,
    /// The setting that allows more, named in a refusal.
    pub setting: &'static str,
}

impl PrivateAccess {
    /// All internal addresses when `all`, else none.
    pub fn all_or_none(all: bool, setting: &'static str) -> Self {
        Self { all, exact: Vec::new(), setting }
    }

    /// Whether a URL naming `host` and `port` may be sent to `ip`.
    pub fn allows(&self, host: &str, port: u16, ip: IpAddr) -> bool {
        !is_internal(ip) || self.all || self.exact.iter().any(|e| e.names(host, port))
    }
}

/// One exact `host:port` pair (`127.0.0.1:8080`, `[::1]:8080`,
/// `wiki.internal:443`): a host name or IP literal and an explicit port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Lowercase, without brackets or a trailing dot.
    host: String,
    port: u16,
}

impl HostPort {
    /// Reads `host:port`; the port must be given.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (v6, port) = rest.split_once("]:").ok_or_else(|| format!("`{entry}` is not [ipv6]:port"))?;
            v6.parse::<Ipv6Addr>().map_err(|_| format!("`{v6}` is not an IPv6 address"))?;
            (v6, port)
        } else {
            let (host, port) = entry.rsplit_once(':').ok_or_else(|| format!("`{entry}` has no :port"))?;
            if host.contains(':') {
                return Err(format!("write the IPv6 address `{host}` in brackets: [{host}]:{port}"));
            }
            (host, port)
        };
        let port: u16 = port.parse().map_err(|_| format!("`{port}` is not a port"))?;
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let name_like = host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'));
        if host.is_empty() || port == 0 || !name_like || (host.contains(':') && host.parse::<Ipv6Addr>().is_err()) {
            return Err(format!("`{entry}` is not host:port"));
        }
        Ok(Self { host, port })
    }

    /// Whether a URL's `host` (as written, brackets allowed) and `port` are this pair.
    pub fn names(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.');
        let same_host = match (host.parse::<IpAddr>(), self.host.parse::<IpAddr>()) {
            (Ok(a), Ok(b)) => a == b,
            _ => host.eq_ignore_ascii_case(&self.host),
        };
        same_host && port == self.port
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The address to send to for `parsed`, resolved once and checked: only
/// http(s), and no host that resolves to an internal address
/// ([`is_internal`]) unless `access` allows it — every address the name
/// resolves to is checked, and the caller pins the one returned
/// (`reqwest::ClientBuilder::resolve`, under the returned host name) so a
/// second lookup cannot answer differently. Media fetched from URLs and
/// pages read for ideas go through the same guard.
pub async fn checked_address(
    parsed: &reqwest::Url,
    access: &PrivateAccess,
) -> Result<(String, SocketAddr), WebhookError> {
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
    if let Some(bad) = addrs.iter().find(|a| !access.allows(&lookup, port, a.ip())) {
        return Err(WebhookError::Refused(format!(
            "{host}:{port} resolves to {}, a loopback/private/link-local address; allow it with {}",
            bad.ip(),
            access.setting
        )));
    }
    Ok((lookup, addr))
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
        let (lookup, addr) =
            checked_address(&parsed, &PrivateAccess::all_or_none(self.allow_private, "webhooks.allow_private")).await?;
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

    /// Each IPv6 form that embeds an IPv4 address, written the ways a URL may
    /// write it, is judged by its IPv4 address.
    #[test]
    fn ipv6_forms_that_embed_an_internal_ipv4_address_are_refused() {
        let refused = [
            // IPv4-mapped.
            ("::ffff:127.0.0.1", "127.0.0.1"),
            ("::ffff:7f00:1", "127.0.0.1"),
            ("::ffff:169.254.169.254", "169.254.169.254"),
            // IPv4-compatible (deprecated).
            ("::127.0.0.1", "127.0.0.1"),
            ("::7f00:1", "127.0.0.1"),
            ("::10.0.0.1", "10.0.0.1"),
            ("::192.168.1.1", "192.168.1.1"),
            // IPv4-translated (RFC 2765).
            ("::ffff:0:10.0.0.1", "10.0.0.1"),
            // NAT64 well-known prefix.
            ("64:ff9b::127.0.0.1", "127.0.0.1"),
            ("64:ff9b::a00:1", "10.0.0.1"),
            ("64:ff9b::169.254.169.254", "169.254.169.254"),
            // 6to4.
            ("2002:7f00:1::", "127.0.0.1"),
            ("2002:c0a8:101::1", "192.168.1.1"),
            ("2002:a9fe:a9fe::", "169.254.169.254"),
            // Teredo with a private server address.
            ("2001:0:a00:1::1", "10.0.0.1"),
        ];
        for (v6, v4) in refused {
            let ip: Ipv6Addr = v6.parse().unwrap();
            assert!(is_internal(IpAddr::V6(ip)), "{v6} carries {v4} and must be refused");
            assert_eq!(embedded_ipv4(ip), Some(v4.parse().unwrap()), "{v6}");
        }
        // Teredo's client address is stored inverted: !127.0.0.1 = 80ff:fffe.
        assert!(is_internal("2001:0:5db8:1::80ff:fffe".parse().unwrap()), "Teredo client 127.0.0.1");
        // The NAT64 local-use prefix is refused whatever it embeds.
        assert!(is_internal("64:ff9b:1::5db8:d822".parse().unwrap()));
        // The same forms carrying a public address pass.
        for ok in ["::ffff:93.184.216.34", "64:ff9b::5db8:d822", "2002:5db8:d822::1", "::93.184.216.34"] {
            let ip: IpAddr = ok.parse().unwrap();
            assert!(!is_internal(ip), "{ok} carries a public address");
        }
        // An ordinary global IPv6 address embeds nothing.
        assert_eq!(embedded_ipv4("2606:4700::1111".parse().unwrap()), None);
        // As a URL writes them: the host of http://[::127.0.0.1]/ is parsed by the sender the same way.
        let url = reqwest::Url::parse("http://[::127.0.0.1]:8080/hook").unwrap();
        let host = url.host_str().unwrap().trim_start_matches('[').trim_end_matches(']');
        assert!(is_internal(host.parse().unwrap()), "{host}");
    }

    /// The exact allow-list lets one `host:port` through and nothing beside
    /// it: not another port of the same address, not another loopback
    /// address, not the same port under another name.
    #[test]
    fn the_exact_allow_list_lets_only_its_pairs_through() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let access = PrivateAccess {
            all: false,
            exact: vec![HostPort::parse("127.0.0.1:8080").unwrap(), HostPort::parse("[::1]:9000").unwrap()],
            setting: "ideas.allowed_private_hosts",
        };
        assert!(access.allows("127.0.0.1", 8080, loopback));
        assert!(!access.allows("127.0.0.1", 8081, loopback), "another port of the same address");
        assert!(!access.allows("127.0.0.2", 8080, "127.0.0.2".parse().unwrap()), "another loopback address");
        assert!(!access.allows("localhost", 8080, loopback), "the same address under a name not listed");
        assert!(access.allows("[::1]", 9000, "::1".parse().unwrap()));
        assert!(access.allows("0:0::1", 9000, "::1".parse().unwrap()), "an IP literal is compared as an address");
        assert!(!access.allows("::1", 9001, "::1".parse().unwrap()));
        assert!(access.allows("example.com", 80, "93.184.216.34".parse().unwrap()), "public addresses need no entry");
        let none = PrivateAccess::all_or_none(false, "uploads.allow_private_urls");
        assert!(!none.allows("127.0.0.1", 8080, loopback));
        assert!(PrivateAccess::all_or_none(true, "uploads.allow_private_urls").allows(
            "10.0.0.1",
            1,
            "10.0.0.1".parse().unwrap()
        ));
        let named = PrivateAccess { exact: vec![HostPort::parse("Wiki.Internal.:443").unwrap()], ..none };
        assert!(named.allows("wiki.internal", 443, "10.1.1.1".parse().unwrap()));
        assert!(!named.allows("wiki.internal", 80, "10.1.1.1".parse().unwrap()));
    }

    #[test]
    fn allow_list_entries_need_a_host_and_a_port() {
        for bad in ["127.0.0.1", "x", ":80", "a b:1", "host:0", "host:99999", "[::1]", "::1:80", "http://a:1", "a/b:1"]
        {
            assert!(HostPort::parse(bad).is_err(), "{bad:?} was taken");
        }
        assert_eq!(HostPort::parse(" [::1]:8080 ").unwrap().to_string(), "[::1]:8080");
        assert_eq!(HostPort::parse("LocalHost:3000").unwrap().to_string(), "localhost:3000");
    }
}
