//! Response bodies made of shared bytes.

use bytes::Bytes;

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
