//! The owner's side of forwarding: a listener for the other nodes' connections; each
//! request frame is handed to the [`Handler`] (the gateway's router) on its own task,
//! and answered on the same connection when done, in whatever order they finish.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::ClusterError;
use crate::wire::{Frame, RequestHead, ResponseHead};

/// Responses queued for one connection: bounded like the forwarding side's queue.
const QUEUE_FRAMES: usize = 4096;

/// What serves a forwarded request.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        head: RequestHead,
        body: Vec<u8>,
    ) -> BoxFuture<'static, (ResponseHead, Vec<u8>)>;
}

pub struct InternalServer {
    listener: TcpListener,
}

impl InternalServer {
    pub async fn bind(addr: SocketAddr) -> Result<InternalServer, ClusterError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ClusterError::Bind { addr, source })?;
        Ok(InternalServer { listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accept connections until the task is dropped.
    pub fn spawn(self, handler: Arc<dyn Handler>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.listener.accept().await {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(serve(stream, peer, handler.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "internal listener accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        })
    }
}

async fn serve(stream: tokio::net::TcpStream, peer: SocketAddr, handler: Arc<dyn Handler>) {
    let (mut read, mut write) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Frame>(QUEUE_FRAMES);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if frame.write(&mut write).await.is_err() {
                break;
            }
        }
    });
    loop {
        match Frame::read(&mut read).await {
            Ok(Some(Frame::Request { id, head, body })) => {
                let answer = handler.handle(head, body);
                let tx = tx.clone();
                tokio::spawn(async move {
                    let (head, body) = answer.await;
                    let _ = tx.send(Frame::Response { id, head, body }).await;
                });
            }
            Ok(Some(Frame::Response { .. })) | Ok(None) => break,
            Err(e) => {
                tracing::warn!(peer = %peer, error = %e, "internal connection broke");
                break;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}
