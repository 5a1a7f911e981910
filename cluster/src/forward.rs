//! The forwarding side: one persistent TCP connection per peer, opened on first use and
//! again after it breaks, carrying many requests at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::wire::{Frame, RequestHead, ResponseHead};

/// Frames queued for one peer's connection before a send fails: bounds memory when a
/// peer stops reading; the gateway's in-flight cap keeps normal load far below it.
const QUEUE_FRAMES: usize = 4096;

/// How long requests in flight to a node that stopped being live may still be answered
/// before their callers are told `Lost`.
pub const LEFT_GRACE: Duration = Duration::from_millis(500);

/// How long opening a connection to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a forwarded request got no answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ForwardError {
    /// Nothing reached the peer (it could not be connected to): safe to send again.
    #[error("cannot reach node at {0}")]
    NotSent(String),
    /// The request may have reached the peer, but no answer came (the connection broke
    /// or the timeout ran out): its outcome is unknown.
    #[error("no answer from node at {0}")]
    Lost(String),
}

type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<(ResponseHead, Vec<u8>)>>>>;

struct Connection {
    tx: mpsc::Sender<Frame>,
    waiting: Waiting,
    closed: Arc<AtomicBool>,
}

/// Connections to the other nodes, by address.
pub struct Peers {
    connections: Mutex<HashMap<String, Arc<Connection>>>,
    next_id: AtomicU64,
    timeout: Duration,
}

impl Peers {
    pub fn new(timeout: Duration) -> Peers {
        Peers {
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            timeout,
        }
    }

    /// Send a request to the node at `addr` and wait for its answer.
    pub async fn send(
        &self,
        addr: &str,
        head: RequestHead,
        body: Vec<u8>,
    ) -> Result<(ResponseHead, Vec<u8>), ForwardError> {
        let connection = self.connection(addr).await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        lock(&connection.waiting).insert(id, reply);
        if connection
            .tx
            .try_send(Frame::Request { id, head, body })
            .is_err()
        {
            lock(&connection.waiting).remove(&id);
            return Err(ForwardError::NotSent(addr.to_owned()));
        }
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(answer)) => Ok(answer),
            _ => {
                lock(&connection.waiting).remove(&id);
                Err(ForwardError::Lost(addr.to_owned()))
            }
        }
    }

    /// Close the connections to every address not in `live`: a node that stopped being
    /// live (dead, or paused past its lease) may never answer what was sent to it, and
    /// its callers are better told soon (`Lost`: retry with the same key, which the
    /// next owner serves) than at the timeout. Nothing more is sent on them at once;
    /// what is in flight gets [`LEFT_GRACE`] to be answered first (a node that left
    /// cleanly answers everything it is still sent, quickly).
    pub fn retain(&self, live: &[&str]) {
        lock(&self.connections).retain(|addr, connection| {
            let keep = live.contains(&addr.as_str());
            if !keep {
                connection.closed.store(true, Ordering::Release);
                let waiting = connection.waiting.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(LEFT_GRACE).await;
                    lock(&waiting).clear();
                });
            }
            keep
        });
    }

    async fn connection(&self, addr: &str) -> Result<Arc<Connection>, ForwardError> {
        if let Some(c) = lock(&self.connections).get(addr)
            && !c.closed.load(Ordering::Acquire)
        {
            return Ok(c.clone());
        }
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| ForwardError::NotSent(addr.to_owned()))?
            .map_err(|_| ForwardError::NotSent(addr.to_owned()))?;
        let _ = stream.set_nodelay(true);
        let connection = Arc::new(start(stream, addr.to_owned()));
        let mut connections = lock(&self.connections);
        // Another caller may have connected meanwhile; either connection works, the
        // later one replaces the map's entry and the other closes when its users finish.
        connections.insert(addr.to_owned(), connection.clone());
        Ok(connection)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Start a connection's writer and reader tasks.
fn start(stream: TcpStream, addr: String) -> Connection {
    let (mut read, mut write) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Frame>(QUEUE_FRAMES);
    let waiting: Waiting = Arc::default();
    let closed = Arc::new(AtomicBool::new(false));
    let close = {
        let waiting = waiting.clone();
        let closed = closed.clone();
        move || {
            closed.store(true, Ordering::Release);
            // Dropping the senders answers every waiting caller with `Lost`.
            lock(&waiting).clear();
        }
    };
    let on_write_end = close.clone();
    let peer = addr.clone();
    tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if let Err(e) = frame.write(&mut write).await {
                tracing::warn!(peer = %peer, error = %e, "forwarding connection broke while writing");
                break;
            }
        }
        on_write_end();
    });
    let reader_waiting = waiting.clone();
    tokio::spawn(async move {
        loop {
            match Frame::read(&mut read).await {
                Ok(Some(Frame::Response { id, head, body })) => {
                    if let Some(reply) = lock(&reader_waiting).remove(&id) {
                        let _ = reply.send((head, body));
                    }
                }
                Ok(Some(Frame::Request { .. })) => {
                    tracing::warn!(peer = %addr, "a peer sent a request on a forwarding connection; closing it");
                    break;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(peer = %addr, error = %e, "forwarding connection broke while reading");
                    break;
                }
            }
        }
        close();
    });
    Connection {
        tx,
        waiting,
        closed,
    }
}
