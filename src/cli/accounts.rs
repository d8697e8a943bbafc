//! `clipforge accounts`: the desktop connect flow and account housekeeping.
//!
//! The desktop flow is for operators without a public URL: it listens on
//! 127.0.0.1, sends the browser to TikTok or Google with a PKCE challenge
//! (TikTok's desktop flavour: lowercase hex SHA-256 of the verifier;
//! Google's: its unpadded base64url), and exchanges the code it gets back
//! together with the verifier. The `state` is checked
//! against the one it sent; the verifier never leaves this process.

use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{AccountsCommand, exit};
use crate::api::accounts::AccountView;
use crate::crypto::{random_token, sha256_hex};
use crate::error_code as codes;
use crate::providers::tiktok::Accounts;
use crate::settings::Settings;

/// Where the platform sends the browser back on this machine.
const CALLBACK_PATH: &str = "/callback/";

pub async fn run(settings: Settings, command: AccountsCommand) -> ExitCode {
    let records = match crate::store::records::connect(&settings.records_url()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::UNREACHABLE);
        }
    };
    if let AccountsCommand::List = command {
        return match records.list_accounts().await {
            Ok(list) => {
                let views: Vec<AccountView> = list.into_iter().map(AccountView::from).collect();
                println!("{}", serde_json::to_string_pretty(&views).expect("serialises"));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(exit::UNREACHABLE)
            }
        };
    }
    if let AccountsCommand::Connect { platform, no_browser, timeout_secs } = &command
        && platform != "tiktok"
    {
        if platform != "youtube" {
            eprintln!("error: --platform `{platform}` is not tiktok or youtube (Instagram connects in the studio)");
            return ExitCode::from(exit::USAGE);
        }
        let Some(yt) = crate::providers::youtube::YouTube::from_settings(&settings, records) else {
            eprintln!("error: YouTube is not configured; set youtube.client_id and youtube.client_secret");
            return ExitCode::from(exit::USAGE);
        };
        if yt.tokens.cipher().is_err() {
            eprintln!("error: {}", crate::crypto::CryptoError::NoKey);
            return ExitCode::from(exit::USAGE);
        }
        // Google's S256: the unpadded base64url SHA-256 of the verifier.
        let challenge = |v: &str| {
            use base64::Engine as _;
            use sha2::Digest as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(v.as_bytes()))
        };
        let consent = consent(
            "YouTube",
            settings.tiktok.desktop_port,
            *no_browser,
            Duration::from_secs(*timeout_secs),
            |state, redirect, verifier| yt.api.authorize_url(state, redirect, Some(&challenge(verifier))),
        )
        .await;
        let (code, redirect_uri, verifier) = match consent {
            Ok(c) => c,
            Err(exit) => return exit,
        };
        return connected(yt.connect(&code, &redirect_uri, Some(&verifier)).await);
    }
    let Some(accounts) = Accounts::from_settings(&settings, records) else {
        eprintln!(
            "error: TikTok is not configured; set tiktok.client_key and tiktok.client_secret (see config/default.toml)"
        );
        return ExitCode::from(exit::USAGE);
    };
    match command {
        AccountsCommand::Connect { no_browser, timeout_secs, .. } => {
            connect(&accounts, settings.tiktok.desktop_port, no_browser, Duration::from_secs(timeout_secs)).await
        }
        AccountsCommand::Disconnect { id } => match accounts.disconnect(&id).await {
            Ok(a) => {
                println!("disconnected {} ({}); its tokens are deleted", a.id, a.display_name);
                ExitCode::SUCCESS
            }
            Err(e) if e.code == codes::ACCOUNT_UNKNOWN.as_str() => {
                eprintln!("error: {}", e.message);
                ExitCode::from(exit::NOT_FOUND)
            }
            Err(e) => {
                eprintln!("error: {}", e.message);
                ExitCode::from(exit::UNREACHABLE)
            }
        },
        AccountsCommand::List => unreachable!("handled above"),
    }
}

async fn connect(accounts: &Accounts, port: u16, no_browser: bool, timeout: Duration) -> ExitCode {
    if !accounts.can_store_tokens() {
        eprintln!("error: {}", crate::crypto::CryptoError::NoKey);
        return ExitCode::from(exit::USAGE);
    }
    // TikTok's desktop flavour of S256: lowercase hex SHA-256 of the verifier.
    let consent = consent("TikTok", port, no_browser, timeout, |state, redirect, verifier| {
        accounts.api.authorize_url(state, redirect, Some(&sha256_hex(verifier)))
    })
    .await;
    match consent {
        Ok((code, redirect_uri, verifier)) => connected(accounts.connect(&code, &redirect_uri, Some(&verifier)).await),
        Err(exit) => exit,
    }
}

/// The desktop consent: listens on 127.0.0.1, prints (and opens) the
/// consent URL `url_for(state, redirect_uri, verifier)` makes, and waits for
/// the browser to come back with a code for our `state`. The code, the
/// redirect URI and the verifier, which never leaves this process.
async fn consent(
    platform: &str,
    port: u16,
    no_browser: bool,
    timeout: Duration,
    url_for: impl Fn(&str, &str, &str) -> String,
) -> Result<(String, String, String), ExitCode> {
    let listener = match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on 127.0.0.1:{port}: {e}");
            return Err(ExitCode::from(exit::USAGE));
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    let redirect_uri = format!("http://127.0.0.1:{port}{CALLBACK_PATH}");
    let state = random_token(32);
    // 64 URL-safe characters: inside PKCE's 43–128 from [A-Za-z0-9-._~].
    let verifier = random_token(48);
    let url = url_for(&state, &redirect_uri, &verifier);
    println!("Open this URL to connect a {platform} account:\n{url}");
    if !no_browser {
        let _ = std::process::Command::new("xdg-open")
            .arg(&url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    match tokio::time::timeout(timeout, wait_for_callback(&listener, &state)).await {
        Ok(Ok(code)) => Ok((code, redirect_uri, verifier)),
        Ok(Err(message)) => {
            eprintln!("error: {message}");
            Err(ExitCode::from(exit::USAGE))
        }
        Err(_) => {
            eprintln!("error: no answer from {platform} within {} s; run the command again", timeout.as_secs());
            Err(ExitCode::from(exit::UNREACHABLE))
        }
    }
}

/// What a finished connect prints, and its exit code.
fn connected(result: Result<crate::store::records::AccountRecord, crate::providers::ProviderError>) -> ExitCode {
    match result {
        Ok(a) => {
            println!("connected {} ({}), account id {}", a.display_name, a.open_id, a.id);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {} ({})", e.message, e.code);
            ExitCode::from(if e.retryable { exit::UNREACHABLE } else { exit::USAGE })
        }
    }
}

/// Serves the one callback request: answers the browser and returns the
/// code, or why there is none. Requests for other paths (a favicon) are
/// answered 404 and waited past.
async fn wait_for_callback(listener: &TcpListener, expected_state: &str) -> Result<String, String> {
    loop {
        let (mut socket, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 16 * 1024];
        let n = socket.read(&mut buf).await.map_err(|e| e.to_string())?;
        let head = String::from_utf8_lossy(&buf[..n]);
        let target = head.lines().next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or_default().to_string();
        let Some(query) = target.strip_prefix(CALLBACK_PATH).map(|q| q.trim_start_matches('?')) else {
            let _ = socket.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            continue;
        };
        let params: std::collections::HashMap<String, String> = reqwest::Url::parse(&format!("http://x/?{query}"))
            .map(|u| u.query_pairs().into_owned().collect())
            .unwrap_or_default();
        let result = if params.get("state").map(String::as_str) != Some(expected_state) {
            Err("the answer's `state` does not match the one sent; not exchanging its code".to_string())
        } else if let Some(error) = params.get("error") {
            Err(format!(
                "the platform did not grant access ({error}): {}",
                params.get("error_description").cloned().unwrap_or_default()
            ))
        } else {
            params.get("code").cloned().ok_or_else(|| "the answer carries no code".to_string())
        };
        let page = match &result {
            Ok(_) => "Connected. You can close this tab and go back to the terminal.".to_string(),
            Err(e) => format!("Not connected: {e}"),
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
            page.len()
        );
        let _ = socket.write_all(response.as_bytes()).await;
        return result;
    }
}
