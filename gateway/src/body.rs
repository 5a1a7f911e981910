//! Response bodies made of shared bytes, and the renderings they are made of, kept in
//! the engine's slots for readers.

use std::any::Any;
use std::borrow::Cow;
use std::sync::OnceLock;

use bytes::Bytes;

/// What `make` renders, kept in one of the engine's slots for readers (a cached day's
/// `rendered`, a view's `setup_rendered`): made on first use, then borrowed by every
/// reader of the slot. If the slot holds someone else's type, ours is made for this
/// answer only.
pub fn kept<T>(slot: &OnceLock<Box<dyn Any + Send + Sync>>, make: impl Fn() -> T) -> Cow<'_, T>
where
    T: Any + Clone + Send + Sync,
{
    match slot.get_or_init(|| Box::new(make())).downcast_ref::<T>() {
        Some(kept) => Cow::Borrowed(kept),
        None => Cow::Owned(make()),
    }
}

/// A response body of shared chunks with its exact length (hyper sends it as
/// `Content-Length`), written to the socket without being copied into one buffer.
#[derive(Clone, Debug)]
pub struct Chunks {
    chunks: std::vec::IntoIter<Bytes>,
    remaining: u64,
}

impl Chunks {
    pub fn new(chunks: Vec<Bytes>) -> Chunks {
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Chunks {
            chunks: chunks.into_iter(),
            remaining,
        }
    }

    /// The bytes not yet taken by [`http_body::Body::poll_frame`]: the whole body's
    /// length until it is sent.
    pub fn len(&self) -> usize {
        self.remaining as usize
    }

    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// How many chunks are not yet taken (hyper hands up to 16 to one `writev`).
    pub fn chunks_left(&self) -> usize {
        self.chunks.len()
    }

    /// What is left of the body in one buffer (a copy: for tests and benches).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.len());
        self.chunks
            .as_slice()
            .iter()
            .for_each(|c| out.extend_from_slice(c));
        Bytes::from(out)
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let chunk = self.chunks.next();
        if let Some(chunk) = &chunk {
            self.remaining -= chunk.len() as u64;
        }
        std::task::Poll::Ready(chunk.map(|c| Ok(http_body::Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.len() == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}
