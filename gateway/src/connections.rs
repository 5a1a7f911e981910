//! Serving connections: the accept loop over [`CappedListener`], each connection on
//! hyper (HTTP/1.1, and HTTP/2 with prior knowledge, as `axum::serve` did), with two
//! clocks of its own that hyper does not keep on its own terms:
//!
//! - a request head must be complete `header_read` after its first byte, or the
//!   connection is dropped. A client that sends part of its headers and then nothing
//!   would otherwise hold its connection, and its slot of `http.max_connections`, for
//!   ever: a few thousand of them deny service to everyone (issue 26).
//! - a connection with no request in progress is shut down gracefully `keep_alive_idle`
//!   after its last answer (or its accept).
//!
//! hyper's own `header_read_timeout` is not used: it starts when hyper begins waiting
//! for a head, idle keep-alive time included, so it cannot tell "slow headers" (close
//! within seconds) from "idle between requests" (keep for a minute). Here the
//! connection's reads and its requests mark a [`Activity`] and a watchdog beside the
//! connection sleeps until the next deadline it could miss: one timer per connection,
//! woken only when a head starts, never a periodic tick (100k idle connections would
//! otherwise cost 100k wake-ups a second).
//!
//! Shutdown: `stop` ends the accept loop; every connection is then shut down gracefully
//! (in-flight requests finish, idle ones close), and [`serve`] returns once all have
//! ended. WebSocket connections leave this loop at their upgrade (the live registry
//! closes them).

use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::Service;

use crate::listener::{CappedListener, ClientAddr, CountedStream};

/// The HTTP/2 connection preface: a connection that opens with it is HTTP/2, whose
/// frames (pings, settings) arrive between requests and are no request head.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// The connection clocks (from `http.header_read_timeout_ms` and
/// `http.keep_alive_idle_ms`).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionTimeouts {
    pub header_read: Duration,
    pub keep_alive_idle: Duration,
}

/// What a connection's reads and requests tell its watchdog. Times are milliseconds
/// since the connection's accept, plus one, so that 0 can mean "none".
#[derive(Debug)]
struct Activity {
    accepted_at: Instant,
    /// Requests dispatched and not yet answered.
    in_flight: AtomicU32,
    /// When the first byte of a request head arrived; 0 while no head is being read.
    head_started_ms: AtomicU64,
    /// When the connection last became idle (its accept, or its last answer).
    idle_since_ms: AtomicU64,
    /// Wakes the watchdog when a head starts (its deadline is then nearer).
    head_started: Notify,
    /// Set at the connection's first bytes when they are the HTTP/2 preface.
    http2: std::sync::atomic::AtomicBool,
    /// Whether the first read has been seen (the preface check is made once).
    first_read_seen: std::sync::atomic::AtomicBool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            accepted_at: Instant::now(),
            in_flight: AtomicU32::new(0),
            head_started_ms: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(1),
            head_started: Notify::new(),
            http2: std::sync::atomic::AtomicBool::new(false),
            first_read_seen: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.accepted_at.elapsed().as_millis() as u64 + 1
    }

    fn at(&self, ms: u64) -> Instant {
        self.accepted_at + Duration::from_millis(ms.saturating_sub(1))
    }

    /// Bytes arrived on the connection.
    fn on_read(&self, bytes: &[u8]) {
        if !self.first_read_seen.swap(true, Ordering::Relaxed) && bytes.starts_with(H2_PREFACE) {
            self.http2.store(true, Ordering::Relaxed);
        }
        if self.http2.load(Ordering::Relaxed)
            || self.in_flight.load(Ordering::Relaxed) != 0
            || self.head_started_ms.load(Ordering::Relaxed) != 0
        {
            return;
        }
        self.head_started_ms.store(self.now_ms(), Ordering::Relaxed);
        self.head_started.notify_one();
    }

    fn begin_request(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started_ms.store(0, Ordering::Relaxed);
    }

    fn end_request(&self) {
        self.idle_since_ms.store(self.now_ms(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the watchdog decides at a deadline.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Nothing is due before this instant.
    WaitUntil(Instant),
    /// A head took too long: drop the connection.
    HeadTooSlow,
    /// Idle too long: shut the connection down gracefully.
    Idle,
}

fn verdict(activity: &Activity, timeouts: ConnectionTimeouts, now_ms: u64) -> Verdict {
    if activity.in_flight.load(Ordering::Relaxed) != 0 {
        // Requests have their own limits (body read, request timeout); look again later.
        return Verdict::WaitUntil(activity.at(now_ms) + timeouts.header_read);
    }
    let head = activity.head_started_ms.load(Ordering::Relaxed);
    if head != 0 {
        let due = head + timeouts.header_read.as_millis() as u64;
        return if now_ms >= due {
            Verdict::HeadTooSlow
        } else {
            Verdict::WaitUntil(activity.at(due))
        };
    }
    let idle = activity.idle_since_ms.load(Ordering::Relaxed);
    let due = idle + timeouts.keep_alive_idle.as_millis() as u64;
    if now_ms >= due {
        Verdict::Idle
    } else {
        Verdict::WaitUntil(activity.at(due))
    }
}

/// A connection's stream, telling its [`Activity`] about the bytes it reads.
struct Watched {
    inner: CountedStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled
            && buf.filled().len() > before
        {
            self.activity.on_read(&buf.filled()[before..]);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Counts a request in progress until its answer is ready (or it is dropped).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

/// Accept connections until `stop` resolves, then shut every connection down
/// gracefully and return when all have ended.
pub async fn serve(
    mut listener: CappedListener,
    router: Router,
    timeouts: ConnectionTimeouts,
    stop: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each connection holds a receiver; `closed()` resolves when the last has ended.
    let (ended_tx, ended_rx) = watch::channel(());
    let mut stop = pin!(stop);
    loop {
        let (io, addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let connection = connection(io, addr, router.clone(), timeouts, stop_rx.clone());
        let ended = ended_rx.clone();
        tokio::spawn(async move {
            connection.await;
            drop(ended);
        });
    }
    drop(listener);
    drop(ended_rx);
    let _ = stop_tx.send(true);
    ended_tx.closed().await;
}

async fn connection(
    io: CountedStream,
    addr: std::net::SocketAddr,
    router: Router,
    timeouts: ConnectionTimeouts,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: io,
        activity: activity.clone(),
    });
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request
            .extensions_mut()
            .insert(ConnectInfo(ClientAddr(addr)));
        requests.begin_request();
        let in_flight = InFlight(requests.clone());
        let answer = router.clone().call(request.map(Body::new));
        async move {
            let answer = answer.await;
            drop(in_flight);
            answer
        }
    });
    let mut builder = Builder::new(TokioExecutor::new());
    // The CONNECT protocol carries WebSockets over HTTP/2 (as axum::serve enables it).
    builder.http2().enable_connect_protocol();
    let mut conn = pin!(builder.serve_connection_with_upgrades(io, service));
    let mut shutting_down = false;
    loop {
        let deadline = match verdict(&activity, timeouts, activity.now_ms()) {
            Verdict::WaitUntil(at) => at,
            Verdict::HeadTooSlow => {
                metrics::counter!("navaro_connections_closed_total", "reason" => "slow_head")
                    .increment(1);
                tracing::debug!(peer = %addr, "request head too slow; connection dropped");
                return;
            }
            Verdict::Idle => {
                if !shutting_down {
                    metrics::counter!("navaro_connections_closed_total", "reason" => "idle")
                        .increment(1);
                    shutting_down = true;
                    conn.as_mut().graceful_shutdown();
                }
                // Closing: only the connection's end is awaited now.
                Instant::now() + timeouts.keep_alive_idle
            }
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(deadline) => {}
            () = activity.head_started.notified() => {}
            Ok(_) = stop.wait_for(|s| *s), if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: ConnectionTimeouts = ConnectionTimeouts {
        header_read: Duration::from_secs(5),
        keep_alive_idle: Duration::from_secs(60),
    };

    #[tokio::test]
    async fn a_started_head_is_due_after_the_header_timeout_and_an_idle_connection_after_the_idle_one()
     {
        let a = Activity::new();
        assert_eq!(
            verdict(&a, T, 1),
            Verdict::WaitUntil(a.at(1 + 60_000)),
            "a fresh connection waits for its first request as long as an idle one"
        );
        a.on_read(b"GET / HTTP/1.1\r\nHo");
        let started = a.head_started_ms.load(Ordering::Relaxed);
        assert_ne!(started, 0);
        assert_eq!(
            verdict(&a, T, started + 4_999),
            Verdict::WaitUntil(a.at(started + 5_000))
        );
        assert_eq!(verdict(&a, T, started + 5_000), Verdict::HeadTooSlow);

        // The head completes: a request in progress is never closed by these clocks.
        a.begin_request();
        assert!(matches!(
            verdict(&a, T, started + 100_000),
            Verdict::WaitUntil(_)
        ));
        // Body bytes read while it runs start no head.
        a.on_read(b"{}");
        assert_eq!(a.head_started_ms.load(Ordering::Relaxed), 0);
        tokio::time::sleep(Duration::from_millis(5)).await;
        a.end_request();
        let idle = a.idle_since_ms.load(Ordering::Relaxed);
        assert!(idle > started, "{idle}");
        assert_eq!(
            verdict(&a, T, idle + 59_999),
            Verdict::WaitUntil(a.at(idle + 60_000))
        );
        assert_eq!(verdict(&a, T, idle + 60_000), Verdict::Idle);
    }

    #[tokio::test]
    async fn http2_frames_between_requests_start_no_head() {
        let a = Activity::new();
        a.on_read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        a.on_read(b"\x00\x00\x08\x06\x00");
        assert_eq!(a.head_started_ms.load(Ordering::Relaxed), 0);
        assert_eq!(verdict(&a, T, 60_001), Verdict::Idle);
    }
}
