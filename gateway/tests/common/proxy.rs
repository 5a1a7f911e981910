//! A TCP proxy a test can cut: the database "goes away" for one server without
//! stopping the Postgres every other test shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Forward,
    /// Connections are closed (the database went away: the client sees resets).
    Cut,
    /// Connections stay open and carry nothing (a partition: the client sees silence
    /// until its own timeouts fire).
    Frozen,
}

/// Forwards `127.0.0.1:<port>` to an upstream address until cut or frozen.
pub struct Proxy {
    pub port: u16,
    mode: watch::Sender<Mode>,
    /// Connections accepted and forwarded so far (the reconnects are observable).
    forwarded: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (mode, _) = watch::channel(Mode::Forward);
        let forwarded = Arc::new(AtomicU64::new(0));
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream.to_owned(),
            mode.clone(),
            forwarded.clone(),
        ));
        Ok(Proxy {
            port,
            mode,
            forwarded,
            accept,
        })
    }

    /// Drop every open connection and refuse new ones (they are accepted and closed at
    /// once, as a database that went away would).
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    /// Keep every connection open but carry nothing, and hold new ones the same way.
    /// On [`Proxy::restore`] the frozen connections are closed.
    pub fn freeze(&self) {
        self.mode.send_replace(Mode::Frozen);
    }

    /// Forward again.
    pub fn restore(&self) {
        self.mode.send_replace(Mode::Forward);
    }

    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: String,
    mode: watch::Sender<Mode>,
    forwarded: Arc<AtomicU64>,
) {
    while let Ok((mut client, _)) = listener.accept().await {
        let mut state = mode.subscribe();
        let now = *state.borrow_and_update();
        match now {
            Mode::Cut => drop(client),
            Mode::Frozen => {
                tokio::spawn(async move {
                    let _ = state.wait_for(|m| *m != Mode::Frozen).await;
                    drop(client);
                });
            }
            Mode::Forward => {
                let upstream = upstream.clone();
                forwarded.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = state.wait_for(|m| *m != Mode::Forward) => {}
                    }
                    // Frozen: hold both ends, silent, until the freeze ends.
                    let _ = state.wait_for(|m| *m != Mode::Frozen).await;
                    // Both sockets drop here: the server sees its connection closed.
                });
            }
        }
    }
}
