//! `/pro`: the Pro web board (`web/`), a static single-page app that talks to the API
//! from the same origin.
//!
//! Its built files are embedded in the binary (`build.rs` reads the committed
//! `web/dist`, so building the server needs no Node), or read from `web.pro_dir` when
//! that is set. `assets/` files carry a content hash in their names and are cached for
//! a year; everything else is revalidated by ETag on each load. A path with no file
//! extension that is not a file is answered with `index.html`, so the board's own paths
//! survive a reload. Text files are sent gzip-compressed to clients that take it
//! (compressed once, on first use, for the embedded files).

use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::{LazyLock, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::error::ApiError;
use crate::state::AppState;

/// The embedded files: `(path under web/dist, ETag, bytes)`, from `build.rs`.
static EMBEDDED: &[(&str, &str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/pro_files.rs"));

/// The gzip form of each embedded file, made on first request (`None`: not worth it).
static GZIPPED: LazyLock<Vec<OnceLock<Option<Bytes>>>> =
    LazyLock::new(|| EMBEDDED.iter().map(|_| OnceLock::new()).collect());

/// Files this small are sent as they are: gzip's header and the round trip cost more
/// than they save.
const MIN_GZIP_BYTES: usize = 1024;

/// The board's pages may only talk to this origin, and may not be framed (its buttons
/// change the queue); React sets `style` attributes, hence `'unsafe-inline'` for styles.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; \
    img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'self'";

/// The board's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pro", get(|| async { Redirect::permanent("/pro/") }))
        .route("/pro/", get(index))
        .route("/pro/{*path}", get(file))
}

async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve(&state, "index.html", &headers).await
}

async fn file(
    State(state): State<AppState>,
    UrlPath(path): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    serve(&state, &path, &headers).await
}

/// One file of the board, or its `index.html` for an app path.
struct Found {
    path: String,
    etag: String,
    bytes: Bytes,
    /// The embedded file's index, for its kept gzip form.
    embedded: Option<usize>,
}

async fn serve(state: &AppState, path: &str, headers: &HeaderMap) -> Response {
    let Some(relative) = clean(path) else {
        return ApiError::not_found("file").into_response();
    };
    let found = match &state.settings.web.pro_dir {
        Some(dir) => from_dir(dir, &relative).await,
        None => embedded(&relative),
    };
    let found = match found {
        Some(found) => Some(found),
        // The board's own paths (no extension) load the app.
        None if !relative.rsplit('/').next().unwrap_or("").contains('.') => {
            match &state.settings.web.pro_dir {
                Some(dir) => from_dir(dir, "index.html").await,
                None => embedded("index.html"),
            }
        }
        None => None,
    };
    match found {
        Some(found) => respond(found, headers),
        None if EMBEDDED.is_empty() && state.settings.web.pro_dir.is_none() => ApiError::new(
            navaro_protocol::ErrorCode::NotFound,
            "the Pro board was not built into this binary (web/dist was empty)",
        )
        .into_response(),
        None => ApiError::not_found("file").into_response(),
    }
}

/// The path as plain components: no `..`, no root, no empty or dot segments.
fn clean(path: &str) -> Option<String> {
    let path = if path.is_empty() { "index.html" } else { path };
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?),
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn embedded(relative: &str) -> Option<Found> {
    let index = EMBEDDED.iter().position(|(path, _, _)| *path == relative)?;
    let (path, etag, bytes) = EMBEDDED[index];
    Some(Found {
        path: path.to_owned(),
        etag: etag.to_owned(),
        bytes: Bytes::from_static(bytes),
        embedded: Some(index),
    })
}

async fn from_dir(dir: &Path, relative: &str) -> Option<Found> {
    let path: PathBuf = dir.join(relative);
    let bytes = tokio::fs::read(&path).await.ok()?;
    let etag = format!("\"{:016x}\"", fnv1a(&bytes));
    Some(Found {
        path: relative.to_owned(),
        etag,
        bytes: Bytes::from(bytes),
        embedded: None,
    })
}

fn respond(found: Found, request: &HeaderMap) -> Response {
    let content_type = content_type(&found.path);
    let cache = if found.path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut headers = HeaderMap::new();
    let mut put = |name, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    put(header::CONTENT_TYPE, content_type);
    put(header::CACHE_CONTROL, cache);
    put(header::ETAG, &found.etag);
    put(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if found.path.ends_with(".html") {
        put(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
        put(header::REFERRER_POLICY, "no-referrer");
    }
    let compressible = is_text(content_type);
    if compressible {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if matches_etag(request, &found.etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    if compressible && accepts_gzip(request) {
        let gzipped = match found.embedded {
            Some(index) => GZIPPED[index].get_or_init(|| gzip(&found.bytes)).clone(),
            None => gzip(&found.bytes),
        };
        if let Some(body) = gzipped {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            return (headers, body).into_response();
        }
    }
    (headers, found.bytes).into_response()
}

fn matches_etag(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        })
}

fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn gzip(bytes: &[u8]) -> Option<Bytes> {
    if bytes.len() < MIN_GZIP_BYTES {
        return None;
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    let compressed = encoder.finish().ok()?;
    (compressed.len() < bytes.len()).then(|| Bytes::from(compressed))
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn is_text(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/json")
        || content_type.starts_with("application/manifest")
        || content_type.starts_with("image/svg")
}

/// The same hash `build.rs` makes the embedded files' ETags with.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_folder_are_refused() {
        assert_eq!(clean("").as_deref(), Some("index.html"));
        assert_eq!(clean("assets/a.js").as_deref(), Some("assets/a.js"));
        assert_eq!(clean("../Cargo.toml"), None);
        assert_eq!(clean("assets/../../x"), None);
        assert_eq!(clean("/etc/passwd"), None);
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
            accepts_gzip(&headers)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, gzip;q=0.8"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br"));
    }

    #[test]
    fn the_board_is_embedded() {
        let index = embedded("index.html").expect("web/dist/index.html is embedded");
        let html = String::from_utf8_lossy(&index.bytes);
        assert!(html.contains("/pro/assets/"), "{html}");
        for (path, _, _) in EMBEDDED {
            assert!(
                path == &"index.html" || !content_type(path).starts_with("application/octet"),
                "{path} has no content type"
            );
        }
    }
}
