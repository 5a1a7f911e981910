//! [`Stripe`]: the [`PaymentProvider`] over Stripe's HTTP API (form-encoded requests,
//! JSON answers, `Idempotency-Key` on every write).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;

use crate::provider::{
    CreateIntent, Intent, IntentStatus, OffSessionCharge, PaymentProvider, ProviderError, Refund,
    Setup,
};

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

/// A declined confirmation: Stripe's 402 carries the PaymentIntent it declined.
#[derive(Deserialize)]
struct DeclineBody {
    error: DeclineError,
}

#[derive(Deserialize)]
struct DeclineError {
    #[serde(default)]
    payment_intent: Option<StripeIntent>,
}

#[derive(Deserialize)]
struct StripeCustomer {
    id: String,
}

#[derive(Deserialize)]
struct StripeSetup {
    id: String,
    #[serde(default)]
    client_secret: Option<String>,
    status: String,
    #[serde(default)]
    customer: Option<String>,
    #[serde(default)]
    payment_method: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

impl From<StripeSetup> for Setup {
    fn from(s: StripeSetup) -> Setup {
        Setup {
            succeeded: s.status == "succeeded",
            id: s.id,
            client_secret: s.client_secret,
            customer: s.customer,
            payment_method: s.payment_method,
            metadata: s.metadata,
        }
    }
}

#[derive(Deserialize)]
struct ChargeList {
    data: Vec<ChargeItem>,
}

#[derive(Deserialize)]
struct ChargeItem {
    #[serde(default)]
    payment_intent: Option<String>,
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

    /// One request; answers the HTTP status and body, or `Unavailable` when the
    /// outcome is unknown (no answer, 5xx, 429, or 409: a request with this key is
    /// still in flight at Stripe).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(String, String)],
        idempotency_key: Option<&str>,
    ) -> Result<(u16, bytes::Bytes), ProviderError> {
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
            return Err(ProviderError::Unavailable(format!("{code}")));
        }
        Ok((code.as_u16(), body))
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(String, String)],
        idempotency_key: Option<&str>,
    ) -> Result<T, ProviderError> {
        let (code, body) = self.send(method, path, form, idempotency_key).await?;
        if !(200..300).contains(&code) {
            return Err(refused(code, &body));
        }
        serde_json::from_slice(&body).map_err(|e| ProviderError::Malformed(e.to_string()))
    }
}

fn refused(code: u16, body: &[u8]) -> ProviderError {
    let message = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.error.message.or(b.error.code))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    ProviderError::Refused {
        status: code,
        message,
    }
}

fn metadata_form(form: &mut Vec<(String, String)>, metadata: &BTreeMap<String, String>) {
    for (k, v) in metadata {
        form.push((format!("metadata[{k}]"), v.clone()));
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
            metadata_form(&mut form, &request.metadata);
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

    fn create_customer<'a>(
        &'a self,
        metadata: &'a BTreeMap<String, String>,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<String, ProviderError>> {
        async move {
            let mut form = Vec::new();
            metadata_form(&mut form, metadata);
            let customer: StripeCustomer = self
                .call(
                    reqwest::Method::POST,
                    "/v1/customers",
                    &form,
                    Some(idempotency_key),
                )
                .await?;
            Ok(customer.id)
        }
        .boxed()
    }

    fn create_setup<'a>(
        &'a self,
        customer: &'a str,
        metadata: &'a BTreeMap<String, String>,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Setup, ProviderError>> {
        async move {
            let mut form = vec![
                ("customer".to_owned(), path_id(customer)?.to_owned()),
                ("usage".to_owned(), "off_session".to_owned()),
                ("payment_method_types[]".to_owned(), "card".to_owned()),
            ];
            metadata_form(&mut form, metadata);
            let setup: StripeSetup = self
                .call(
                    reqwest::Method::POST,
                    "/v1/setup_intents",
                    &form,
                    Some(idempotency_key),
                )
                .await?;
            Ok(setup.into())
        }
        .boxed()
    }

    fn get_setup<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Setup, ProviderError>> {
        async move {
            let path = format!("/v1/setup_intents/{}", path_id(id)?);
            let setup: StripeSetup = self.call(reqwest::Method::GET, &path, &[], None).await?;
            Ok(setup.into())
        }
        .boxed()
    }

    fn charge_off_session(
        &self,
        charge: OffSessionCharge,
    ) -> BoxFuture<'_, Result<Intent, ProviderError>> {
        async move {
            let mut form = vec![
                ("amount".to_owned(), charge.amount_cents.to_string()),
                ("currency".to_owned(), charge.currency.to_lowercase()),
                ("customer".to_owned(), path_id(&charge.customer)?.to_owned()),
                (
                    "payment_method".to_owned(),
                    path_id(&charge.payment_method)?.to_owned(),
                ),
                ("payment_method_types[]".to_owned(), "card".to_owned()),
                ("off_session".to_owned(), "true".to_owned()),
                ("confirm".to_owned(), "true".to_owned()),
            ];
            metadata_form(&mut form, &charge.metadata);
            let (code, body) = self
                .send(
                    reqwest::Method::POST,
                    "/v1/payment_intents",
                    &form,
                    Some(&charge.idempotency_key),
                )
                .await?;
            if code == 402 {
                // Declined. Stripe's error carries the PaymentIntent with its decline;
                // without it (localstripe), the decline is the error's message.
                if let Ok(DeclineBody {
                    error:
                        DeclineError {
                            payment_intent: Some(intent),
                        },
                }) = serde_json::from_slice::<DeclineBody>(&body)
                {
                    return intent.into_intent();
                }
                return Err(refused(code, &body));
            }
            if !(200..300).contains(&code) {
                return Err(refused(code, &body));
            }
            serde_json::from_slice::<StripeIntent>(&body)
                .map_err(|e| ProviderError::Malformed(e.to_string()))?
                .into_intent()
        }
        .boxed()
    }

    fn find_charge<'a>(
        &'a self,
        customer: &'a str,
        key: &'a str,
        value: &'a str,
        created_after: i64,
    ) -> BoxFuture<'a, Result<Option<Intent>, ProviderError>> {
        async move {
            let path = format!(
                "/v1/charges?customer={}&created%5Bgt%5D={created_after}&limit=100",
                path_id(customer)?
            );
            let list: ChargeList = self.call(reqwest::Method::GET, &path, &[], None).await?;
            let mut found: Option<Intent> = None;
            for intent_id in list.data.into_iter().filter_map(|c| c.payment_intent) {
                let intent = self.get_intent(&intent_id).await?;
                if intent.metadata.get(key).map(String::as_str) != Some(value) {
                    continue;
                }
                // A succeeded one wins over an earlier declined attempt.
                if found.is_none() || intent.status == IntentStatus::Succeeded {
                    found = Some(intent);
                }
            }
            Ok(found)
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
