//! The console: one page of plain HTML, CSS and JavaScript (`hq/web/`, no build step),
//! embedded in the binary and served at `/`. It logs in with `POST /api/login` and then
//! speaks the same JSON API as any integration, with its session cookie and the CSRF
//! token on every write. Russian and English; usable at 1280 px and on a tablet.
//!
//! The page is served with a strict Content-Security-Policy (its own script and style
//! only, no framing): whatever a catalog's names hold, the page writes them as text.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../web/index.html");
const CONSOLE_JS: &str = include_str!("../web/console.js");
const CONSOLE_CSS: &str = include_str!("../web/console.css");

/// Headers every console asset carries.
const SECURITY: [(header::HeaderName, &str); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
];

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    for (name, value) in SECURITY {
        response.headers_mut().insert(name, header::HeaderValue::from_static(value));
    }
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
    response
}

pub(crate) async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", CONSOLE_JS)
}

pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", CONSOLE_CSS)
}
