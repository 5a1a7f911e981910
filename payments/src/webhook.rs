//! Stripe webhooks: verifying `Stripe-Signature` on the raw body, and reading the event.
//!
//! The header is `t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=...][,v0=...]`; the signed
//! payload is `"{t}.{raw body}"`. A delivery is genuine when some `v1` matches the HMAC
//! under some configured secret (several during a rotation, and Stripe sends one `v1`
//! per active secret) and `t` is within the tolerance of now (so a captured delivery
//! cannot be replayed later). Comparison is constant-time.

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Why a delivery was refused. All are answered 400: the sender is not Stripe, or the
/// delivery was altered or replayed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("Stripe-Signature has no timestamp or no v1 signature")]
    Malformed,
    #[error("the signed timestamp is outside the tolerance")]
    Stale,
    #[error("no signature matches a configured secret")]
    NoMatch,
}

/// Limits on what a header may carry, so a hostile one costs nothing to refuse.
const MAX_HEADER_LEN: usize = 4096;
const MAX_SIGNATURES: usize = 8;

/// Check a delivery's signature. `now_s` is the current Unix time (an input, for tests).
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[&str],
    tolerance_s: i64,
    now_s: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    if header.len() > MAX_HEADER_LEN {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp: Option<&str> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t),
            Some(("v1", sig)) if signatures.len() < MAX_SIGNATURES => {
                if let Ok(bytes) = hex::decode(sig) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let (Some(t), false) = (timestamp, signatures.is_empty()) else {
        return Err(SignatureError::Malformed);
    };
    let t_s: i64 = t.parse().map_err(|_| SignatureError::Malformed)?;
    if (now_s - t_s).abs() > tolerance_s {
        return Err(SignatureError::Stale);
    }
    for secret in secrets {
        for signature in &signatures {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
                continue;
            };
            mac.update(t.as_bytes());
            mac.update(b".");
            mac.update(body);
            if mac.verify_slice(signature).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::NoMatch)
}

/// The signature header Stripe would send for `body` at `t_s` under `secret` (tests, and
/// tools that replay events to a local server).
pub fn sign(body: &[u8], secret: &str, t_s: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(t_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t_s},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A Stripe event, as much of it as Navaro reads.
#[derive(Clone, Debug, Deserialize)]
pub struct Event {
    /// `evt_...`: deliveries of one event share it (Stripe retries, duplicates).
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: EventData,
}

#[derive(Clone, Debug, Deserialize)]
pub struct EventData {
    pub object: EventObject,
}

/// The object an event is about. Only its id and metadata are trusted enough to find
/// the payment; its state is re-read from the API, since events arrive out of order.
#[derive(Clone, Debug, Deserialize)]
pub struct EventObject {
    pub id: String,
    pub object: String,
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;

    #[test]
    fn a_signature_by_any_configured_secret_within_the_tolerance_passes() {
        let header = sign(BODY, "whsec_new", 1_000);
        assert_eq!(
            verify(Some(&header), BODY, &["whsec_old", "whsec_new"], 300, 1_100),
            Ok(())
        );
        // Several v1 values (a rotation at Stripe's end): one match is enough.
        let other = sign(BODY, "whsec_unknown", 1_000);
        let both = format!("{other},v1={}", header.split("v1=").nth(1).unwrap());
        assert_eq!(
            verify(Some(&both), BODY, &["whsec_new"], 300, 1_000),
            Ok(())
        );
    }

    #[test]
    fn altered_stale_unknown_and_malformed_deliveries_are_refused() {
        let header = sign(BODY, "whsec_a", 1_000);
        let altered = br#"{"id":"evt_1","type":"payment_intent.succeeded" }"#;
        assert_eq!(
            verify(Some(&header), altered, &["whsec_a"], 300, 1_000),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(Some(&header), BODY, &["whsec_a"], 300, 1_301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(Some(&header), BODY, &["whsec_a"], 300, 699),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(Some(&header), BODY, &["whsec_b"], 300, 1_000),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(None, BODY, &["whsec_a"], 300, 1_000),
            Err(SignatureError::Missing)
        );
        for bad in ["", "t=1000", "v1=00", "t=x,v1=00", "garbage"] {
            assert!(
                verify(Some(bad), BODY, &["whsec_a"], 300, 1_000).is_err(),
                "{bad:?}"
            );
        }
        // A signature of the body under another timestamp does not pass for this one.
        let moved = header.replace("t=1000", "t=1001");
        assert_eq!(
            verify(Some(&moved), BODY, &["whsec_a"], 300, 1_000),
            Err(SignatureError::NoMatch)
        );
    }
}
