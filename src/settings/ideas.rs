//! `[ideas]`: reading a web page for video ideas (`POST /v1/ideas`): how
//! much of a page is read, for how long, through how many redirects, which
//! internal addresses may be read, and how much of its text the script
//! writer is shown.

use std::time::Duration;

use serde::Deserialize;

use super::{Section, SettingsError, check, key, verdict};
use crate::notify::webhook::{HostPort, PrivateAccess};

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct IdeaSettings {
    /// Largest page read, in KiB; a bigger one is refused, not cut.
    pub max_page_kb: u64,
    /// A page that has not arrived whole after this many seconds is given up.
    pub fetch_timeout_secs: u64,
    /// Redirects followed, each to an address checked again.
    pub max_redirects: u32,
    /// Most characters of the page's readable text shown to the script writer.
    pub max_text_chars: usize,
    /// Most ideas one request may ask for.
    pub max_count: u32,
    /// Exact `host:port` pairs, comma-separated, that may be read although
    /// they are loopback, private, link-local or unique-local addresses (an
    /// intranet wiki, a local test server). Every other internal address
    /// stays refused, a redirect from a listed one included.
    pub allowed_private_hosts: String,
}

impl IdeaSettings {
    /// `max_page_kb` in bytes.
    pub fn max_page_bytes(&self) -> u64 {
        self.max_page_kb * 1024
    }

    /// `fetch_timeout_secs`.
    pub fn fetch_timeout(&self) -> Duration {
        Duration::from_secs(self.fetch_timeout_secs)
    }

    /// The entries of `allowed_private_hosts`, as the address guard reads them.
    pub fn private_access(&self) -> PrivateAccess {
        let exact = self.entries().filter_map(|e| HostPort::parse(e).ok()).collect();
        PrivateAccess { all: false, exact, setting: "ideas.allowed_private_hosts (exact host:port entries)" }
    }

    fn entries(&self) -> impl Iterator<Item = &str> {
        self.allowed_private_hosts.split(',').map(str::trim).filter(|e| !e.is_empty())
    }
}

impl Section for IdeaSettings {
    const SECTION: &'static str = "ideas";

    fn validate(&self) -> Result<(), SettingsError> {
        check!(self.max_page_kb, |v| (16..=65_536).contains(v), "16-65536 KiB")?;
        check!(self.fetch_timeout_secs, |v| (1..=120).contains(v), "1-120 seconds")?;
        check!(self.max_redirects, |v| *v <= 10, "0-10")?;
        check!(self.max_text_chars, |v| (500..=200_000).contains(v), "500-200000")?;
        check!(self.max_count, |v| (1..=50).contains(v), "1-50")?;
        for entry in self.entries() {
            verdict(
                key!(allowed_private_hosts),
                HostPort::parse(entry).is_ok(),
                entry,
                "comma-separated host:port pairs with an explicit port, e.g. 127.0.0.1:8080,[::1]:8080,wiki.internal:443",
            )?;
        }
        Ok(())
    }
}
