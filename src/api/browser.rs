//! What a web page may not make the API do.
//!
//! Any page a user visits can make their browser send requests to the API
//! (which often runs on their own machine, on 127.0.0.1, without keys). Three
//! checks, in [`guard`], in front of every route:
//!
//! - **Host.** A request whose `Host` is not the host of `server.url`, a
//!   loopback literal (127.0.0.0/8, `[::1]`, `localhost`; any port) or an
//!   entry of `server.allowed_hosts` gets 421 `host_not_allowed`. A page that
//!   rebinds its own name to 127.0.0.1 (DNS rebinding) still sends its own
//!   name as Host, so it cannot read the API as if it were same-origin.
//! - **Origin.** A state-changing request (POST, PUT, PATCH, DELETE) whose
//!   `Origin` is not `server.url`'s origin (`null` included), or whose
//!   `Sec-Fetch-Site` is `cross-site` or `same-site`, gets 403
//!   `cross_site_request`. Browsers send these headers on every such request;
//!   curl, the CLI and servers send neither and pass.
//! - **Content-Type.** A state-changing request under `/v1` with a body must
//!   say it is `application/json` (`POST /v1/batches` also takes its batch
//!   types, see [`BatchFormat`]; `POST /v1/media` any type but the three a
//!   page may send without a preflight); anything else, `text/plain` or a form
//!   included, gets 415 `unsupported_media_type`. These are the types a page
//!   can send cross-site without a CORS preflight.
//!
//! CORS stays closed: nothing here or elsewhere adds `Access-Control-Allow-*`
//! headers, so a page of another origin cannot read any answer.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::error::ApiError;
use crate::domain::{BatchFormat, echo};
use crate::error_code as codes;
use crate::settings::ServerSettings;

/// The hosts and the origin the API answers to, from `[server]`.
#[derive(Debug, Clone)]
pub struct BrowserRules {
    /// `server.url`'s origin, e.g. `https://clips.example.com` (default port left out).
    origin: String,
    /// `server.url`'s host, lowercase (an IPv6 literal in brackets).
    host: String,
    /// `server.allowed_hosts`, lowercase.
    allowed_hosts: Vec<String>,
}

impl BrowserRules {
    /// From validated settings (`server.url` is an http(s) URL with a host).
    pub fn from_settings(server: &ServerSettings) -> Self {
        let url = reqwest::Url::parse(&server.url).expect("server.url was validated at start");
        Self {
            origin: url.origin().ascii_serialization(),
            host: url.host_str().unwrap_or_default().to_ascii_lowercase(),
            allowed_hosts: server.allowed_host_list(),
        }
    }

    /// Whether the API answers to `authority` (a Host header: `name[:port]`).
    pub fn host_allowed(&self, authority: &str) -> bool {
        let Some(name) = host_name(authority) else { return false };
        if name == "localhost" || name == self.host || self.allowed_hosts.contains(&name) {
            return true;
        }
        let literal = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(&name);
        literal.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// Why a state-changing request looks like it comes from another site, if it does.
    fn cross_site(&self, headers: &HeaderMap) -> Option<String> {
        if let Some(site) = headers.get("sec-fetch-site") {
            let site = site.to_str().unwrap_or("").trim().to_ascii_lowercase();
            if site == "cross-site" || site == "same-site" {
                return Some(format!("the browser says this request comes from another site (Sec-Fetch-Site: {site})"));
            }
        }
        let origin = headers.get(header::ORIGIN)?;
        let given = origin.to_str().ok().and_then(|o| reqwest::Url::parse(o).ok()).map(|u| u.origin());
        match given {
            Some(o) if o.is_tuple() && o.ascii_serialization() == self.origin => None,
            _ => Some(format!(
                "Origin `{}` is not this server's ({}, server.url)",
                echo(&String::from_utf8_lossy(origin.as_bytes())),
                self.origin
            )),
        }
    }
}

/// The host part of a Host header, lowercase, without port or trailing dot;
/// None when it is not `name[:port]`.
fn host_name(authority: &str) -> Option<String> {
    let authority = authority.trim();
    let (name, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        (&authority[..=end], &authority[end + 1..])
    } else {
        match authority.rsplit_once(':') {
            Some((name, _)) => (name, &authority[name.len()..]),
            None => (authority, ""),
        }
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let name = name.strip_suffix('.').unwrap_or(name);
    let name_ok = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
        && !name[1..].contains('[');
    (port_ok && name_ok).then(|| name.to_ascii_lowercase())
}

fn is_state_changing(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
}

/// Whether the request carries a body (a length over 0, or a chunked one).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().parse::<u64>().map_or(true, |n| n > 0))
}

/// Whether `content_type` is one the route at `path` reads.
/// The body types a page may send to another origin without a CORS preflight.
const CORS_SAFELISTED: &[&str] = &["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"];

fn content_type_allowed(path: &str, content_type: &str) -> bool {
    if path == "/v1/batches" {
        return BatchFormat::from_content_type(content_type).is_some();
    }
    if path == "/v1/media" {
        // A file's own type (or application/octet-stream): none of them is one a
        // page may send cross-site without a preflight, which CORS then refuses.
        let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        return !CORS_SAFELISTED.contains(&essence.as_str());
    }
    content_type.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/json")
}

/// The middleware in front of every route (see the module docs).
pub async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    match check(&state.browser, &request) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::info!(
                method = %request.method(),
                path = %super::loggable_path(request.uri().path()),
                code = refusal.code.as_str(),
                "request refused at the door"
            );
            refusal.into_response()
        }
    }
}

fn check(rules: &BrowserRules, request: &Request) -> Result<(), ApiError> {
    let headers = request.headers();
    let authority = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    if !authority.is_some_and(|a| rules.host_allowed(&a)) {
        let shown = headers.get(header::HOST).map(|h| echo(&String::from_utf8_lossy(h.as_bytes())));
        return Err(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            codes::HOST_NOT_ALLOWED,
            format!(
                "this server does not answer to Host `{}`; it answers to {} and loopback addresses \
                 (add more with server.allowed_hosts)",
                shown.unwrap_or_default(),
                rules.host
            ),
        ));
    }
    if !is_state_changing(request.method()) {
        return Ok(());
    }
    if let Some(why) = rules.cross_site(headers) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, codes::CROSS_SITE_REQUEST, format!("{why}; refused")));
    }
    let path = request.uri().path();
    if path.starts_with("/v1/") {
        let content_type =
            headers.get(header::CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let refused = match &content_type {
            Some(ct) => !content_type_allowed(path, ct),
            None => has_body(headers),
        };
        if refused {
            let wanted = if path == "/v1/batches" {
                "application/json (an array), application/x-ndjson (JSON lines) or text/csv"
            } else {
                "application/json"
            };
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                codes::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type `{}` is not accepted here; send {wanted}",
                    echo(content_type.as_deref().unwrap_or("(none)"))
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(url: &str, allowed: &str) -> BrowserRules {
        let server = ServerSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            url: url.into(),
            allowed_hosts: allowed.into(),
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            body_timeout_secs: 30,
            events_poll_ms: 500,
            group_commit_jobs: 256,
        };
        BrowserRules::from_settings(&server)
    }

    #[test]
    fn the_configured_host_loopback_literals_and_the_allow_list_pass() {
        let r = rules("https://Clips.Example.com", "clips.internal, 10.0.0.5");
        for ok in [
            "clips.example.com",
            "CLIPS.example.com:443",
            "clips.example.com.",
            "127.0.0.1:8080",
            "127.9.9.9",
            "[::1]:8080",
            "[::1]",
            "localhost:3000",
            "LOCALHOST",
            "clips.internal:8080",
            "10.0.0.5",
        ] {
            assert!(r.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "clips.example.com.evil.example",
            "localhost.evil.example",
            "10.0.0.6",
            "[::2]",
            "0.0.0.0:8080",
            "",
            "clips.example.com:80x",
            "clips.example.com@evil.example",
            "[::1",
            "127.0.0.1:",
        ] {
            assert!(!r.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn only_the_servers_own_origin_passes_and_cross_site_fetches_are_named() {
        let r = rules("http://127.0.0.1:8080/", "");
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            r.cross_site(&h)
        };
        assert_eq!(with(&[]), None, "curl and servers send neither header");
        assert_eq!(with(&[("origin", "http://127.0.0.1:8080")]), None);
        assert_eq!(with(&[("origin", "http://127.0.0.1:8080"), ("sec-fetch-site", "same-origin")]), None);
        assert_eq!(with(&[("sec-fetch-site", "none")]), None, "typed into the address bar");
        for bad in ["http://evil.example", "null", "http://127.0.0.1:8081", "https://127.0.0.1:8080", "file://x"] {
            assert!(with(&[("origin", bad)]).is_some(), "{bad}");
        }
        assert!(with(&[("sec-fetch-site", "cross-site")]).unwrap().contains("cross-site"));
        assert!(with(&[("sec-fetch-site", "same-site")]).is_some());
        assert_eq!(rules("https://clips.example.com:443", "").origin, "https://clips.example.com");
    }

    #[test]
    fn bodies_must_be_json_or_a_batch_type() {
        assert!(content_type_allowed("/v1/jobs", "application/json; charset=utf-8"));
        assert!(content_type_allowed("/v1/jobs", "Application/JSON"));
        for bad in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""] {
            assert!(!content_type_allowed("/v1/jobs", bad), "{bad}");
        }
        assert!(content_type_allowed("/v1/batches", "text/csv"));
        assert!(content_type_allowed("/v1/batches", "application/x-ndjson"));
        assert!(!content_type_allowed("/v1/batches", "text/plain"));
        for file in ["image/png", "video/mp4", "application/octet-stream", "application/json"] {
            assert!(content_type_allowed("/v1/media", file), "{file}");
        }
        for simple in ["text/plain", "multipart/form-data; boundary=x", "Application/X-WWW-Form-Urlencoded"] {
            assert!(!content_type_allowed("/v1/media", simple), "{simple}: a page could send it cross-site");
        }
        let mut h = HeaderMap::new();
        assert!(!has_body(&h));
        h.insert(header::CONTENT_LENGTH, "0".parse().unwrap());
        assert!(!has_body(&h));
        h.insert(header::CONTENT_LENGTH, "12".parse().unwrap());
        assert!(has_body(&h));
    }
}
