//! Video ideas from a web page (`POST /v1/ideas`): the page is fetched once
//! behind the address guard media URLs and webhooks share
//! ([`crate::media::fetch`]), with its own size, time and redirect caps
//! (`[ideas]`), reduced to its readable text ([`readable`]), and the script
//! writer suggests the ideas ([`crate::providers::script::ScriptWriter::ideas`]).
//!
//! A request may bring its own LLM key. It lives in a [`SecretString`] for
//! that one request: it replaces the configured key for that one call, and
//! is never stored, logged, or put in an answer or an error. Nothing of an
//! ideas request is stored at all; the ideas become jobs only when someone
//! submits them.

pub mod readable;

use std::sync::Arc;

use secrecy::SecretString;

pub use readable::{Block, BlockKind, PageText};

use crate::domain::{Idea, IdeaBounds, SpecLimits};
use crate::media::fetch::{FetchError, FetchRules, fetch_bytes, origin_of};
use crate::providers::script::{IdeaAsk, ScriptWriter};
use crate::providers::{CostMeter, ProviderError};
use crate::settings::IdeaSettings;

/// Why a page gave no ideas.
#[derive(Debug, thiserror::Error)]
pub enum IdeasError {
    /// The fetch was refused or failed.
    #[error("{0}")]
    Fetch(FetchError),
    /// The page came, but holds nothing to read (or is no page).
    #[error("{0}")]
    NoText(String),
    /// The script writer failed; `request_key` says whether it used the
    /// request's own key.
    #[error("{error}")]
    Writer { error: ProviderError, request_key: bool },
}

/// Reads pages and asks the script writer for ideas.
pub struct IdeaFinder {
    rules: FetchRules,
    max_text_chars: usize,
    pub max_count: u32,
    limits: SpecLimits,
    /// The configured writer: answers requests that bring no key.
    writer: Arc<dyn ScriptWriter>,
    /// The writer for requests that bring their own LLM key.
    keyed_writer: Arc<dyn ScriptWriter>,
}

impl IdeaFinder {
    pub fn new(
        s: &IdeaSettings,
        limits: SpecLimits,
        writer: Arc<dyn ScriptWriter>,
        keyed_writer: Arc<dyn ScriptWriter>,
    ) -> Self {
        Self {
            rules: FetchRules {
                private: s.private_access(),
                max_bytes: s.max_page_bytes(),
                timeout: s.fetch_timeout(),
                max_redirects: s.max_redirects,
            },
            max_text_chars: s.max_text_chars,
            max_count: s.max_count,
            limits,
            writer,
            keyed_writer,
        }
    }

    /// The fetch rules pages are read under.
    pub fn rules(&self) -> &FetchRules {
        &self.rules
    }

    /// Reads `url` and asks for `count` ideas (checked by the caller), with
    /// `key` instead of the configured LLM key when given.
    pub async fn ideas(&self, url: &reqwest::Url, count: u32, key: Option<&SecretString>) -> Result<Found, IdeasError> {
        let page = self.read(url).await?;
        let bounds = IdeaBounds {
            count: count as usize,
            min_secs: self.limits.min_target_secs,
            max_secs: self.limits.max_target_secs,
        };
        let ask = IdeaAsk { page: &page, max_text_chars: self.max_text_chars, bounds };
        let writer = if key.is_some() { &self.keyed_writer } else { &self.writer };
        let meter = CostMeter::default();
        let ideas = writer
            .ideas(&ask, key, &meter)
            .await
            .map_err(|error| IdeasError::Writer { error, request_key: key.is_some() })?;
        Ok(Found { ideas, title: page.title, writer: writer.name() })
    }

    /// The page's readable text.
    async fn read(&self, url: &reqwest::Url) -> Result<PageText, IdeasError> {
        let fetched = fetch_bytes(url.as_str(), &self.rules).await.map_err(IdeasError::Fetch)?;
        if let Some(ct) = &fetched.content_type {
            let essence = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
            if !(essence.starts_with("text/") || essence == "application/xhtml+xml") {
                return Err(IdeasError::NoText(format!(
                    "{} answered `{}`, not a web page",
                    origin_of(&fetched.url),
                    crate::domain::clip(&essence)
                )));
            }
        }
        let page = PageText::from_html(&decode_page(&fetched.body, fetched.content_type.as_deref()));
        if !page.has_text() {
            return Err(IdeasError::NoText(format!(
                "the page at {} has no readable text in its HTML (headings, paragraphs)",
                origin_of(&fetched.url)
            )));
        }
        Ok(page)
    }
}

/// What a page gave.
#[derive(Debug)]
pub struct Found {
    pub ideas: Vec<Idea>,
    /// The page's title, if it has one.
    pub title: Option<String>,
    /// Who wrote the ideas (`template`, `openrouter`).
    pub writer: &'static str,
}

/// A page's bytes as text: UTF-8, unless they are not and the page says it
/// is Latin-1 (`charset=iso-8859-1`, `windows-1252`, in its `Content-Type`
/// or a `<meta charset>` near the top), whose bytes are read as Latin-1;
/// anything else unreadable becomes U+FFFD.
pub fn decode_page(body: &[u8], content_type: Option<&str>) -> String {
    if let Ok(text) = std::str::from_utf8(body) {
        return text.to_string();
    }
    let head = String::from_utf8_lossy(&body[..body.len().min(2048)]).to_ascii_lowercase();
    let declared = content_type.map(str::to_ascii_lowercase).unwrap_or_default();
    let latin1 = ["iso-8859-1", "latin1", "latin-1", "windows-1252", "cp1252", "us-ascii"].iter().any(|name| {
        declared.contains(&format!("charset={name}"))
            || head.contains(&format!("charset=\"{name}\""))
            || head.contains(&format!("charset={name}"))
    });
    if latin1 { body.iter().map(|&b| char::from(b)).collect() } else { String::from_utf8_lossy(body).into_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latin1_page_is_read_as_latin1_and_anything_else_as_utf8() {
        let cafe = b"<p>caf\xe9 cr\xe8me</p>";
        assert_eq!(decode_page(cafe, Some("text/html; charset=ISO-8859-1")), "<p>café crème</p>");
        let meta = b"<meta charset=\"windows-1252\"><p>caf\xe9</p>";
        assert_eq!(decode_page(meta, Some("text/html")), "<meta charset=\"windows-1252\"><p>café</p>");
        assert_eq!(decode_page("<p>café</p>".as_bytes(), Some("text/html; charset=iso-8859-1")), "<p>café</p>");
        assert_eq!(decode_page(cafe, None), "<p>caf\u{fffd} cr\u{fffd}me</p>");
    }
}
