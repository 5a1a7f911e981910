// Figment's Jail closures return figment::Result, whose error is large by design.
#![allow(clippy::result_large_err)]

use figment::{Figment, Jail};

use super::*;

fn load_in(jail: &Jail, file: Option<&str>) -> Result<Settings, ConfigError> {
    let mut figment = Figment::new();
    if let Some(name) = file {
        figment = figment.merge(Toml::file_exact(jail.directory().join(name)));
    }
    Settings::from_figment(figment.merge(Settings::env_provider()))
}

#[test]
fn defaults_are_dev_sqlite_on_localhost_8080() {
    Jail::expect_with(|jail| {
        let s = load_in(jail, None).unwrap();
        assert!(s.dev_mode);
        assert_eq!(s.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url().expose(), "sqlite://data/navaro.db");
        assert!(!s.uses_postgres());
        Ok(())
    });
}

#[test]
fn file_then_env_override() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "navaro.toml",
            r#"
            data_dir = "/var/lib/navaro"
            [http]
            listen = "0.0.0.0:9000"
            [auth]
            admin_emails = ["Root@Example.com"]
            "#,
        )?;
        jail.set_env("NAVARO_HTTP__LISTEN", "127.0.0.1:0");
        jail.set_env("NAVARO_LIMITS__LOGIN_BURST", "3");
        let s = load_in(jail, Some("navaro.toml")).unwrap();
        assert_eq!(s.http.listen.port(), 0);
        assert_eq!(s.limits.login_burst, 3);
        assert_eq!(
            s.database_url().expose(),
            "sqlite:///var/lib/navaro/navaro.db"
        );
        assert!(s.is_admin(uuid::Uuid::nil(), "root@example.com"));
        Ok(())
    });
}

#[test]
fn database_url_env_switches_to_postgres() {
    Jail::expect_with(|jail| {
        jail.set_env("NAVARO_DATABASE_URL", "postgres://u:pw@localhost/navaro");
        let s = load_in(jail, None).unwrap();
        assert!(s.uses_postgres());
        Ok(())
    });
}

#[test]
fn unknown_keys_are_rejected() {
    Jail::expect_with(|jail| {
        jail.create_file("navaro.toml", "[http]\nlisten_addr = \"0.0.0.0:1\"\n")?;
        let err = load_in(jail, Some("navaro.toml")).unwrap_err();
        assert!(err.to_string().contains("listen_addr"), "{err}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("NAVARO_LIMITS__PER_IP", "5");
        assert!(load_in(jail, None).is_err());
        Ok(())
    });
}

#[test]
fn default_signing_key_refused_outside_dev_mode() {
    Jail::expect_with(|jail| {
        jail.set_env("NAVARO_DEV_MODE", "false");
        assert!(matches!(
            load_in(jail, None),
            Err(ConfigError::DefaultSigningKey)
        ));
        jail.set_env("NAVARO_AUTH__SIGNING_KEY__SECRET", "short");
        assert!(matches!(
            load_in(jail, None),
            Err(ConfigError::WeakKey { .. })
        ));
        jail.set_env(
            "NAVARO_AUTH__SIGNING_KEY__SECRET",
            "0123456789abcdef0123456789abcdef-prod",
        );
        assert!(load_in(jail, None).is_ok());
        Ok(())
    });
}

#[test]
fn duplicate_kids_are_rejected() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "navaro.toml",
            "[[auth.verification_keys]]\nkid = \"dev\"\nsecret = \"x\"\n",
        )?;
        assert!(matches!(
            load_in(jail, Some("navaro.toml")),
            Err(ConfigError::DuplicateKid(_))
        ));
        Ok(())
    });
}

#[test]
fn secrets_are_redacted_in_debug() {
    Jail::expect_with(|jail| {
        jail.set_env("NAVARO_DATABASE_URL", "postgres://u:hunter2@db/navaro");
        let s = load_in(jail, None).unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains(DEV_SIGNING_KEY), "{printed}");
        assert!(printed.contains("redacted"));
        Ok(())
    });
}

#[test]
fn the_example_file_is_valid_and_matches_the_defaults() {
    Jail::expect_with(|jail| {
        jail.create_file("example.toml", include_str!("../navaro.example.toml"))?;
        let s = load_in(jail, Some("example.toml")).unwrap();
        let d = Settings::default();
        assert_eq!(s.http.listen, d.http.listen);
        assert_eq!(s.http.body_limit_bytes, d.http.body_limit_bytes);
        assert_eq!(s.http.header_read_timeout_ms, d.http.header_read_timeout_ms);
        assert_eq!(s.http.body_read_timeout_ms, d.http.body_read_timeout_ms);
        assert_eq!(s.http.keep_alive_idle_ms, d.http.keep_alive_idle_ms);
        assert_eq!(s.limits.login_burst, d.limits.login_burst);
        assert_eq!(s.websocket.max_lag_events, d.websocket.max_lag_events);
        assert_eq!(s.auth.signing_key.kid, d.auth.signing_key.kid);
        assert_eq!(s.cluster.enabled, d.cluster.enabled);
        assert_eq!(s.cluster.internal_listen, d.cluster.internal_listen);
        assert_eq!(s.cluster.redis_prefix, d.cluster.redis_prefix);
        assert_eq!(s.cluster.lease_ttl_ms, d.cluster.lease_ttl_ms);
        assert_eq!(s.cluster.lease_margin_ms, d.cluster.lease_margin_ms);
        assert_eq!(s.cluster.forward_timeout_ms, d.cluster.forward_timeout_ms);
        assert_eq!(s.notify.reminders_minutes, d.notify.reminders_minutes);
        assert_eq!(s.notify.retry_schedule_ms, d.notify.retry_schedule_ms);
        assert_eq!(s.push.base_url, d.push.base_url);
        assert_eq!(
            s.webhooks.disable_after_hours,
            d.webhooks.disable_after_hours
        );
        assert_eq!(s.auth.token_ttl_minutes, d.auth.token_ttl_minutes);
        assert_eq!(s.auth.refresh_ttl_days, d.auth.refresh_ttl_days);
        Ok(())
    });
}

#[test]
fn store_keys_come_from_the_environment_and_zero_is_refused() {
    Jail::expect_with(|jail| {
        let s = load_in(jail, None).unwrap();
        assert_eq!(s.store.writers, None, "unset keeps the store's default");
        jail.set_env("NAVARO_STORE__WRITERS", "1");
        jail.set_env("NAVARO_STORE__CALL_TIMEOUT_MS", "3000");
        jail.set_env("NAVARO_STORE__GROUP_MAX_WAIT_MS", "0");
        let s = load_in(jail, None).unwrap();
        assert_eq!(s.store.writers, Some(1));
        assert_eq!(s.store.call_timeout_ms, Some(3000));
        assert_eq!(
            s.store.group_max_wait_ms,
            Some(0),
            "zero (never linger) is allowed"
        );
        jail.set_env("NAVARO_STORE__ACQUIRE_TIMEOUT_MS", "0");
        let refused = load_in(jail, None).unwrap_err();
        assert!(
            matches!(
                refused,
                ConfigError::OutOfRange {
                    field: "store.acquire_timeout_ms",
                    ..
                }
            ),
            "{refused:?}"
        );
        Ok(())
    });
}

#[test]
fn a_pro_dir_without_an_index_is_refused_naming_the_key() {
    Jail::expect_with(|jail| {
        jail.create_dir("board")?;
        jail.set_env("NAVARO_WEB__PRO_DIR", "board");
        let refused = load_in(jail, None).unwrap_err();
        assert!(
            matches!(
                refused,
                ConfigError::OutOfRange {
                    field: "web.pro_dir",
                    ..
                }
            ),
            "{refused:?}"
        );
        assert!(refused.to_string().contains("web.pro_dir"), "{refused}");
        jail.create_file("board/index.html", "<!doctype html>")?;
        let s = load_in(jail, None).unwrap();
        assert_eq!(s.web.pro_dir, Some(std::path::PathBuf::from("board")));
        Ok(())
    });
}

#[test]
fn a_history_window_out_of_range_is_refused_naming_the_key() {
    Jail::expect_with(|jail| {
        let s = load_in(jail, None).unwrap();
        assert_eq!(
            s.engine.history_days, None,
            "unset keeps the engine's default"
        );
        jail.set_env("NAVARO_ENGINE__HISTORY_DAYS", "30");
        assert_eq!(load_in(jail, None).unwrap().engine.history_days, Some(30));
        for bad in ["1", "0", "367"] {
            jail.set_env("NAVARO_ENGINE__HISTORY_DAYS", bad);
            let refused = load_in(jail, None).unwrap_err();
            assert!(
                matches!(
                    refused,
                    ConfigError::OutOfRange {
                        field: "engine.history_days",
                        ..
                    }
                ),
                "{bad}: {refused:?}"
            );
            assert!(refused.to_string().contains("engine.history_days"));
        }
        Ok(())
    });
}

#[test]
fn notify_settings_are_checked_naming_the_key() {
    Jail::expect_with(|jail| {
        let s = load_in(jail, None).unwrap();
        assert_eq!(s.notify.reminders_minutes, [1440, 120]);
        assert!(
            !s.webhooks.allow_private_addresses,
            "SSRF guard on by default"
        );
        let refused_field = |jail: &mut Jail, key: &str, value: &str| {
            jail.set_env(key, value);
            let e = load_in(jail, None).unwrap_err();
            jail.clear_env();
            match e {
                ConfigError::OutOfRange { field, .. } => field,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            refused_field(jail, "NAVARO_NOTIFY__REMINDERS_MINUTES", "[0]"),
            "notify.reminders_minutes"
        );
        assert_eq!(
            refused_field(jail, "NAVARO_WEBHOOKS__TIMEOUT_MS", "0"),
            "webhooks.timeout_ms"
        );
        for bad in [
            "[0]",
            "[1000, 86400001]",
            &format!("[{}]", ["1"; 101].join(",")),
        ] {
            assert_eq!(
                refused_field(jail, "NAVARO_NOTIFY__RETRY_SCHEDULE_MS", bad),
                "notify.retry_schedule_ms",
                "{bad}"
            );
        }
        jail.set_env("NAVARO_NOTIFY__RETRY_SCHEDULE_MS", "[500, 500]");
        assert_eq!(
            load_in(jail, None).unwrap().notify.retry_schedule_ms,
            [500, 500]
        );
        jail.clear_env();
        assert_eq!(
            refused_field(jail, "NAVARO_PUSH__BASE_URL", "exp.host"),
            "push.base_url"
        );
        jail.set_env("NAVARO_DEV_MODE", "false");
        jail.set_env("NAVARO_AUTH__SIGNING_KEY__SECRET", "k".repeat(40));
        jail.set_env("NAVARO_NOTIFY__DEV_CLOCK_OFFSET_SECONDS", "3600");
        let e = load_in(jail, None).unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::OutOfRange {
                    field: "notify.dev_clock_offset_seconds",
                    ..
                }
            ),
            "{e:?}"
        );
        Ok(())
    });
}

/// The error text of loading with these environment variables (plus a Postgres URL
/// unless `sqlite`).
fn cluster_error(jail: &mut Jail, sqlite: bool, vars: &[(&str, &str)]) -> String {
    if !sqlite {
        jail.set_env("NAVARO_DATABASE_URL", "postgres://u@localhost/navaro");
    }
    for (k, v) in vars {
        jail.set_env(k, v);
    }
    match load_in(jail, None) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_cluster_is_off_by_default_and_each_bad_key_is_named() {
    Jail::expect_with(|jail| {
        let s = load_in(jail, None).unwrap();
        assert!(!s.cluster.enabled);
        let good: [(&str, &str); 3] = [
            ("NAVARO_CLUSTER__ENABLED", "true"),
            ("NAVARO_CLUSTER__NODE_ID", "node-1"),
            ("NAVARO_CLUSTER__REDIS_URL", "redis://127.0.0.1:6379"),
        ];
        assert_eq!(cluster_error(jail, false, &good), "");
        let cases: [(&str, &str, &str); 7] = [
            ("NAVARO_CLUSTER__NODE_ID", "", "cluster.node_id"),
            ("NAVARO_CLUSTER__NODE_ID", "a b", "cluster.node_id"),
            ("NAVARO_CLUSTER__REDIS_URL", "http://x", "cluster.redis_url"),
            (
                "NAVARO_CLUSTER__LEASE_TTL_MS",
                "100",
                "cluster.lease_ttl_ms",
            ),
            (
                "NAVARO_CLUSTER__LEASE_MARGIN_MS",
                "1000",
                "cluster.lease_margin_ms",
            ),
            (
                "NAVARO_CLUSTER__FORWARD_TIMEOUT_MS",
                "0",
                "cluster.forward_timeout_ms",
            ),
            ("NAVARO_CLUSTER__ADVERTISE", "here", "cluster.advertise"),
        ];
        for (key, value, named) in cases {
            let mut vars = good.to_vec();
            vars.push((key, value));
            let error = cluster_error(jail, false, &vars);
            assert!(error.contains(named), "{key}={value}: {error}");
            jail.set_env(key, default_of(key));
        }
        Ok(())
    });
}

/// The value that puts a key of the case table back to a good one.
fn default_of(key: &str) -> &'static str {
    match key {
        "NAVARO_CLUSTER__NODE_ID" => "node-1",
        "NAVARO_CLUSTER__REDIS_URL" => "redis://127.0.0.1:6379",
        "NAVARO_CLUSTER__LEASE_TTL_MS" => "3000",
        "NAVARO_CLUSTER__LEASE_MARGIN_MS" => "500",
        "NAVARO_CLUSTER__FORWARD_TIMEOUT_MS" => "10000",
        _ => "127.0.0.1:7000",
    }
}

#[test]
fn a_cluster_on_sqlite_is_a_startup_error() {
    Jail::expect_with(|jail| {
        let error = cluster_error(
            jail,
            true,
            &[
                ("NAVARO_CLUSTER__ENABLED", "true"),
                ("NAVARO_CLUSTER__NODE_ID", "n1"),
                ("NAVARO_CLUSTER__REDIS_URL", "redis://127.0.0.1:6379"),
            ],
        );
        assert!(
            error.contains("cluster.enabled") && error.contains("SQLite"),
            "{error}"
        );
        Ok(())
    });
}

#[test]
fn connection_timeouts_are_settings_and_a_body_timeout_past_the_request_timeout_is_refused() {
    Jail::expect_with(|jail| {
        let s = load_in(jail, None).unwrap();
        assert_eq!(s.http.header_read_timeout_ms, 5_000);
        assert_eq!(s.http.keep_alive_idle_ms, 60_000);
        jail.set_env("NAVARO_HTTP__KEEP_ALIVE_IDLE_MS", "0");
        let refused = load_in(jail, None).unwrap_err();
        assert!(
            refused.to_string().contains("http.keep_alive_idle_ms"),
            "{refused}"
        );
        jail.set_env("NAVARO_HTTP__KEEP_ALIVE_IDLE_MS", "1000");
        jail.set_env("NAVARO_HTTP__BODY_READ_TIMEOUT_MS", "10000");
        let refused = load_in(jail, None).unwrap_err();
        assert!(
            matches!(
                refused,
                ConfigError::OutOfRange {
                    field: "http.body_read_timeout_ms",
                    ..
                }
            ),
            "{refused:?}"
        );
        jail.set_env("NAVARO_HTTP__BODY_READ_TIMEOUT_MS", "2000");
        let s = load_in(jail, None).unwrap();
        assert_eq!(s.http.keep_alive_idle_ms, 1_000);
        assert_eq!(s.http.body_read_timeout_ms, 2_000);
        Ok(())
    });
}

#[test]
fn stripe_needs_its_key_and_a_webhook_secret_and_bad_payment_settings_name_their_key() {
    Jail::expect_with(|jail| {
        let s = load_in(jail, None).unwrap();
        assert_eq!(s.payments.provider, PaymentProviderKind::None);
        assert_eq!(s.payments.hold_seconds, 600);
        jail.set_env("NAVARO_PAYMENTS__PROVIDER", "stripe");
        let refused = load_in(jail, None).unwrap_err();
        assert!(
            refused.to_string().contains("payments.stripe.api_key"),
            "{refused}"
        );
        jail.set_env("NAVARO_PAYMENTS__STRIPE__API_KEY", "sk_test_x");
        let refused = load_in(jail, None).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("payments.stripe.webhook_secrets"),
            "{refused}"
        );
        jail.set_env(
            "NAVARO_PAYMENTS__STRIPE__WEBHOOK_SECRETS",
            "[\"whsec_old\", \"whsec_new\"]",
        );
        let s = load_in(jail, None).unwrap();
        assert_eq!(s.payments.stripe.webhook_secrets.len(), 2);
        jail.set_env("NAVARO_PAYMENTS__HOLD_SECONDS", "5");
        let refused = load_in(jail, None).unwrap_err();
        assert!(
            refused.to_string().contains("payments.hold_seconds"),
            "{refused}"
        );
        jail.set_env("NAVARO_PAYMENTS__HOLD_SECONDS", "600");
        jail.set_env("NAVARO_PAYMENTS__PROVIDER", "paypal");
        let refused = load_in(jail, None).unwrap_err();
        assert!(
            refused.to_string().contains("PAYMENTS.PROVIDER"),
            "{refused}"
        );
        Ok(())
    });
}
