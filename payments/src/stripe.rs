//! [`Stripe`]: the [`PaymentProvider`] over Stripe's HTTP API (form-encoded requests,
//! JSON answers, `Idempotency-Key` on every write).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;

use crate::provider::{CreateIntent, Intent, IntentStatus, PaymentProvider, ProviderError, Refund};

/// A Stripe client.
#[derive(Clone)]
pub struct Stripe {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// A PaymentIntent as Stripe answers it (the fields Navaro reads).
#[derive(Deserialize)]
struct StripeIntent {
    id: String,
    #[serde(default)]
    client_secret: Option<String>,
    status: String,
    amount: i64,
    currency: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    last_payment_error: Option<StripeError>,
}

#[derive(Deserialize)]
struct StripeError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: StripeError,
}

#[derive(Deserialize)]
struct StripeRefund {
    id: String,
    amount: i64,
}

/// Stripe's statuses in Navaro's words (an unknown one is malformed, not guessed).
fn status(stripe: &str) -> Result<IntentStatus, ProviderError> {
    Ok(match stripe {
        "requires_payment_method" | "requires_confirmation" | "requires_action" => {
            IntentStatus::RequiresPayment
        }
        "processing" => IntentStatus::Processing,
        "requires_capture" => IntentStatus::RequiresCapture,
        "succeeded" => IntentStatus::Succeeded,
        "canceled" => IntentStatus::Canceled,
        other => {
            return Err(ProviderError::Malformed(format!(
                "unknown PaymentIntent status {other:?}"
            )));
        }
    })
}

impl StripeIntent {
    fn into_intent(self) -> Result<Intent, ProviderError> {
        Ok(Intent {
            status: status(&self.status)?,
            id: self.id,
            client_secret: self.client_secret,
            amount_cents: self.amount,
            currency: self.currency,
            metadata: self.metadata,
            failure: self
                .last_payment_error
                .map(|e| e.message.or(e.code).unwrap_or_else(|| "declined".into())),
        })
    }
}

impl Stripe {
    /// A client of the API at `base_url` (`https://api.stripe.com`, or localstripe).
    pub fn new(base_url: &str, api_key: &str, timeout: Duration) -> Result<Stripe, ProviderError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        Ok(Stripe {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
        })
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(String, String)],
        idempotency_key: Option<&str>,
    ) -> Result<T, ProviderError> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base_url))
            .bearer_auth(&self.api_key);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if method == reqwest::Method::POST {
            request = request
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(encode_form(form));
        }
        let response = request
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        let code = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        if code.is_server_error() || code.as_u16() == 429 || code.as_u16() == 409 {
            // 409: a request with this key is still in flight at Stripe; retry later.
            return Err(ProviderError::Unavailable(format!("{code}")));
        }
        if !code.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .ok()
                .and_then(|b| b.error.message.or(b.error.code))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Err(ProviderError::Refused {
                status: code.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|e| ProviderError::Malformed(e.to_string()))
    }
}

/// `application/x-www-form-urlencoded`, as Stripe takes its parameters.
fn encode_form(form: &[(String, String)]) -> String {
    fn escape(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
    form.iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A Stripe object id as a URL path segment: Stripe ids are `[A-Za-z0-9_]`; anything
/// else is refused before it reaches a URL.
fn path_id(id: &str) -> Result<&str, ProviderError> {
    if !id.is_empty()
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(id)
    } else {
        Err(ProviderError::Refused {
            status: 400,
            message: format!("{id:?} is not a Stripe id"),
        })
    }
}

impl PaymentProvider for Stripe {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn create_intent(&self, request: CreateIntent) -> BoxFuture<'_, Result<Intent, ProviderError>> {
        async move {
            let mut form = vec![
                ("amount".to_owned(), request.amount_cents.to_string()),
                ("currency".to_owned(), request.currency.to_lowercase()),
                ("payment_method_types[]".to_owned(), "card".to_owned()),
            ];
            for (k, v) in &request.metadata {
                form.push((format!("metadata[{k}]"), v.clone()));
            }
            let intent: StripeIntent = self
                .call(
                    reqwest::Method::POST,
                    "/v1/payment_intents",
                    &form,
                    Some(&request.idempotency_key),
                )
                .await?;
            intent.into_intent()
        }
        .boxed()
    }

    fn get_intent<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Intent, ProviderError>> {
        async move {
            let path = format!("/v1/payment_intents/{}", path_id(id)?);
            let intent: StripeIntent = self.call(reqwest::Method::GET, &path, &[], None).await?;
            intent.into_intent()
        }
        .boxed()
    }

    fn cancel_intent<'a>(
        &'a self,
        id: &'a str,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Intent, ProviderError>> {
        async move {
            let path = format!("/v1/payment_intents/{}/cancel", path_id(id)?);
            let intent: StripeIntent = self
                .call(reqwest::Method::POST, &path, &[], Some(idempotency_key))
                .await?;
            intent.into_intent()
        }
        .boxed()
    }

    fn refund<'a>(
        &'a self,
        intent_id: &'a str,
        amount_cents: i64,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Refund, ProviderError>> {
        async move {
            let form = vec![
                ("payment_intent".to_owned(), path_id(intent_id)?.to_owned()),
                ("amount".to_owned(), amount_cents.to_string()),
            ];
            let refund: StripeRefund = self
                .call(
                    reqwest::Method::POST,
                    "/v1/refunds",
                    &form,
                    Some(idempotency_key),
                )
                .await?;
            Ok(Refund {
                id: refund.id,
                amount_cents: refund.amount,
            })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_percent_encoded() {
        let form = vec![
            ("metadata[payment_id]".to_owned(), "a b&c".to_owned()),
            ("amount".to_owned(), "3000".to_owned()),
        ];
        assert_eq!(
            encode_form(&form),
            "metadata%5Bpayment_id%5D=a%20b%26c&amount=3000"
        );
    }

    #[test]
    fn ids_that_could_change_the_path_are_refused() {
        assert!(path_id("pi_123abc").is_ok());
        for bad in ["", "pi_1/../../v1/refunds", "pi 1", "pi_1?x=1"] {
            assert!(path_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unknown_statuses_are_malformed_not_guessed() {
        assert_eq!(status("succeeded").unwrap(), IntentStatus::Succeeded);
        assert_eq!(
            status("requires_payment_method").unwrap(),
            IntentStatus::RequiresPayment
        );
        assert!(matches!(status("paid"), Err(ProviderError::Malformed(_))));
    }
}
