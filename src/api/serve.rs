//! Serving the API over HTTP/1.1 with the timeouts `axum::serve` lacks.
//!
//! `axum::serve` waits for a client as long as the client likes: 1,000
//! connections that never finish their request line hold 1,000 sockets for
//! good. [`serve`] runs each connection with hyper's HTTP/1 server and a
//! watchdog that drops it when
//!
//! - a new connection has not delivered a whole request head within
//!   `server.header_timeout_secs` of being accepted;
//! - a kept-alive connection has waited `server.idle_timeout_secs` for its
//!   next request, or has taken longer than the header timeout over that
//!   request's head once its first byte came.
//!
//! While a request is being answered (its handler runs or its answer is being
//! written) the watchdog leaves the connection alone; a request body that
//! stops arriving for `server.body_timeout_secs` fails that request instead
//! (408, see [`super::extract::read_body`]). Cancelling the stop token stops
//! accepting, lets each connection finish the request in hand, and returns
//! when the last one is closed.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::settings::ServerSettings;

/// How long the server waits for each part of a client's request.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For a whole request head (`server.header_timeout_secs`).
    pub header: Duration,
    /// For the next request on a kept-alive connection (`server.idle_timeout_secs`).
    pub idle: Duration,
    /// For the next piece of a request body (`server.body_timeout_secs`).
    pub body: Duration,
}

impl Timeouts {
    pub fn from_settings(server: &ServerSettings) -> Self {
        Self { header: server.header_timeout(), idle: server.idle_timeout(), body: server.body_timeout() }
    }
}

/// Serves `router` on `listener` until `stop` is cancelled and every
/// connection has finished (see the module docs).
pub async fn serve(listener: TcpListener, router: Router, timeouts: Timeouts, stop: CancellationToken) {
    // Each connection holds a receiver; when the last is dropped, all are done.
    let (all_closed, open) = watch::channel(());
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::error!(error = %e, "cannot accept connections; trying again in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let (router, stop, open) = (router.clone(), stop.clone(), open.clone());
        tokio::spawn(async move {
            serve_connection(stream, router, timeouts, stop).await;
            drop(open);
        });
    }
    drop(listener);
    drop(open);
    all_closed.closed().await;
}

/// Errors of one connection that `accept` reports; the listener is fine.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset)
}

async fn serve_connection(stream: TcpStream, router: Router, timeouts: Timeouts, stop: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched { inner: stream, activity: activity.clone() });
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let answering = Answering::start(requests.clone());
        let router = router.clone();
        async move {
            let request = request.map(|b| Body::new(tower_http::timeout::TimeoutBody::new(timeouts.body, b)));
            let Ok(response) = router.oneshot(request).await;
            Ok::<_, Infallible>(response.map(|body| Body::new(Tracked { body, _answering: answering })))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The watchdog below keeps time; hyper's own header timer would restart
    // at every kept-alive wait and needs a timer of its own.
    builder.header_read_timeout(None);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = activity.timed_out(timeouts) => {
                tracing::debug!("connection dropped: no request within the header or idle timeout");
                return;
            }
            () = stop.cancelled(), if !draining => {
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

/// What the watchdog knows of one connection; times are milliseconds since it was accepted.
struct Activity {
    accepted: Instant,
    /// Requests being answered (handler running or answer being written).
    answering: AtomicUsize,
    /// Whether a request was answered: later waits are kept-alive ones.
    answered: AtomicBool,
    /// When the last answer was finished.
    idle_since_ms: AtomicU64,
    /// When the first byte came after the connection fell idle, plus one; 0: none yet.
    head_started_ms: AtomicU64,
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            accepted: Instant::now(),
            answering: AtomicUsize::new(0),
            answered: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.accepted + Duration::from_millis(ms)
    }

    /// Bytes came in: the start of a request head, when no request is being answered.
    fn bytes_read(&self) {
        if self.answering.load(Ordering::Acquire) == 0 {
            let now = self.now_ms() + 1;
            let _ = self.head_started_ms.compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// When the connection is to be dropped as it stands; None while a request is answered.
    fn deadline(&self, timeouts: Timeouts) -> Option<Instant> {
        if self.answering.load(Ordering::Acquire) > 0 {
            return None;
        }
        if !self.answered.load(Ordering::Acquire) {
            return Some(self.accepted + timeouts.header);
        }
        match self.head_started_ms.load(Ordering::Acquire) {
            0 => Some(self.at(self.idle_since_ms.load(Ordering::Acquire)) + timeouts.idle),
            started => Some(self.at(started - 1) + timeouts.header),
        }
    }

    /// Resolves when the connection has waited too long for a request.
    async fn timed_out(&self, timeouts: Timeouts) {
        loop {
            let changed = self.changed.notified();
            match self.deadline(timeouts) {
                None => changed.await,
                Some(deadline) if Instant::now() >= deadline => return,
                Some(deadline) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline.into()) => {}
                        () = changed => {}
                    }
                }
            }
        }
    }
}

/// Held while a request is being answered; its drop (the answer written, or
/// given up) starts the connection's idle wait.
struct Answering(Arc<Activity>);

impl Answering {
    fn start(activity: Arc<Activity>) -> Self {
        activity.answering.fetch_add(1, Ordering::AcqRel);
        activity.changed.notify_one();
        Self(activity)
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        let a = &self.0;
        if a.answering.fetch_sub(1, Ordering::AcqRel) == 1 {
            a.idle_since_ms.store(a.now_ms(), Ordering::Release);
            a.head_started_ms.store(0, Ordering::Release);
            a.answered.store(true, Ordering::Release);
        }
        a.changed.notify_one();
    }
}

/// An answer's body that keeps its request counted as answered until hyper drops it.
struct Tracked {
    body: Body,
    _answering: Answering,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, telling [`Activity`] when bytes come in.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts =
        Timeouts { header: Duration::from_secs(10), idle: Duration::from_secs(60), body: Duration::from_secs(30) };

    #[test]
    fn a_new_connection_has_the_header_timeout_from_accept_and_none_while_answering() {
        let a = Arc::new(Activity::new());
        assert_eq!(a.deadline(T), Some(a.accepted + T.header));
        a.bytes_read();
        assert_eq!(a.deadline(T), Some(a.accepted + T.header), "bytes do not extend a first request's head");
        let answering = Answering::start(a.clone());
        assert_eq!(a.deadline(T), None);
        drop(answering);
        let idle = a.at(a.idle_since_ms.load(Ordering::Acquire));
        assert_eq!(a.deadline(T), Some(idle + T.idle), "kept alive: the idle timeout");
        a.bytes_read();
        let started = a.at(a.head_started_ms.load(Ordering::Acquire) - 1);
        assert_eq!(a.deadline(T), Some(started + T.header), "the next head: the header timeout from its first byte");
    }
}
