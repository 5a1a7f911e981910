//! JSON and MessagePack encodings of the wire types.
//!
//! MessagePack is written with field names (`to_vec_named`), so both encodings carry the
//! same names and a client can switch by content type alone. Decoding takes untrusted
//! bytes: it returns [`CodecError`] for anything that is not a valid value of the
//! requested type, and never panics (a cargo-fuzz target in `fuzz/` holds it to that).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// How deep nested MessagePack may go. Our types nest a handful of levels; the limit keeps
/// a hostile payload of nested arrays from costing stack.
const MSGPACK_MAX_DEPTH: usize = 32;

/// A wire encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    Json,
    MsgPack,
}

impl Encoding {
    /// The HTTP media type of this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => "application/json",
            Encoding::MsgPack => "application/msgpack",
        }
    }
}

/// A value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid MessagePack: {0}")]
    MsgPackDecode(#[from] rmp_serde::decode::Error),
    #[error("cannot encode as MessagePack: {0}")]
    MsgPackEncode(#[from] rmp_serde::encode::Error),
}

/// Encode a value.
pub fn encode<T: Serialize + ?Sized>(encoding: Encoding, value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(match encoding {
        Encoding::Json => serde_json::to_vec(value)?,
        Encoding::MsgPack => rmp_serde::to_vec_named(value)?,
    })
}

/// Decode untrusted bytes into a value of type `T`.
pub fn decode<T: DeserializeOwned>(encoding: Encoding, bytes: &[u8]) -> Result<T, CodecError> {
    match encoding {
        Encoding::Json => Ok(serde_json::from_slice(bytes)?),
        Encoding::MsgPack => {
            let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
            de.set_max_depth(MSGPACK_MAX_DEPTH);
            Ok(T::deserialize(&mut de)?)
        }
    }
}

/// A stable 64-bit fingerprint of a value (FNV-1a over its named MessagePack encoding).
///
/// Stable across processes and releases, unlike `std::hash`, because it is stored: an
/// idempotency record keeps the fingerprint of the command that used the key, and a retry
/// after a restart is compared against it.
pub fn fingerprint<T: Serialize + ?Sized>(value: &T) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    // Encoding our own types into a Vec cannot fail; an empty encoding would only make
    // the fingerprint weaker, never wrong.
    let bytes = rmp_serde::to_vec_named(value).unwrap_or_default();
    bytes.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}
