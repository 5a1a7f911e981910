//! localstripe (PyPI), a stateful fake of Stripe's API, started on a free port for one
//! test. It must be installed (`.ci/run` does: `pip install localstripe==1.15.10`); a
//! test that cannot start it fails, it never skips.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

/// The API key tests use: localstripe accepts any `sk_...`.
pub const API_KEY: &str = "sk_test_navaro";
/// The webhook secret localstripe signs with, and the previous one (a rotation): the
/// server is configured with both.
pub const WEBHOOK_SECRET: &str = "whsec_navaro_current";
pub const OLD_WEBHOOK_SECRET: &str = "whsec_navaro_previous";

pub struct LocalStripe {
    child: Child,
    pub base: String,
    pub client: reqwest::Client,
}

impl LocalStripe {
    pub async fn start() -> anyhow::Result<LocalStripe> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("localstripe")
            .args(["--port", &port.to_string(), "--from-scratch"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("localstripe must be installed: pip install localstripe==1.15.10")?;
        let stripe = LocalStripe {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = stripe
                .client
                .get(format!("{}/v1/balance", stripe.base))
                .bearer_auth(API_KEY)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return Ok(stripe);
            }
            if Instant::now() > deadline {
                bail!("localstripe did not answer on port {port} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The settings that point a server at this localstripe.
    pub fn server_env(&self) -> Vec<(String, String)> {
        vec![
            ("NAVARO_PAYMENTS__PROVIDER".into(), "stripe".into()),
            (
                "NAVARO_PAYMENTS__STRIPE__BASE_URL".into(),
                self.base.clone(),
            ),
            ("NAVARO_PAYMENTS__STRIPE__API_KEY".into(), API_KEY.into()),
            (
                "NAVARO_PAYMENTS__STRIPE__WEBHOOK_SECRETS".into(),
                format!("[\"{OLD_WEBHOOK_SECRET}\", \"{WEBHOOK_SECRET}\"]"),
            ),
        ]
    }

    /// Have localstripe deliver its events to `url`, signed with `secret`.
    pub async fn register_webhook(&self, url: &str, secret: &str) {
        let response = self
            .client
            .post(format!("{}/_config/webhooks/navaro", self.base))
            .form(&[("url", url), ("secret", secret)])
            .send()
            .await
            .expect("localstripe answers");
        assert!(
            response.status().is_success(),
            "{:?}",
            response.text().await
        );
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(API_KEY)
            .form(form)
            .send()
            .await
            .expect("localstripe answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(API_KEY)
            .send()
            .await
            .expect("localstripe answers")
            .json()
            .await
            .expect("localstripe answers JSON")
    }

    /// What the app does with the client secret: attach a card and confirm. `card` is
    /// one of Stripe's test payment methods (`pm_card_visa`, `pm_card_chargeCustomerFail`).
    /// Returns the HTTP status of the confirmation (402 for a decline).
    pub async fn pay(&self, intent: &str, card: &str) -> u16 {
        let (status, body) = self
            .post(
                &format!("/v1/payment_intents/{intent}"),
                &[("payment_method", card)],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        self.post(&format!("/v1/payment_intents/{intent}/confirm"), &[])
            .await
            .0
    }

    /// The event of `kind` about `object_id`, as localstripe recorded it.
    pub async fn event_about(&self, kind: &str, object_id: &str) -> Option<Value> {
        let list = self.get(&format!("/v1/events?type={kind}&limit=100")).await;
        list["data"]
            .as_array()?
            .iter()
            .find(|e| e["data"]["object"]["id"] == object_id)
            .cloned()
    }
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
