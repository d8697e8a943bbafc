//! Local stand-ins for the outside APIs, enforcing the contracts in
//! shared/specs/external-apis.md: auth header forms, required fields, limits,
//! error envelopes, throttling. They count what they receive and can be told
//! to fail.

pub mod elevenlabs;
pub mod instagram;
pub mod openrouter;
pub mod pexels;
pub mod runway;
pub mod telegram;
pub mod tiktok;
pub mod youtube;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;

/// How long a "slow" answer takes: longer than the test clients' timeout.
pub const SLOW: Duration = Duration::from_secs(4);

/// A failure an emulator can be told to give.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    TooManyRequests,
    ServerError,
    Slow,
}

/// Fails every `every`-th call (so 5 means 20%), cycling through the faults.
/// Deterministic, so a failing test fails the same way twice.
#[derive(Debug, Default)]
pub struct Faults {
    every: AtomicU32,
    calls: AtomicU32,
}

impl Faults {
    pub fn fail_every(&self, n: u32) {
        self.every.store(n, Ordering::SeqCst);
    }

    pub fn next(&self) -> Option<Fault> {
        let every = self.every.load(Ordering::SeqCst);
        if every == 0 {
            return None;
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if !n.is_multiple_of(every) {
            return None;
        }
        Some(match (n / every) % 3 {
            0 => Fault::TooManyRequests,
            1 => Fault::ServerError,
            _ => Fault::Slow,
        })
    }
}

/// Serves `router` on a free loopback port; returns its base URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}
