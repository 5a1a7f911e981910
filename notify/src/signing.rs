//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>): a secret is
//! `whsec_` + base64 of its key bytes; a delivery carries `webhook-id`,
//! `webhook-timestamp` (Unix seconds) and `webhook-signature`, a space-separated list of
//! `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")): one per secret in force
//! (two during a rotation's overlap), any of which a receiver accepts.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Bytes of key in a secret we generate: 256 bits, HMAC-SHA256's block-size sweet spot.
const KEY_BYTES: usize = 32;

/// Why a secret cannot sign.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a whsec_ secret: {0}")]
pub struct BadSecret(&'static str);

/// A new random secret, `whsec_...`.
pub fn new_secret() -> String {
    let mut key = [0u8; KEY_BYTES];
    // The OS's generator; failing it there is nothing safe to sign with.
    getrandom::fill(&mut key).expect("the operating system's random generator works");
    format!("whsec_{}", STANDARD.encode(key))
}

fn key_of(secret: &str) -> Result<Vec<u8>, BadSecret> {
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or(BadSecret("missing the whsec_ prefix"))?;
    STANDARD
        .decode(encoded)
        .map_err(|_| BadSecret("not base64"))
}

/// `v1,<base64 signature>` of one message under one secret.
pub fn sign(secret: &str, id: &str, timestamp_s: i64, body: &[u8]) -> Result<String, BadSecret> {
    let key = key_of(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| BadSecret("empty key"))?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` header's value: one signature per secret, space-separated.
pub fn signature_header(
    secrets: &[&str],
    id: &str,
    timestamp_s: i64,
    body: &[u8],
) -> Result<String, BadSecret> {
    let signatures: Result<Vec<String>, BadSecret> = secrets
        .iter()
        .map(|s| sign(s, id, timestamp_s, body))
        .collect();
    Ok(signatures?.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference vector of the Standard Webhooks libraries (their test suites'
    /// `msg_p5jXN8AQM9LWM0D4loKWxJek`, timestamp 1614265330).
    #[test]
    fn reproduces_the_reference_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, id, 1_614_265_330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn signs_with_every_secret_in_force() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        let header = signature_header(&[&a, &b], "msg_1", 5, b"{}").unwrap();
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&a, "msg_1", 5, b"{}").unwrap());
        assert_eq!(parts[1], sign(&b, "msg_1", 5, b"{}").unwrap());
    }

    #[test]
    fn refuses_secrets_that_are_not_whsec() {
        assert!(sign("secret", "m", 1, b"").is_err());
        assert!(sign("whsec_***", "m", 1, b"").is_err());
    }
}
