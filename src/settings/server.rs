//! `[server]`: where the HTTP API listens, the URL it is known by, and how
//! long a client may take.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{Section, SettingsError, check, is_http_url, key, verdict};

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// The public URL of the API: where the CLI finds it, and the only origin
    /// (and, with `allowed_hosts`, the only host name) browsers may use.
    pub url: String,
    /// More host names (or IP literals) the API answers to, comma-separated,
    /// besides `url`'s host and loopback literals; empty for none.
    pub allowed_hosts: String,
    /// How long a client has to send a whole request head.
    pub header_timeout_secs: u64,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout_secs: u64,
    /// Longest wait for the next piece of a request body.
    pub body_timeout_secs: u64,
    /// How often each `GET /v1/events` stream asks the record store for new
    /// events and progress, in milliseconds: the most an event waits to be sent.
    pub events_poll_ms: u64,
    /// Most single submissions (`POST /v1/jobs`) stored in one transaction
    /// and queued in one push: concurrent submissions share one fsync instead
    /// of paying one each (see `api::intake`). 1 stores each on its own.
    pub group_commit_jobs: usize,
}

impl ServerSettings {
    /// The host names of `allowed_hosts`, lowercased.
    pub fn allowed_host_list(&self) -> Vec<String> {
        self.allowed_hosts.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect()
    }

    /// `header_timeout_secs`.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }

    /// `idle_timeout_secs`.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// `body_timeout_secs`.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs)
    }

    /// `events_poll_ms`.
    pub fn events_poll(&self) -> Duration {
        Duration::from_millis(self.events_poll_ms)
    }
}

impl Section for ServerSettings {
    const SECTION: &'static str = "server";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(
            self.url,
            |v| is_http_url(v) && reqwest::Url::parse(v).is_ok_and(|u| u.host_str().is_some()),
            "an absolute http(s) URL with a host, e.g. https://clips.example.com",
        )?;
        for host in self.allowed_host_list() {
            verdict(
                key!(allowed_hosts),
                is_host_name(&host),
                &host,
                "comma-separated host names or IP literals, without scheme, port or path (e.g. clips.internal,10.0.0.5)",
            )?;
        }
        check!(self.header_timeout_secs, |v| (1..=300).contains(v), "1-300")?;
        check!(self.idle_timeout_secs, |v| (1..=3600).contains(v), "1-3600")?;
        check!(self.body_timeout_secs, |v| (1..=3600).contains(v), "1-3600")?;
        check!(self.events_poll_ms, |v| (50..=60_000).contains(v), "50-60000")?;
        // A group is one queue push; the push takes at most 2,000 tasks at a time.
        check!(self.group_commit_jobs, |v| (1..=2000).contains(v), "1-2000 (1 turns group commits off)")
    }
}

/// A host name (letters, digits, '-', '.') or an IP literal (IPv6 in brackets).
fn is_host_name(s: &str) -> bool {
    if let Some(v6) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !s.is_empty() && s.len() <= 253 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}
