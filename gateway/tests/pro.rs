//! `/pro` against the real binary: the embedded board, its caching and compression
//! headers, app paths, refused paths, and `web.pro_dir`.

mod common;

use common::Server;
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, LOCATION,
};

/// A client that neither follows redirects nor decompresses, to see the answers as sent.
fn raw() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_gzip()
        .build()
        .unwrap()
}

/// The first `/pro/assets/...` script the page names.
fn script_of(html: &str) -> String {
    let start = html
        .find("/pro/assets/")
        .expect("the page names its script");
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

#[tokio::test]
async fn the_board_is_served_at_pro_with_its_assets_cached_and_compressed() {
    let server = Server::start();
    let client = raw();
    let redirect = client.get(server.url("/pro")).send().await.unwrap();
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.headers()[LOCATION], "/pro/");

    let page = client.get(server.url("/pro/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[CACHE_CONTROL], "no-cache");
    assert!(
        headers[CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("connect-src 'self'")
    );
    let etag = headers[ETAG].to_str().unwrap().to_owned();
    let html = page.text().await.unwrap();
    assert!(html.contains("<div id=\"root\">"), "{html}");

    let again = client
        .get(server.url("/pro/"))
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // An app path loads the app; a missing file is a 404.
    let app_path = client.get(server.url("/pro/queue")).send().await.unwrap();
    assert_eq!(app_path.status(), StatusCode::OK);
    assert_eq!(app_path.text().await.unwrap(), html);
    let missing = client
        .get(server.url("/pro/assets/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let escape = client
        .get(server.url("/pro/..%2f..%2fCargo.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(escape.status(), StatusCode::NOT_FOUND);

    let script = script_of(&html);
    let plain = client.get(server.url(&script)).send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(
        plain.headers()[CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        plain.headers()[CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(plain.headers().get(CONTENT_ENCODING).is_none());
    let plain = plain.bytes().await.unwrap();
    let gzipped = client
        .get(server.url(&script))
        .header(ACCEPT_ENCODING, "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.headers()[CONTENT_ENCODING], "gzip");
    let compressed = gzipped.bytes().await.unwrap();
    assert!(compressed.len() < plain.len() / 2, "{}", compressed.len());
    let mut inflated = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&compressed[..]),
        &mut inflated,
    )
    .unwrap();
    assert_eq!(inflated, plain);
}

#[tokio::test]
async fn web_pro_dir_serves_the_board_from_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("index.html"), "<p>from the folder</p>").unwrap();
    std::fs::write(dir.path().join("assets/app.js"), "console.log(1)").unwrap();
    let folder = dir.path().to_str().unwrap();
    let server = Server::start_with(&[("NAVARO_WEB__PRO_DIR", folder)]).unwrap();
    let client = raw();
    let page = client.get(server.url("/pro/")).send().await.unwrap();
    assert_eq!(page.text().await.unwrap(), "<p>from the folder</p>");
    let script = client
        .get(server.url("/pro/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.text().await.unwrap(), "console.log(1)");

    // A folder without an index.html is refused at start-up, naming the key.
    let empty = tempfile::tempdir().unwrap();
    let refused = Server::start_with(&[("NAVARO_WEB__PRO_DIR", empty.path().to_str().unwrap())]);
    assert!(refused.is_err(), "the server started with an empty pro_dir");
}
