//! Fetching one file from a URL someone gave us (the team's media), once,
//! behind the webhook address guard: every hop's address is resolved,
//! checked ([`crate::notify::webhook::checked_address`]) and pinned;
//! redirects are followed by hand, a few at most, each checked again; the
//! body is written to a file and cut off past the size cap; the whole fetch
//! has one deadline.

use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::notify::webhook::{WebhookError, checked_address};

/// What a fetch may do (`[uploads]`).
#[derive(Debug, Clone, Copy)]
pub struct FetchRules {
    pub allow_private: bool,
    pub max_bytes: u64,
    pub timeout: Duration,
    pub max_redirects: u32,
}

/// Why a URL gave no file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FetchError {
    /// The URL may not be fetched (scheme, internal address, too many redirects).
    #[error("{0}")]
    Refused(String),
    /// The file is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// The server could not be reached, answered an error, or was too slow.
    #[error("{0}")]
    Failed(String),
}

/// The part of a URL that may be shown and kept: scheme, host and port —
/// never the path or query, which may carry a signature or a token.
pub fn origin_of(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{}://{h}:{p}", url.scheme()),
        (Some(h), None) => format!("{}://{h}", url.scheme()),
        _ => url.scheme().to_string(),
    }
}

/// Fetches `url` into `dest`; the number of bytes written.
pub async fn fetch_to(url: &str, rules: &FetchRules, dest: &Path) -> Result<u64, FetchError> {
    match tokio::time::timeout(rules.timeout, fetch_inner(url, rules, dest)).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::Failed(format!(
            "the fetch took longer than {} s (uploads.fetch_timeout_secs)",
            rules.timeout.as_secs()
        ))),
    }
}

async fn fetch_inner(url: &str, rules: &FetchRules, dest: &Path) -> Result<u64, FetchError> {
    let mut current = reqwest::Url::parse(url).map_err(|e| FetchError::Refused(format!("not a URL: {e}")))?;
    let mut hops = 0;
    let resp = loop {
        let (lookup, addr) = checked_address(&current, rules.allow_private, "uploads.allow_private_urls")
            .await
            .map_err(|e| match e {
                WebhookError::Refused(m) => FetchError::Refused(m),
                WebhookError::Failed(m) => FetchError::Failed(m),
            })?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&lookup, addr)
            .build()
            .map_err(|e| FetchError::Failed(e.without_url().to_string()))?;
        let resp = client
            .get(current.clone())
            .header("user-agent", concat!("clipforge/", env!("CARGO_PKG_VERSION")))
            .send()
            .await
            .map_err(|e| FetchError::Failed(format!("{}: {}", origin_of(&current), e.without_url())))?;
        if resp.status().is_redirection() {
            hops += 1;
            if hops > rules.max_redirects {
                return Err(FetchError::Refused(format!(
                    "more than {} redirects (uploads.max_redirects)",
                    rules.max_redirects
                )));
            }
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| FetchError::Failed("a redirect without a Location".into()))?;
            current = current.join(location).map_err(|e| FetchError::Refused(format!("a redirect to no URL: {e}")))?;
            continue;
        }
        if !resp.status().is_success() {
            return Err(FetchError::Failed(format!("{} answered HTTP {}", origin_of(&current), resp.status())));
        }
        break resp;
    };
    let too_large = || {
        FetchError::TooLarge(format!(
            "the file is larger than {} MiB (uploads.max_mb)",
            rules.max_bytes / (1024 * 1024)
        ))
    };
    if resp.content_length().is_some_and(|n| n > rules.max_bytes) {
        return Err(too_large());
    }
    let origin = origin_of(&current);
    write_capped(resp.bytes_stream(), dest, rules.max_bytes).await.map_err(|e| match e {
        CappedWrite::TooLarge => too_large(),
        CappedWrite::Read(m) => FetchError::Failed(format!("{origin}: {m}")),
        CappedWrite::Write(e) => FetchError::Failed(format!("scratch file: {e}")),
    })
}

/// Why [`write_capped`] stopped.
#[derive(Debug)]
pub enum CappedWrite {
    /// More than the cap arrived; what was written is to be thrown away.
    TooLarge,
    /// The stream broke.
    Read(String),
    /// The file could not be written.
    Write(std::io::Error),
}

/// Writes `stream` to `dest` as it arrives, stopping as soon as more than
/// `max` bytes came: an upload's body and a fetched file alike, so neither is
/// ever held whole in memory. The number of bytes written.
pub async fn write_capped<S, B, E>(mut stream: S, dest: &Path, max: u64) -> Result<u64, CappedWrite>
where
    S: futures::Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    use futures::StreamExt;
    let mut file = tokio::fs::File::create(dest).await.map_err(CappedWrite::Write)?;
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| CappedWrite::Read(e.to_string()))?;
        let chunk = chunk.as_ref();
        written += chunk.len() as u64;
        if written > max {
            return Err(CappedWrite::TooLarge);
        }
        file.write_all(chunk).await.map_err(CappedWrite::Write)?;
    }
    file.flush().await.map_err(CappedWrite::Write)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_keeps_no_path_or_query() {
        let u = reqwest::Url::parse("https://cdn.example.com/a/b.png?X-Amz-Signature=abc").unwrap();
        assert_eq!(origin_of(&u), "https://cdn.example.com");
        let u = reqwest::Url::parse("http://127.0.0.1:8080/x?token=t").unwrap();
        assert_eq!(origin_of(&u), "http://127.0.0.1:8080");
    }

    #[tokio::test]
    async fn loopback_and_odd_schemes_are_refused_before_any_request() {
        let rules =
            FetchRules { allow_private: false, max_bytes: 1024, timeout: Duration::from_secs(5), max_redirects: 2 };
        let dest = tempfile::NamedTempFile::new().unwrap();
        for url in ["http://127.0.0.1:9/x.png", "http://[::1]:9/x.png", "http://10.0.0.1/x.png", "file:///etc/passwd"] {
            let err = fetch_to(url, &rules, dest.path()).await.unwrap_err();
            assert!(matches!(err, FetchError::Refused(_)), "{url}: {err:?}");
        }
    }
}
