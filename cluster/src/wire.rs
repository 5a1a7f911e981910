//! The frames between nodes: a request forwarded to its establishment's owner, and the
//! owner's response, over one persistent TCP connection per pair of nodes, many in
//! flight at once (matched by id).
//!
//! A frame is `len: u32` (big-endian, the bytes after it), `kind: u8` (1 request,
//! 2 response), `id: u64`, `head_len: u32`, the head in MessagePack (method, path,
//! headers; or status, headers), then the body's raw bytes. The body is never
//! re-encoded, and no HTTP is parsed on the way.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame accepted: well above the gateway's body limit (64 KiB by default)
/// and any response (a month of availability is a few hundred KiB), and small enough
/// that a corrupt length cannot make a node allocate gigabytes.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

const KIND_REQUEST: u8 = 1;
const KIND_RESPONSE: u8 = 2;

/// A forwarded request, without its body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestHead {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub headers: Vec<(String, Vec<u8>)>,
    /// The client's address as the forwarding node saw it (for logs and per-IP limits).
    pub client: Option<String>,
}

/// The owner's response, without its body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Request {
        id: u64,
        head: RequestHead,
        body: Vec<u8>,
    },
    Response {
        id: u64,
        head: ResponseHead,
        body: Vec<u8>,
    },
}

fn invalid(why: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why.into())
}

impl Frame {
    /// The frame's bytes, length prefix included.
    pub fn encode(&self) -> std::io::Result<Vec<u8>> {
        let (kind, id, head, body) = match self {
            Frame::Request { id, head, body } => (KIND_REQUEST, *id, rmp_serde::to_vec(head), body),
            Frame::Response { id, head, body } => {
                (KIND_RESPONSE, *id, rmp_serde::to_vec(head), body)
            }
        };
        let head = head.map_err(|e| invalid(e.to_string()))?;
        let len = 1 + 8 + 4 + head.len() + body.len();
        if len > MAX_FRAME_BYTES {
            return Err(invalid("frame too large"));
        }
        let mut out = Vec::with_capacity(4 + len);
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.push(kind);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&(head.len() as u32).to_be_bytes());
        out.extend_from_slice(&head);
        out.extend_from_slice(body);
        Ok(out)
    }

    /// Parse one frame's bytes (after the length prefix).
    pub fn decode(bytes: &[u8]) -> std::io::Result<Frame> {
        if bytes.len() < 13 {
            return Err(invalid("frame shorter than its header"));
        }
        let kind = bytes[0];
        let id = u64::from_be_bytes(bytes[1..9].try_into().unwrap_or_default());
        let head_len = u32::from_be_bytes(bytes[9..13].try_into().unwrap_or_default()) as usize;
        let rest = &bytes[13..];
        if head_len > rest.len() {
            return Err(invalid("frame head longer than the frame"));
        }
        let (head, body) = rest.split_at(head_len);
        let body = body.to_vec();
        match kind {
            KIND_REQUEST => Ok(Frame::Request {
                id,
                head: rmp_serde::from_slice(head).map_err(|e| invalid(e.to_string()))?,
                body,
            }),
            KIND_RESPONSE => Ok(Frame::Response {
                id,
                head: rmp_serde::from_slice(head).map_err(|e| invalid(e.to_string()))?,
                body,
            }),
            other => Err(invalid(format!("unknown frame kind {other}"))),
        }
    }

    /// Read one frame; `None` at a clean end of stream.
    pub async fn read(reader: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Frame>> {
        let mut len = [0u8; 4];
        match reader.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(invalid("frame too large"));
        }
        let mut bytes = vec![0u8; len];
        reader.read_exact(&mut bytes).await?;
        Frame::decode(&bytes).map(Some)
    }

    pub async fn write(&self, writer: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<()> {
        writer.write_all(&self.encode()?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_bad_ones_are_refused() {
        let request = Frame::Request {
            id: 7,
            head: RequestHead {
                method: "POST".into(),
                uri: "/v1/establishments/x/bookings?a=1".into(),
                headers: vec![("idempotency-key".into(), b"k1".to_vec())],
                client: Some("127.0.0.1:5".into()),
            },
            body: b"{\"a\":1}".to_vec(),
        };
        let response = Frame::Response {
            id: 7,
            head: ResponseHead {
                status: 201,
                headers: vec![],
            },
            body: vec![0, 1, 2],
        };
        let mut buffer = Vec::new();
        request.write(&mut buffer).await.unwrap();
        response.write(&mut buffer).await.unwrap();
        let mut reader = buffer.as_slice();
        assert_eq!(Frame::read(&mut reader).await.unwrap(), Some(request));
        assert_eq!(Frame::read(&mut reader).await.unwrap(), Some(response));
        assert_eq!(Frame::read(&mut reader).await.unwrap(), None);

        let huge = (MAX_FRAME_BYTES as u32 + 1).to_be_bytes();
        assert!(Frame::read(&mut huge.as_slice()).await.is_err());
        assert!(Frame::decode(&[9; 20]).is_err());
        assert!(Frame::decode(&[1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 99]).is_err());
    }
}
