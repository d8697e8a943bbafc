//! Fetching one thing from a URL someone gave us (the team's media, a page
//! to read for ideas), once, behind the webhook address guard: every hop's
//! address is resolved, checked ([`crate::notify::webhook::checked_address`])
//! and pinned; redirects are followed by hand, a few at most, each checked
//! again; the body is written as it arrives and cut off past the size cap;
//! the whole fetch has one deadline.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::notify::webhook::{PrivateAccess, WebhookError, checked_address};

/// What a fetch may do (`[uploads]`, `[ideas]`).
#[derive(Debug, Clone)]
pub struct FetchRules {
    /// Which internal addresses may be reached.
    pub private: PrivateAccess,
    pub max_bytes: u64,
    pub timeout: Duration,
    pub max_redirects: u32,
}

/// Why a URL gave nothing. Each caller words it with its own settings' names.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FetchError {
    /// The guard refused the address (not a URL, not http(s), an internal
    /// address) of the URL given (`hops` 0) or of a redirect's target.
    #[error("{message}")]
    Refused { message: String, hops: u32 },
    /// More redirects than [`FetchRules::max_redirects`].
    #[error("more than {max} redirects")]
    TooManyRedirects { max: u32 },
    /// The body is larger than [`FetchRules::max_bytes`].
    #[error("larger than {max_bytes} bytes")]
    TooLarge { max_bytes: u64 },
    /// The whole fetch took longer than [`FetchRules::timeout`].
    #[error("no answer within {} s", after.as_secs_f64())]
    TimedOut { after: Duration },
    /// The server could not be reached or answered an error.
    #[error("{0}")]
    Failed(String),
}

/// What a page fetch brought: the body and what the server said it is.
#[derive(Debug)]
pub struct Fetched {
    pub body: Vec<u8>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// Where the body came from, after redirects.
    pub url: reqwest::Url,
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
    within_deadline(rules, async {
        let (resp, at) = open(url, rules).await?;
        let mut file =
            tokio::fs::File::create(dest).await.map_err(|e| FetchError::Failed(format!("scratch file: {e}")))?;
        body_capped(resp, &at, rules, &mut file).await
    })
    .await
}

/// Fetches `url` into memory (at most [`FetchRules::max_bytes`]).
pub async fn fetch_bytes(url: &str, rules: &FetchRules) -> Result<Fetched, FetchError> {
    within_deadline(rules, async {
        let (resp, at) = open(url, rules).await?;
        let content_type =
            resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut body = Vec::new();
        body_capped(resp, &at, rules, &mut body).await?;
        Ok(Fetched { body, content_type, url: at })
    })
    .await
}

async fn within_deadline<T>(
    rules: &FetchRules,
    fetch: impl Future<Output = Result<T, FetchError>>,
) -> Result<T, FetchError> {
    tokio::time::timeout(rules.timeout, fetch).await.unwrap_or(Err(FetchError::TimedOut { after: rules.timeout }))
}

/// Follows `url` through checked redirects to a 2xx answer whose body is
/// still to be read; the answer and the URL it came from.
async fn open(url: &str, rules: &FetchRules) -> Result<(reqwest::Response, reqwest::Url), FetchError> {
    let mut current =
        reqwest::Url::parse(url).map_err(|e| FetchError::Refused { message: format!("not a URL: {e}"), hops: 0 })?;
    let mut hops = 0;
    loop {
        let (lookup, addr) = checked_address(&current, &rules.private).await.map_err(|e| match e {
            WebhookError::Refused(message) => FetchError::Refused { message, hops },
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
                return Err(FetchError::TooManyRedirects { max: rules.max_redirects });
            }
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| FetchError::Failed("a redirect without a Location".into()))?;
            current = current
                .join(location)
                .map_err(|e| FetchError::Refused { message: format!("a redirect to no URL: {e}"), hops })?;
            continue;
        }
        if !resp.status().is_success() {
            return Err(FetchError::Failed(format!("{} answered HTTP {}", origin_of(&current), resp.status())));
        }
        return Ok((resp, current));
    }
}

/// Reads `resp`'s body into `sink`, refusing it past the cap (by its
/// `Content-Length` before a byte is read, else as it arrives).
async fn body_capped<W: AsyncWrite + Unpin>(
    resp: reqwest::Response,
    at: &reqwest::Url,
    rules: &FetchRules,
    sink: &mut W,
) -> Result<u64, FetchError> {
    let too_large = FetchError::TooLarge { max_bytes: rules.max_bytes };
    if resp.content_length().is_some_and(|n| n > rules.max_bytes) {
        return Err(too_large);
    }
    let origin = origin_of(at);
    copy_capped(resp.bytes_stream(), sink, rules.max_bytes).await.map_err(|e| match e {
        CappedWrite::TooLarge => too_large,
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
pub async fn write_capped<S, B, E>(stream: S, dest: &Path, max: u64) -> Result<u64, CappedWrite>
where
    S: futures::Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let mut file = tokio::fs::File::create(dest).await.map_err(CappedWrite::Write)?;
    copy_capped(stream, &mut file, max).await
}

/// Writes `stream` to `sink` (a file, a buffer) as it arrives, stopping as
/// soon as more than `max` bytes came. The number of bytes written.
pub async fn copy_capped<S, B, E, W>(mut stream: S, sink: &mut W, max: u64) -> Result<u64, CappedWrite>
where
    S: futures::Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
    W: AsyncWrite + Unpin,
{
    use futures::StreamExt;
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| CappedWrite::Read(e.to_string()))?;
        let chunk = chunk.as_ref();
        written += chunk.len() as u64;
        if written > max {
            return Err(CappedWrite::TooLarge);
        }
        sink.write_all(chunk).await.map_err(CappedWrite::Write)?;
    }
    sink.flush().await.map_err(CappedWrite::Write)?;
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
        let rules = FetchRules {
            private: PrivateAccess::all_or_none(false, "uploads.allow_private_urls"),
            max_bytes: 1024,
            timeout: Duration::from_secs(5),
            max_redirects: 2,
        };
        let dest = tempfile::NamedTempFile::new().unwrap();
        for url in ["http://127.0.0.1:9/x.png", "http://[::1]:9/x.png", "http://10.0.0.1/x.png", "file:///etc/passwd"] {
            let err = fetch_to(url, &rules, dest.path()).await.unwrap_err();
            assert!(matches!(err, FetchError::Refused { hops: 0, .. }), "{url}: {err:?}");
        }
    }
}
