//! The ads plugin on the real binary: a campaign places its establishment in discovery
//! searches of its category and area, always labelled `sponsored` and apart from the
//! organic results (which stay as they were); impressions and clicks are counted; once
//! the day's budget cannot pay another click the placement stops that same day; outside
//! the area, in another category, stopped, or with the plugin uninstalled, nothing is
//! placed.

mod common;

use std::time::Duration;

use common::plugins::{establishment, every_day, install};
use common::{Server, code};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TZ: &str = "America/Sao_Paulo";

async fn search(server: &Server, query: &str) -> Value {
    let (status, _, page) = server
        .call(
            Method::GET,
            &format!("/v1/establishments?{query}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

fn sponsored_ids(page: &Value) -> Vec<String> {
    let list = page["sponsored"]
        .as_array()
        .unwrap_or_else(|| panic!("no sponsored list: {page}"));
    for s in list {
        assert_eq!(s["label"], "sponsored", "{s}");
    }
    list.iter()
        .map(|s| s["establishment"]["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn campaigns(server: &Server, owner: &str, id: &str) -> Value {
    let (status, _, list) = server
        .call(
            Method::GET,
            &format!("/v1/establishments/{id}/plugins/ads/campaigns"),
            Some(owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["campaigns"][0].clone()
}

async fn sponsored_placement(server: Server) {
    let tag = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let listing = json!({"name": format!("Barbearia {tag}"), "category": "barbershop", "latitude": -23.55, "longitude": -46.63});
    let (owner, id, _, _) = establishment(&server, TZ, every_day("09:00", "18:00"), listing).await;
    let query = "category=barbershop&lat=-23.56&lon=-46.64&radius_km=50";
    let organic_before = search(&server, query).await["establishments"].clone();
    assert!(sponsored_ids(&search(&server, query).await).is_empty());

    // Not installed: no campaigns.
    let body = json!({"category": "barbershop", "latitude": -23.55, "longitude": -46.63, "radius_km": 10,
        "daily_budget_cents": 100, "cost_per_click_cents": 40});
    let path = format!("/v1/establishments/{id}/plugins/ads/campaigns");
    let (status, _, _) = server
        .call(Method::POST, &path, Some(&owner), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    install(&server, &owner, &id, "ads").await;
    for (patch, field) in [
        (json!({"category": "casino"}), "category"),
        (json!({"latitude": 95.0}), "latitude"),
        (json!({"radius_km": 0}), "radius_km"),
        (json!({"radius_km": 500}), "radius_km"),
        (json!({"daily_budget_cents": 0}), "daily_budget_cents"),
        (json!({"cost_per_click_cents": 101}), "cost_per_click_cents"),
    ] {
        let mut bad = body.clone();
        for (k, v) in patch.as_object().unwrap() {
            bad[k] = v.clone();
        }
        let (status, _, err) = server
            .call(Method::POST, &path, Some(&owner), Some(bad))
            .await;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{err}"
        );
    }
    let (status, _, campaign) = server
        .call(Method::POST, &path, Some(&owner), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{campaign}");
    let campaign_id = campaign["id"].as_str().unwrap().to_owned();

    // Placed, labelled, apart from the organic results, which are unchanged.
    let page = search(&server, query).await;
    assert_eq!(sponsored_ids(&page), std::slice::from_ref(&id));
    assert_eq!(page["establishments"], organic_before);
    assert_eq!(page["sponsored"][0]["campaign_id"], campaign_id.as_str());
    assert_eq!(
        page["sponsored"][0]["establishment"]["name"],
        format!("Barbearia {tag}")
    );
    // Not in another category, nor for a point outside the area, nor on later pages.
    assert!(
        sponsored_ids(&search(&server, "category=salon&lat=-23.56&lon=-46.64").await).is_empty()
    );
    assert!(
        sponsored_ids(
            &search(
                &server,
                "category=barbershop&lat=-22.90&lon=-43.20&radius_km=50"
            )
            .await
        )
        .is_empty()
    );
    assert!(sponsored_ids(&search(&server, "q=zzzz").await).is_empty());
    let today = campaigns(&server, &owner, &id).await["today"].clone();
    assert_eq!(
        (
            today["impressions"].as_i64(),
            today["clicks"].as_i64(),
            today["placing"].as_bool()
        ),
        (Some(1), Some(0), Some(true)),
        "{today}"
    );

    // Two clicks spend 80 of 100: a third click's 40 does not fit, so the placement
    // stops today; clicks still count.
    let click = page["sponsored"][0]["click_url"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..2 {
        let (status, _, c) = server.call(Method::POST, &click, None, None).await;
        assert_eq!(
            (status, c["establishment_id"].as_str()),
            (StatusCode::OK, Some(id.as_str())),
            "{c}"
        );
    }
    assert!(sponsored_ids(&search(&server, query).await).is_empty());
    let (status, _, _) = server.call(Method::POST, &click, None, None).await;
    assert_eq!(status, StatusCode::OK);
    let today = campaigns(&server, &owner, &id).await["today"].clone();
    assert_eq!(
        (
            today["impressions"].as_i64(),
            today["clicks"].as_i64(),
            today["spent_cents"].as_i64(),
            today["placing"].as_bool()
        ),
        (Some(1), Some(3), Some(80), Some(false)),
        "{today}"
    );
    // Concurrent clicks never spend past the budget.
    let (status, _, fresh) = server.call(Method::POST, &path, Some(&owner), Some(json!({"category": "barbershop",
        "latitude": -23.55, "longitude": -46.63, "radius_km": 10, "daily_budget_cents": 100, "cost_per_click_cents": 30}))).await;
    assert_eq!(status, StatusCode::CREATED, "{fresh}");
    let fresh_click = format!("/v1/ads/campaigns/{}/click", fresh["id"].as_str().unwrap());
    let clicks = (0..8).map(|_| server.call(Method::POST, &fresh_click, None, None));
    for (status, _, _) in futures::future::join_all(clicks).await {
        assert_eq!(status, StatusCode::OK);
    }
    let (_, _, list) = server.call(Method::GET, &path, Some(&owner), None).await;
    let fresh_today = list["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == fresh["id"])
        .unwrap()["today"]
        .clone();
    assert_eq!(
        (
            fresh_today["clicks"].as_i64(),
            fresh_today["spent_cents"].as_i64()
        ),
        (Some(8), Some(90)),
        "{fresh_today}"
    );

    // A stopped campaign, and an uninstalled plugin, place nothing; unknown campaigns 404.
    let (status, _, _) = server
        .call(
            Method::POST,
            "/v1/ads/campaigns/00000000-0000-7000-8000-000000000000/click",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, again) = server.call(Method::POST, &path, Some(&owner), Some(json!({"category": "barbershop",
        "latitude": -23.55, "longitude": -46.63, "radius_km": 10, "daily_budget_cents": 10000, "cost_per_click_cents": 10}))).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(
        sponsored_ids(&search(&server, query).await),
        std::slice::from_ref(&id)
    );
    let (status, _, stopped) = server
        .call(
            Method::DELETE,
            &format!("{path}/{}", again["id"].as_str().unwrap()),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(
        (status, stopped["active"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    assert!(sponsored_ids(&search(&server, query).await).is_empty());
    let (status, _, third) = server.call(Method::POST, &path, Some(&owner), Some(json!({"category": "barbershop",
        "latitude": -23.55, "longitude": -46.63, "radius_km": 10, "daily_budget_cents": 10000, "cost_per_click_cents": 10}))).await;
    assert_eq!(status, StatusCode::CREATED, "{third}");
    assert_eq!(
        sponsored_ids(&search(&server, query).await),
        std::slice::from_ref(&id)
    );
    let (status, _, _) = server
        .call(
            Method::DELETE,
            &format!("/v1/establishments/{id}/plugins/ads"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !sponsored_ids(&search(&server, query).await).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "still placed after uninstalling"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _, err) = server.call(Method::GET, &path, Some(&owner), None).await;
    assert_eq!((status, code(&err)), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn sponsored_placement_on_sqlite() {
    sponsored_placement(Server::start_sqlite()).await;
}

#[tokio::test]
async fn sponsored_placement_on_postgres() {
    sponsored_placement(Server::start_postgres()).await;
}
